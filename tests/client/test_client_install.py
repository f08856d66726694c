"""``pip install 'coldbridge[client]'`` into a fresh venv, offline: no server dependency comes
along, and the installed client talks to a real server running in this (the main) venv.

Offline: the project's wheel is built with ``--no-build-isolation``, and its dependencies are
repacked as wheels from the distributions installed in the main venv (files and hashes from
their RECORD), then installed with ``--no-index --find-links`` and pip's configuration off.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TinyBundle
from test_client import running, wait_serving

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("numpy", "onnxruntime", "river", "torch", "prometheus_client", "pluggy")
_SKIPPED = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
_SOURCES = (
    "pyproject.toml",
    "README.md",
    "bundle",
    "cli",
    "client",
    "plugins",
    "protos",
    "server",
    "trainer",
)


CLIENT_SCRIPT = """
import json, sys
import coldbridge_client as cb

target, user = sys.argv[1], "zoe"
with cb.Client(target, timeouts=cb.Timeouts(recommend=10.0)) as client:
    before = client.recommend(user, k=3)
    with client.stream_events() as stream:
        stream.send([cb.Event(event_id=f"z{i}", user_id=user, item_id=f"v{i}",
                              domain=cb.Domain.DOMAIN_TARGET,
                              kind=cb.EventKind.EVENT_KIND_IMPLICIT) for i in range(3)])
    after = client.recommend(user, k=3, exclude_seen=True)
    print(json.dumps({
        "client_file": cb.__file__,
        "before": cb.Provenance.Name(before.provenance),
        "after": cb.Provenance.Name(after.provenance),
        "after_items": [i.item_id for i in after.items],
        "acked": stream.acked_sequence,
        "target_events": client.user_state(user).target_events,
        "heavy_modules": sorted(m for m in ("numpy", "onnxruntime", "river", "torch")
                                if m in sys.modules),
    }))
"""


def _requirement_names(requirements: list[str] | None) -> list[str]:
    """Names of the requirements that apply without extras (``extra == ...`` markers dropped)."""
    names = []
    for requirement in requirements or []:
        if "extra ==" not in requirement:
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            assert match is not None, requirement
            names.append(match.group(0))
    return names


def client_dependencies() -> list[str]:
    """The distributions that ``coldbridge[client]`` needs, transitively (from the main venv)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = _requirement_names(project["dependencies"] + project["optional-dependencies"]["client"])
    seen: dict[str, str] = {}
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        if dist.metadata["Name"] not in seen:
            seen[dist.metadata["Name"]] = dist.version
            todo += _requirement_names(dist.requires)
    return sorted(seen)


def repack(name: str, out: Path) -> Path:
    """Write the installed distribution ``name`` back into a wheel in ``out``."""
    dist = importlib.metadata.distribution(name)
    tags = [
        line.split(":", 1)[1].strip()
        for line in dist.read_text("WHEEL").splitlines()
        if line.startswith("Tag:")
    ]
    python, abi, platform = (".".join(sorted({t.split("-")[i] for t in tags})) for i in range(3))
    stem = re.sub(r"[-.]+", "_", dist.metadata["Name"])
    wheel = out / f"{stem}-{dist.version}-{python}-{abi}-{platform}.whl"
    files = [
        f
        for f in dist.files or []
        if not f.parts[0] == ".." and f.name not in _SKIPPED and "__pycache__" not in f.parts
    ]
    dist_info = next(f.parent for f in files if f.name == "METADATA")
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            data = Path(str(dist.locate_file(file))).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{file.as_posix()},sha256={digest.decode()},{len(data)}")
            archive.writestr(file.as_posix(), data)
        records.append(f"{dist_info.as_posix()}/RECORD,,")
        archive.writestr(f"{dist_info.as_posix()}/RECORD", "\n".join(records) + "\n")
    return wheel


def offline_env() -> dict[str, str]:
    """This environment without pip's configuration (no index, no find-links, no constraints)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def run(*args: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], env=offline_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def copy_sources(out: Path) -> Path:
    """Copy what the wheel is built from (setuptools builds in-tree: keep build/ out of ROOT)."""
    out.mkdir()
    for name in _SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, out / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, out / name)
    return out


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("client-install")
    wheels = base / "wheels"
    wheels.mkdir()
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        wheels,
        copy_sources(base / "src"),
    )
    for name in client_dependencies():
        repack(name, wheels)
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        wheels,
        "coldbridge[client]",
    )
    yield venv


def test_wheel_ships_the_protos_and_typed_stubs(client_venv: Path) -> None:
    (wheel,) = (client_venv.parent / "wheels").glob("coldbridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stem in ("events", "recommender"):
        for suffix in (".proto", "_pb2.pyi", "_pb2_grpc.pyi"):
            assert f"coldbridge/v1/{stem}{suffix}" in names
    assert "coldbridge_client/py.typed" in names


def test_client_extra_installs_grpc_and_protobuf_only(client_venv: Path) -> None:
    listed = json.loads(
        run(client_venv / "bin" / "python", "-m", "pip", "list", "--format", "json")
    )
    names = {d["name"].lower().replace("_", "-") for d in listed} - {"pip", "setuptools"}
    assert {"coldbridge", "grpcio", "protobuf"} <= names
    assert names <= {"coldbridge", "grpcio", "protobuf", "typing-extensions"}
    probe = (
        f"import importlib.util as u; print([m for m in {SERVER_ONLY!r} "
        "if u.find_spec(m) is not None])"
    )
    assert run(client_venv / "bin" / "python", "-c", probe).strip() == "[]"


def test_installed_client_talks_to_a_real_server(
    client_venv: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    with running(tiny_bundle.path, tmp_path / "state") as (port, _):
        wait_serving(port)
        out = run(client_venv / "bin" / "python", "-c", CLIENT_SCRIPT, f"127.0.0.1:{port}")
    report = json.loads(out)
    assert Path(report["client_file"]).is_relative_to(client_venv)
    assert (report["before"], report["after"]) == ("PROVENANCE_FALLBACK", "PROVENANCE_ONLINE")
    assert not {"v0", "v1", "v2"} & set(report["after_items"])
    assert (report["acked"], report["target_events"]) == (1, 3)
    assert report["heavy_modules"] == []
