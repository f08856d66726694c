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
from coldbridge_plugins import ENTRY_POINT_GROUP, PluginValidationError, get_plugin_manager, load_strategies
from coldbridge_plugins.checks import yield_checks

from strategy_harness import StrategyHarness

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coldbridge-example-strategy"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(EXAMPLE)], check=True)
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


@pytest.fixture(scope="module")
def harness(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> StrategyHarness:
    return StrategyHarness(Path(tmp_path_factory.mktemp("example")), load_strategies(get_plugin_manager()))


def test_example_passes_the_contract_end_to_end(harness: StrategyHarness) -> None:
    ridge = harness.registry["ridge"]
    checks = list(yield_checks(ridge))
    assert "check_server_round_trip" in [c.__name__ for c in checks]
    for check in checks:
        check(ridge, harness)


class _Dist:
    """A fake distribution whose entry point cannot be imported (pluggy's own test pattern)."""

    metadata = {"name": "broken-plugin"}

    @property
    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return [importlib.metadata.EntryPoint("broken", "no_such_module_xyz", ENTRY_POINT_GROUP)]


def test_unimportable_entry_point_fails_at_startup_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [_Dist()])
    with pytest.raises(PluginValidationError, match="'broken'.*cannot be imported"):
        get_plugin_manager()
