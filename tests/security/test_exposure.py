"""What a server exposes: start-up warnings, reflection on/off, and where /metrics listens.

The /metrics tests run ``python -m coldbridge_server`` as a real process and read the
sockets it listens on from /proc (Linux): by default /metrics listens on 127.0.0.1 only, and
``metrics_port = -1`` leaves the gRPC port as the only listening socket.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.security import exposure_warnings, is_loopback
from conftest import TinyBundle
from eventlib import started
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from securitylib import make_pki, write_tokens

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_plaintext_and_no_auth_on_the_network_are_warned_about(
    tiny_bundle: TinyBundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(host="0.0.0.0", port=0, state_dir=str(tmp_path / "s"), metrics_port=-1)
    create_server(settings, bundle=load_bundle(tiny_bundle.path))
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "gRPC on 0.0.0.0:0 is plaintext" in warnings[0]
    assert "authentication is off on 0.0.0.0:0" in warnings[1]


def test_loopback_or_tls_with_tokens_starts_without_warnings(
    tiny_bundle: TinyBundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "pki")
    tokens = write_tokens(tmp_path / "tokens", ["ops admin 0123456789abcdef0123"])
    bundle = load_bundle(tiny_bundle.path)
    secured = {
        "tls_cert_file": str(pki.server.cert),
        "tls_key_file": str(pki.server.key),
        "auth_tokens_file": str(tokens),
    }
    for host, extra in (("127.0.0.1", {}), ("0.0.0.0", secured)):
        state = str(tmp_path / f"s-{host}")
        create_server(Settings(host=host, port=0, state_dir=state, **extra), bundle=bundle)
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("[::]", False),
        ("10.0.0.5", False),
        ("recs.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_metrics_on_the_network_is_warned_about() -> None:
    base = {"host": "127.0.0.1"}
    assert exposure_warnings(Settings(**base)) == []  # metrics default: 127.0.0.1
    (warning,) = exposure_warnings(Settings(**base, metrics_host="0.0.0.0"))
    assert "/metrics on 0.0.0.0:9464 is served to the network" in warning
    assert exposure_warnings(Settings(**base, metrics_host="0.0.0.0", metrics_port=-1)) == []


def _list_services(port: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = stub.ServerReflectionInfo(iter([request]), timeout=10)
        return [s.name for s in reply.list_services_response.service]


@pytest.mark.parametrize("enabled", [True, False])
def test_reflection_follows_its_setting(
    tiny_bundle: TinyBundle, tmp_path: Path, enabled: bool
) -> None:
    with started(tiny_bundle.path, tmp_path / "s", reflection=enabled) as (_, port, _registry):
        if enabled:
            assert "coldbridge.v1.Events" in _list_services(port)
        else:
            with pytest.raises(grpc.RpcError) as info:
                _list_services(port)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


# --- /metrics binding, through a real server process (Linux /proc) ---


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
                family = socket.AF_INET if size == 4 else socket.AF_INET6
                found.add((socket.inet_ntop(family, words), int(port, 16)))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_process(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        pythonpath = os.pathsep.join(
            str(ROOT / d) for d in ("bundle", "client", "plugins", "protos", "server")
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "coldbridge_server"],
            env={
                **os.environ,
                "PYTHONPATH": pythonpath,
                "PYTHONUNBUFFERED": "1",
                "COLDBRIDGE_BUNDLE_PATH": str(tiny_bundle.path),
                "COLDBRIDGE_STATE_DIR": str(tmp_path / f"state{len(procs)}"),
                "COLDBRIDGE_PORT": "0",
                "COLDBRIDGE_DRAIN_SECONDS": "0",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if "coldbridge: serving on" in line:
                return proc
        raise AssertionError(f"the server exited with {proc.wait()}")

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_metrics_listens_on_loopback_by_default(
    server_process: Callable[..., subprocess.Popen[str]],
) -> None:
    metrics_port = _free_port()
    proc = server_process(COLDBRIDGE_METRICS_PORT=str(metrics_port), COLDBRIDGE_HOST="0.0.0.0")
    sockets = _listening(proc.pid)
    assert ("127.0.0.1", metrics_port) in sockets, sockets
    assert {port for _, port in sockets if port == metrics_port} == {metrics_port}
    assert not [a for a, p in sockets if p == metrics_port and not a.startswith("127.")]
    assert len(sockets) == 2, sockets  # gRPC and /metrics


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_metrics_port_minus_one_serves_no_metrics(
    server_process: Callable[..., subprocess.Popen[str]],
) -> None:
    proc = server_process(COLDBRIDGE_METRICS_PORT="-1", COLDBRIDGE_HOST="127.0.0.1")
    sockets = _listening(proc.pid)
    assert len(sockets) == 1, sockets  # the gRPC port alone
