"""Strategy discovery: built-ins through the hook, validation of broken plugins."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from coldbridge_plugins import (
    API_VERSION,
    ColdUsers,
    PluginValidationError,
    StrategyParts,
    StrategyTrainer,
    TransferStrategy,
    get_plugin_manager,
    hookimpl,
    load_strategies,
)
from coldbridge_plugins.builtin import BUILTINS

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_DIR = ROOT / "plugins" / "coldbridge_plugins" / "builtin"
BUILTINS_SET = {
    "popular",
    "emcdr",
    "ptupcdr",
    "cmf",
    "distill",
    "knn",
    "itemmap",
    "kernelmap",
    "peers",
    "softmap",
    "fusion",
}


def test_builtin_emcdr_is_registered_and_applies_the_bridge() -> None:
    registry = load_strategies(get_plugin_manager(load_entrypoints=False))
    assert BUILTINS_SET <= set(registry)
    users = ColdUsers(np.ones((2, 3)), [np.zeros(0, np.int64)] * 2)
    out = registry["emcdr"](StrategyParts(bridge=lambda x: x * 2.0)).transfer(users)
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0, dtype=np.float32))
    assert out.dtype == np.float32


def test_builtins_are_registered_through_one_hook_with_a_trainer_half() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    assert [name for name, _ in pm.list_name_plugin()] == ["builtin"]
    for name, cls in load_strategies(pm).items():
        assert cls.api_version == API_VERSION == 2 and cls.output in ("embedding", "scores")
        trainer = cls.trainer_class()
        assert issubclass(trainer, StrategyTrainer) and trainer.name == name
        assert trainer.__module__ == f"coldbridge_plugins.builtin.{name}.train"


def test_every_builtin_folder_is_registered_and_holds_both_halves() -> None:
    folders = {p.name for p in BUILTIN_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(BUILTINS) == BUILTINS_SET
    for name in BUILTINS:
        assert (BUILTIN_DIR / name / "train.py").is_file(), name


def test_server_halves_import_neither_torch_nor_onnx_nor_the_trainer() -> None:
    code = (
        "import sys, coldbridge_plugins\n"
        "from coldbridge_plugins import builtin, get_plugin_manager, load_strategies\n"
        "for name in builtin.BUILTINS:\n"
        "    __import__(f'coldbridge_plugins.builtin.{name}')\n"
        "assert set(builtin.BUILTINS) <= set(load_strategies(get_plugin_manager()))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    path = os.pathsep.join(
        str(ROOT / d) for d in ("bundle", "server", "plugins", "trainer", "protos", "client", "cli")
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    loaded = set(ast.literal_eval(out.strip().splitlines()[-1]))
    assert {"numpy", "pluggy", "coldbridge_plugins"} <= loaded
    assert not loaded & {"torch", "onnx", "coldbridge_trainer"}, loaded & {"torch", "onnx"}


def test_a_trainer_string_of_api_1_is_refused_naming_the_strategy() -> None:
    class Legacy(TransferStrategy):
        name, version = "legacy", "0.1"
        trainer = "my_pkg.train:LegacyTrainer"

        def transfer(self, users):  # type: ignore[no-untyped-def]
            return users.source_embeddings

    class Plugin:
        @hookimpl
        def register_transfer_strategies(self) -> list[type]:
            return [Legacy]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    with pytest.raises(PluginValidationError, match="'legacy'.*trainer_class"):
        load_strategies(pm)
    with pytest.raises(NotImplementedError, match="legacy"):
        Legacy.trainer_class()


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
    np.testing.assert_allclose(
        resolved.vector, 2.0 * tiny_bundle.target_vector("s0"), rtol=1e-5, atol=1e-5
    )
    assert server.engine.resolver.resolve("u0").provenance.value == "warm_target"


def test_strategy_graphs_use_the_bundle_opset() -> None:
    from coldbridge_bundle import OPSET
    from coldbridge_plugins.graph import make_model, mlp_nodes, source_input

    nodes, inits = mlp_nodes("source_embedding", [(np.eye(2), np.zeros(2))], "", "output")
    model = make_model(nodes, "t", [source_input(2)], 2, inits)
    assert [o.version for o in model.opset_import] == [OPSET]
