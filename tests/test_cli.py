"""The ``coldbridge`` console script: trainer forwarding and ``serve`` start-up errors."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
from coldbridge_server import cli
from conftest import TinyBundle


@pytest.mark.parametrize("command", ["datagen", "train", "evaluate"])
def test_trainer_commands_forward_argv_lazily(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []
    fake = types.ModuleType("coldbridge_trainer.commands")
    for name in ("datagen", "train", "evaluate"):
        setattr(fake, f"{name}_main", lambda argv, name=name: calls.append((name, argv)) or 7)
    monkeypatch.setitem(sys.modules, "coldbridge_trainer.commands", fake)
    assert cli.main([command, "--epochs", "3", "out"]) == 7
    assert calls == [(command, ["--epochs", "3", "out"])]


def test_cli_module_does_not_import_the_trainer() -> None:
    source = Path(cli.__file__).read_text()
    assert "import coldbridge_trainer" not in source and "from coldbridge_trainer" not in source


def test_serve_without_bundle_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "bundle_path" in capsys.readouterr().err


def test_serve_with_corrupt_bundle_fails_naming_the_file(
    tiny_bundle: TinyBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = shutil.copytree(tiny_bundle.path, tmp_path / tiny_bundle.version)
    (bundle / "bridge.onnx").unlink()
    assert cli.main(["serve", "--bundle", str(tmp_path), "--port", "0"]) == 1
    assert "bridge.onnx" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("datagen", "train", "evaluate", "serve"))
