"""Strategy discovery: built-ins through the hook, validation of broken plugins."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from coldbridge_plugins import (
    API_VERSION,
    PluginValidationError,
    TransferStrategy,
    get_plugin_manager,
    hookimpl,
    load_strategies,
)


def test_builtin_emcdr_is_registered_and_applies_the_bridge() -> None:
    registry = load_strategies(get_plugin_manager(load_entrypoints=False))
    assert "emcdr" in registry
    out = registry["emcdr"]().initial_embeddings(np.ones((2, 3)), lambda x: x * 2.0)
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0, dtype=np.float32))
    assert out.dtype == np.float32


class _Incomplete(TransferStrategy):
    name = "incomplete"
    version = "0.1"


class _WrongApi(TransferStrategy):
    name = "wrong-api"
    version = "0.1"
    api_version: ClassVar[int] = API_VERSION + 1

    def initial_embeddings(self, source_embeddings, bridge):  # type: ignore[no-untyped-def]
        return source_embeddings


class _Duplicate(_WrongApi):
    name = "emcdr"
    api_version: ClassVar[int] = API_VERSION


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_Incomplete, "'incomplete'.*does not implement initial_embeddings"),
        (_WrongApi, "'wrong-api'.*api_version"),
        (_Duplicate, "'emcdr'.*duplicate"),
    ],
    ids=["missing-method", "api-version", "duplicate-name"],
)
def test_broken_plugins_fail_with_their_name(cls: type, message: str) -> None:
    class Plugin:
        @hookimpl
        def register_transfer_strategies(self) -> list[type]:
            return [cls]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    with pytest.raises(PluginValidationError, match=message):
        load_strategies(pm)
