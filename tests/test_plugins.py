"""Strategy discovery: built-ins through the hook, validation of broken plugins."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from coldbridge_plugins import (
    API_VERSION,
    ColdUsers,
    PluginValidationError,
    StrategyParts,
    TransferStrategy,
    get_plugin_manager,
    hookimpl,
    load_strategies,
)


BUILTINS = {"popular", "emcdr", "ptupcdr", "cmf", "distill", "knn", "itemmap", "kernelmap", "peers", "softmap", "fusion"}


def test_builtin_emcdr_is_registered_and_applies_the_bridge() -> None:
    registry = load_strategies(get_plugin_manager(load_entrypoints=False))
    assert BUILTINS <= set(registry)
    users = ColdUsers(np.ones((2, 3)), [np.zeros(0, np.int64)] * 2)
    out = registry["emcdr"](StrategyParts(bridge=lambda x: x * 2.0)).transfer(users)
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0, dtype=np.float32))
    assert out.dtype == np.float32


def test_builtins_are_registered_through_the_hook_with_a_trainer_half() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    assert {f"builtin.{n}" for n in BUILTINS} <= {name for name, _ in pm.list_name_plugin()}
    for cls in load_strategies(pm).values():
        assert cls.api_version == API_VERSION == 2 and cls.output in ("embedding", "scores")
        assert cls.trainer.startswith("coldbridge_trainer.strategies.")


class _Incomplete(TransferStrategy):
    name = "incomplete"
    version = "0.1"


class _WrongApi(TransferStrategy):
    name = "wrong-api"
    version = "0.1"
    api_version: ClassVar[int] = API_VERSION + 1

    def transfer(self, users):  # type: ignore[no-untyped-def]
        return users.source_embeddings


class _BadOutput(_WrongApi):
    name = "bad-output"
    api_version: ClassVar[int] = API_VERSION
    output: ClassVar[str] = "probabilities"


class _Duplicate(_WrongApi):
    name = "emcdr"
    api_version: ClassVar[int] = API_VERSION


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_Incomplete, "'incomplete'.*does not implement transfer"),
        (_WrongApi, "'wrong-api'.*api_version"),
        (_Duplicate, "'emcdr'.*duplicate"),
        (_BadOutput, "'bad-output'.*output"),
    ],
    ids=["missing-method", "api-version", "duplicate-name", "bad-output"],
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


def test_server_refuses_a_bundle_whose_strategy_is_not_registered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from coldbridge_bundle import write
    from coldbridge_server import Settings, create_server
    from coldbridge_server.errors import ConfigError
    from conftest import make_tiny_arrays, tiny_content

    path = write(tmp_path, tiny_content(make_tiny_arrays(), strategy="no-such-strategy"))
    with pytest.raises(ConfigError, match="no-such-strategy"):
        create_server(Settings(bundle_path=str(path), host="127.0.0.1", port=0))


def test_server_resolves_transferred_users_through_the_bundle_strategy(tiny_bundle) -> None:  # type: ignore[no-untyped-def]
    from coldbridge_plugins.builtin.emcdr import Emcdr
    from coldbridge_server import Settings, create_server

    class Doubled(Emcdr):
        def transfer(self, users):  # type: ignore[no-untyped-def]
            return 2.0 * super().transfer(users)

    settings = Settings(bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0)
    server, _ = create_server(settings, strategies={"emcdr": Doubled})
    resolved = server.engine.resolver.resolve("s0")
    np.testing.assert_allclose(resolved.vector, 2.0 * tiny_bundle.target_vector("s0"), rtol=1e-5, atol=1e-5)
    assert server.engine.resolver.resolve("u0").provenance.value == "warm_target"
