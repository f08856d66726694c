"""The server process never imports torch (or the trainer), and exits 0 on SIGTERM/SIGINT.

The check is made from inside the real server process: a small ``python -c`` wrapper runs
the genuine entry point (``python -m coldbridge_server``'s ``main`` or the ``coldbridge``
console script's ``coldbridge_cli.main``) and, once that returns after the signal, records
which modules were ever imported. While the server runs, ``/proc/<pid>/maps`` must not map libtorch.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from conftest import TinyBundle
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = """
import json, sys
report, entry, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if entry == "module":
    from coldbridge_server.__main__ import main
    rc = main()
else:
    from coldbridge_cli import main
    rc = main(argv)
loaded = sorted({name.split(".")[0] for name in sys.modules})
with open(report, "w") as fh:
    json.dump({"rc": rc, "modules": loaded}, fh)
sys.exit(rc)
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _start(tmp_path: Path, entry: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    pythonpath = os.pathsep.join(
        str(ROOT / d) for d in ("bundle", "cli", "client", "plugins", "protos", "server", "trainer")
    )
    return subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(tmp_path / "report.json"), entry, *argv],
        env={
            **os.environ,
            **env,
            "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1",
            "COLDBRIDGE_METRICS_PORT": "0",
            "COLDBRIDGE_DRAIN_SECONDS": "0",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines(proc: subprocess.Popen) -> tuple[queue.Queue[str], threading.Thread]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def _wait_for(lines: queue.Queue[str], marker: str, seen: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"{marker!r} never printed; output:\n{''.join(seen)}")


def _run_and_stop(
    tmp_path: Path,
    entry: str,
    argv: list[str],
    env: dict[str, str],
    sig: signal.Signals,
    demo_marker: str | None = None,
) -> list[str]:
    proc = _start(tmp_path, entry, argv, env)
    seen: list[str] = []
    lines, pump = _lines(proc)
    try:
        address = _wait_for(lines, "serving", seen).strip().rsplit(" ", 1)[-1]
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(
                health_pb2.HealthCheckRequest(service="coldbridge.v1.Recommender"), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        if demo_marker:
            _wait_for(lines, demo_marker, seen)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "onnxruntime" in maps, "sanity: the check must see the server's libraries"
        assert "libtorch" not in maps
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pump.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rc"] == 0
    assert "onnxruntime" in report["modules"] and "grpc" in report["modules"]
    assert "torch" not in report["modules"]
    assert "coldbridge_trainer" not in report["modules"]
    return seen


def test_module_entry_point_never_imports_torch(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    env = {
        "COLDBRIDGE_BUNDLE_PATH": str(tiny_bundle.path.parent),
        "COLDBRIDGE_HOST": "127.0.0.1",
        "COLDBRIDGE_PORT": "0",
        "COLDBRIDGE_GRACE_SECONDS": "1",
    }
    _run_and_stop(tmp_path, "module", [], env, signal.SIGTERM)


def test_cli_serve_demo_never_imports_torch(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    config = tmp_path / "coldbridge.toml"  # settings from all three sources
    config.write_text(f'bundle_path = "{tiny_bundle.path}"\ngrace_seconds = 1\n')
    argv = ["serve", "--config", str(config), "--host", "127.0.0.1", "--demo"]
    seen = _run_and_stop(
        tmp_path,
        "cli",
        argv,
        {"COLDBRIDGE_PORT": "0"},
        signal.SIGINT,
        demo_marker="PROVENANCE_FALLBACK",
    )
    output = "".join(seen)
    assert tiny_bundle.version in output
    for provenance in ("WARM_TARGET", "TRANSFERRED", "FALLBACK"):
        assert f"PROVENANCE_{provenance}" in output
