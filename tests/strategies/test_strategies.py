"""The contract suite: every registered strategy x every check (river's test_estimators)."""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_plugins import get_plugin_manager, load_strategies
from coldbridge_plugins.testing import StrategyHarness, yield_checks

REGISTRY = load_strategies(get_plugin_manager())


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> StrategyHarness:
    return StrategyHarness(Path(tmp_path_factory.mktemp("contract")), REGISTRY)


@pytest.mark.parametrize(
    ("strategy", "check"),
    [
        pytest.param(cls, check, id=f"{name}:{check.__name__}")
        for name, cls in sorted(REGISTRY.items())
        for check in yield_checks(cls)
    ],
)
def test_strategy_contract(strategy, check, harness: StrategyHarness) -> None:  # type: ignore[no-untyped-def]
    check(strategy, harness)
