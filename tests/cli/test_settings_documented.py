"""Every server setting is documented (datasette's test_settings_are_documented).

docs/configuration.md has one row per setting giving its TOML key, flag, environment
variable, type and default (the one table of settings; README.md links to it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_server.config import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f'`"{value}"`' if isinstance(value, str) else f"`{value}`"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_setting_is_in_the_configuration_table(setting: Setting) -> None:
    prefix = f"| `{setting.name}` |"
    (row,) = [line for line in CONFIGURATION.splitlines() if line.startswith(prefix)]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert f"`{setting.flag}`" in cells[1] and all(f"`{a}`" in cells[1] for a in setting.aliases)
    assert cells[2:5] == [f"`{setting.env}`", setting.type.__name__, _default(setting.default)]
    assert len(cells[5]) > 10, f"{setting.name} has no description"


def test_every_command_is_documented() -> None:
    for command in ("datagen", "train", "evaluate bundle", "evaluate report", "serve"):
        assert f"`coldbridge {command} " in CONFIGURATION, command
