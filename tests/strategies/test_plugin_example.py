"""The example external plugin: installed as a package, found through its entry point,
run through the whole contract suite (trained, exported, served by a real server)."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from coldbridge_plugins import (
    ENTRY_POINT_GROUP,
    PluginValidationError,
    get_plugin_manager,
    load_strategies,
)
from coldbridge_plugins.testing import check_strategy, yield_checks

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "coldbridge-example-strategy"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("coldbridge_example_strategy")]:
        del sys.modules[name]


def test_example_is_discovered_through_its_entry_point(installed: Path) -> None:
    dist = importlib.metadata.distribution("coldbridge-example-strategy")
    assert [ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP] == ["ridge"]
    pm = get_plugin_manager()
    assert pm.get_plugin("ridge") is not None
    assert load_strategies(pm)["ridge"].__module__ == "coldbridge_example_strategy.plugin"
    assert "ridge" not in load_strategies(get_plugin_manager(load_entrypoints=False))


def test_example_passes_the_contract_end_to_end(installed: Path, tmp_path: Path) -> None:
    ridge = load_strategies(get_plugin_manager())["ridge"]
    assert "check_server_round_trip" in [c.__name__ for c in yield_checks(ridge)]
    assert ridge.trainer_class().__module__ == "coldbridge_example_strategy.train"
    check_strategy(ridge, tmp_path)  # what the example's README tells a plugin author to run


class _Dist:
    """A fake distribution whose entry point cannot be imported (pluggy's own test pattern)."""

    metadata = {"name": "broken-plugin"}

    @property
    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return [importlib.metadata.EntryPoint("broken", "no_such_module_xyz", ENTRY_POINT_GROUP)]


def test_unimportable_entry_point_fails_at_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [_Dist()])
    with pytest.raises(PluginValidationError, match="'broken'.*cannot be imported"):
        get_plugin_manager()
