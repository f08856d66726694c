"""Process lifecycle on real subprocess servers: ports in use, SIGTERM drain and grace.

* A second server on a port in use (gRPC or metrics) exits 2 with one clear error line and
  no traceback, through both entry points (``python -m coldbridge_server`` and
  ``coldbridge serve``).
* SIGTERM: readiness (all three health services) turns NOT_SERVING while liveness stays
  SERVING and every call is still served for ``drain_seconds``; then new calls are refused,
  an in-flight stream may finish within ``grace_seconds``, one held past it is cancelled,
  and the process exits 0.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import batch, event
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join(
    str(ROOT / p) for p in ("bundle", "cli", "server", "plugins", "protos")
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
READINESS = ("", "coldbridge.v1.Recommender", "coldbridge.v1.Events")


class Process:
    """A server subprocess; ``address`` once it printed "serving on"."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr = stderr.open("w")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def address(self) -> str:
        while (line := self.lines.get(timeout=120)) is not None:
            if "serving" in line:
                return line.strip().rsplit(" ", 1)[1]
        raise AssertionError(f"exited with {self.proc.wait()}: {self.stderr()}")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._pump_thread.join(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def start(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[Any]:
    processes: list[Process] = []

    def start(name: str, *, cli: bool = False, **settings: Any) -> Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
        env["PYTHONPATH"] = PYTHONPATH
        values = dict(
            bundle_path=tiny_bundle.path,
            state_dir=tmp_path / f"state-{name}",
            host="127.0.0.1",
            port=0,
            metrics_port=-1,
        )
        values.update(settings)
        if cli:
            argv = [sys.executable, "-m", "coldbridge_cli", "serve"]
            argv += [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]
        else:
            argv = [sys.executable, "-m", "coldbridge_server"]
            env.update({f"COLDBRIDGE_{k.upper()}": str(v) for k, v in values.items()})
        process = Process(argv, env, tmp_path / f"{name}.stderr")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_clean_error(process: Process, *words: str) -> None:
    assert process.proc.wait(timeout=120) == 2
    err = process.stderr()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1 and "error:" in lines[0], err  # one line, nothing from grpc
    for word in words:
        assert word in lines[0], err


@pytest.mark.parametrize("cli", [False, True], ids=["python-m", "coldbridge-serve"])
def test_second_server_on_a_used_port_exits_2(start: Any, cli: bool) -> None:
    port = free_port()
    first = start("first", port=port)
    address = first.address()
    second = start("second", cli=cli, port=port)
    assert_one_clean_error(second, "port", f"cannot bind 127.0.0.1:{port}")
    with grpc.insecure_channel(address) as channel:  # the first one keeps serving
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING


@pytest.mark.parametrize("cli", [False, True], ids=["python-m", "coldbridge-serve"])
def test_metrics_port_in_use_exits_2(start: Any, cli: bool) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        server = start("metrics", cli=cli, metrics_host="127.0.0.1", metrics_port=port)
        assert_one_clean_error(server, "metrics_port", f"cannot listen on 127.0.0.1:{port}")


def test_sigterm_drains_then_finishes_in_flight_calls_within_the_grace(start: Any) -> None:
    server = start("drain", drain_seconds=6, grace_seconds=4)
    address = server.address()
    with grpc.insecure_channel(address) as channel, grpc.insecure_channel(address) as idle:
        health = health_pb2_grpc.HealthStub(channel)
        rec = recommender_pb2_grpc.RecommenderStub(channel)
        finishing, finishing_feed = _open_stream(channel, "fin")
        held, _ = _open_stream(idle, "held")  # never closed by the client

        server.proc.send_signal(signal.SIGTERM)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING:
            pass
        # the drain: readiness NOT_SERVING everywhere, liveness SERVING, calls still served
        for service in READINESS:
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert status.status == NOT_SERVING, service
        live = health.Check(health_pb2.HealthCheckRequest(service="coldbridge.liveness"))
        assert live.status == SERVING
        assert len(rec.Recommend(pb.RecommendRequest(user_id="u0", k=3), timeout=10).items) == 3
        finishing_feed.put(batch(2, event("fin-2", "u1", "v2")))
        assert next(finishing).accepted == 1  # the held stream keeps working

        # the grace: new calls refused, the in-flight stream may still finish
        while _answers(health):
            pass
        finishing_feed.put(batch(3, event("fin-3", "u1", "v3")))
        assert next(finishing).accepted == 1
        finishing_feed.put(None)
        assert list(finishing) == []  # ended by the client: status OK
        assert finishing.code() is grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as cancelled:  # held past the grace
            next(held)
        assert cancelled.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert server.proc.wait(timeout=60) == 0, server.stderr()
    assert "Traceback" not in server.stderr()


def _open_stream(channel: grpc.Channel, tag: str) -> tuple[Any, queue.Queue[Any]]:
    feed: queue.Queue[Any] = queue.Queue()
    feed.put(batch(1, event(f"{tag}-1", "u0", "v1")))
    call = events_pb2_grpc.EventsStub(channel).StreamEvents(iter(feed.get, None), timeout=120)
    assert next(call).accepted == 1
    return call, feed


def _answers(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    except grpc.RpcError:
        return False
    return True


def test_second_signal_ends_the_drain(start: Any) -> None:
    server = start("hurry", drain_seconds=600)
    address = server.address()
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        server.proc.send_signal(signal.SIGTERM)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING:
            pass
        server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0, server.stderr()  # not after 600 s
