"""Every server setting is documented in the README (datasette's test_settings_are_documented)."""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_server.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("env", [env for _, env, _, _ in Settings.describe()])
def test_setting_is_in_readme_configuration_table(env: str) -> None:
    assert f"| `{env}` |" in README, f"{env} is not documented in README.md"
