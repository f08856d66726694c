"""deploy/docker/healthcheck.py (the server image's HEALTHCHECK) against a real server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from coldbridge_server import Settings, create_server
from coldbridge_server.app import ColdbridgeServer
from coldbridge_server.server import LIVENESS_SERVICE
from conftest import TinyBundle

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "healthcheck.py"


def _check(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--target", f"127.0.0.1:{port}", "--timeout", "10", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def running(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[tuple[ColdbridgeServer, int]]:
    settings = Settings(
        bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0, state_dir=str(tmp_path)
    )
    server, port = create_server(settings)
    server.start()
    assert server.wait_until_ready(30)
    try:
        yield server, port
    finally:
        server.stop(None).wait()


def test_ready_server_is_healthy_and_live(running: tuple[ColdbridgeServer, int]) -> None:
    _, port = running
    for args in ((), ("--service", LIVENESS_SERVICE)):
        result = _check(port, *args)
        assert result.returncode == 0, result.stderr


def test_draining_server_is_unhealthy_but_live(running: tuple[ColdbridgeServer, int]) -> None:
    server, port = running
    server.drain()
    result = _check(port)
    assert result.returncode == 1 and "NOT_SERVING" in result.stderr, result.stderr
    assert _check(port, "--service", LIVENESS_SERVICE).returncode == 0


def test_unknown_service_and_stopped_server_are_unhealthy(
    running: tuple[ColdbridgeServer, int],
) -> None:
    server, port = running
    result = _check(port, "--service", "no.such.Service")
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr, result.stderr
    server.stop(None).wait()
    result = _check(port, "--timeout", "2")
    assert result.returncode == 1 and "unhealthy" in result.stderr, result.stderr


def test_default_target_is_the_port_setting(running: tuple[ColdbridgeServer, int]) -> None:
    _, port = running
    argv = [sys.executable, str(SCRIPT)]
    env = {"COLDBRIDGE_PORT": str(port), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
