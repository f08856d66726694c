"""The ``coldbridge`` console script: help, one-line usage errors, settings from every source.

In process through ``coldbridge_cli.main(argv)``; in a subprocess (``python -m
coldbridge_cli``) where the exit status and the exact stderr matter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from coldbridge_cli import main
from coldbridge_server.config import SETTINGS, load_settings
from conftest import TinyBundle

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bundle", "cli", "client", "plugins", "protos", "server", "trainer")
PYTHONPATH = os.pathsep.join(str(ROOT / d) for d in PACKAGES)


def _coldbridge(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldbridge_cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {}), "PYTHONPATH": PYTHONPATH},
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["datagen"],
        ["train"],
        ["evaluate"],
        ["evaluate", "bundle"],
        ["evaluate", "report"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: " + " ".join(["coldbridge", *argv]))


def test_help_lists_each_command_and_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("datagen", "train", "evaluate", "serve"))
    main(["serve", "--help"])
    out = capsys.readouterr().out
    assert all(s.flag in out and s.env in out for s in SETTINGS)


@pytest.fixture
def not_a_dataset(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--out", "b", "--data", "{empty}", "--epochz", "3"],
            "coldbridge train: error: unrecognized arguments: --epochz 3",
        ),
        (
            ["train", "--out", "b", "--data", "{empty}", "--epochs", "many"],
            "argument --epochs: invalid int value: 'many'",
        ),
        (
            ["train", "--out", "b", "--data", "{empty}/missing"],
            "--data {empty}/missing: no such directory",
        ),
        (
            ["train", "--out", "b", "--data", "{empty}"],
            "cannot read the dataset: {empty}: missing dataset.json",
        ),
        (
            ["train", "--out", "b", "--data", "{empty}", "--source", "video"],
            "--source applies only with --cdrib",
        ),
        (
            [
                "evaluate",
                "report",
                "--data",
                "{empty}",
                "--directions",
                "game:video",
                "--strategies",
                "knn",
                "--report-dir",
                "r",
            ],
            "--directions applies only with --cdrib",
        ),
        (
            [
                "evaluate",
                "report",
                "--data",
                "{empty}",
                "--strategies",
                "nope",
                "--report-dir",
                "r",
            ],
            "--strategies: unknown strategies ['nope']",
        ),
        (["evaluate", "bundle", "{empty}", "--data", "{empty}"], "not a bundle directory"),
        (["evaluate", "--bundle", "{empty}"], "'--bundle': give the mode first: 'evaluate bundle"),
        (
            ["train", "--out", "b", "--data", "{empty}", "--shared-users", "9"],
            "--shared-users applies only with --cdrib",
        ),
        (
            ["train", "--out", "b", "--recbole", "{empty}/a.inter,{empty}/b.inter"],
            "--recbole {empty}/a.inter: no such file",
        ),
        (
            ["train", "--out", "b", "--recbole", "{empty}/a.inter"],
            "--recbole: expected SOURCE.inter,TARGET.inter",
        ),
        (["serve", "--port", "70000"], "port: must be in 0..65535, got 70000"),
        (["serve", "--bund", "x"], "unrecognized arguments: --bund x"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None,
)
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], message: str, not_a_dataset: Path
) -> None:
    result = _coldbridge(*(a.format(empty=not_a_dataset) for a in argv))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("coldbridge ") and "Traceback" not in result.stderr
    assert message.format(empty=not_a_dataset) in result.stderr


def _print_config(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> dict[str, tuple[object, str]]:
    """``serve --print-config`` output: ``{setting: (value, origin)}`` (it is a TOML file)."""
    assert main(["serve", *argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    values = tomllib.loads(text)
    origins = dict(re.findall(r"^(\w+) = .*  # (.+)$", text, re.M))
    assert set(values) == set(origins) == {s.name for s in SETTINGS}
    return {name: (values[name], origins[name]) for name in values}


def test_print_config_shows_values_origins_and_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "coldbridge.toml"
    config.write_text('host = "10.0.0.1"\nport = 6000\nmax_k = 50\nstate_dir = "/srv/state"\n')
    monkeypatch.setenv("COLDBRIDGE_PORT", "7000")
    monkeypatch.setenv("COLDBRIDGE_MAX_K", "60")
    got = _print_config(["--config", str(config), "--max-k", "70", "--access-log"], capsys)
    assert got["max_k"] == (70, "flag --max-k")  # flag > env > file
    assert got["access_log"] == (True, "flag --access-log")
    assert got["port"] == (7000, "env COLDBRIDGE_PORT")  # env > file
    assert got["host"] == ("10.0.0.1", f"file {config}")
    assert got["state_dir"] == ("/srv/state", f"file {config}")
    assert got["max_workers"] == (8, "default")
    assert _print_config(["--bundle", "b"], capsys)["bundle_path"] == ("b", "flag --bundle-path")


def test_toml_values_reach_settings(tmp_path: Path) -> None:
    config = tmp_path / "coldbridge.toml"
    config.write_text(
        'access_log = true\ngrace_seconds = 2\nonline_l2 = 0.5\nlog_format = "json"\n'
        'strategy_weights = "itemmap=0.5,emcdr=0.5"\nmetrics_port = -1\n'
    )
    resolved = load_settings(environ={}, config_file=config)
    s = resolved.settings
    assert (s.access_log, s.grace_seconds, s.online_l2, s.log_format) == (True, 2.0, 0.5, "json")
    assert (s.strategy_weights, s.metrics_port, s.port) == ("itemmap=0.5,emcdr=0.5", -1, 50051)
    assert resolved.origins["grace_seconds"] == f"file {config}"
    assert resolved.origins["port"] == "default"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("prot = 6000\n", "prot: unknown setting; did you mean 'port'?"),
        ('port = "6000"\n', "port: expected int, got '6000'"),
        ("access_log = 1\n", "access_log: expected bool, got 1"),
        ("port = \n", "invalid TOML"),
        ("warm_threshold = 0\n", "warm_threshold: must be >= 1, got 0"),
    ],
)
def test_a_bad_config_file_is_refused(toml: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "coldbridge.toml"
    config.write_text(toml)
    result = _coldbridge("serve", "--config", str(config), "--print-config")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_importing_the_cli_loads_neither_trainer_nor_server() -> None:
    code = (
        "import sys, coldbridge_cli; print(sorted({m.split('.')[0] for m in sys.modules "
        "if m.startswith(('coldbridge_', 'torch', 'grpc'))}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        timeout=60,
    )
    assert result.stdout.strip() == "['coldbridge_cli']", result.stderr


def test_serve_without_bundle_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0"]) == 2
    assert "bundle_path" in capsys.readouterr().err


def test_serve_with_corrupt_bundle_fails_naming_the_file(
    tiny_bundle: TinyBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = shutil.copytree(tiny_bundle.path, tmp_path / tiny_bundle.version)
    (bundle / "bridge.onnx").unlink()
    assert main(["serve", "--bundle", str(tmp_path), "--port", "0"]) == 1
    assert "bridge.onnx" in capsys.readouterr().err
