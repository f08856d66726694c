"""coldbridge_client against a real server on a loopback port: deadlines, errors, retries, TLS
hook, and the event-stream helper across a cut connection and a server restart.

Real server (127.0.0.1:0), real onnxruntime, real SQLite in tmp_path, real River; the tiny
bundle of conftest.py. The cut connection goes through a TCP proxy in this file.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from coldbridge.v1 import recommender_pb2_grpc
from coldbridge_client import (
    Client,
    ClientError,
    DeadlineExceededError,
    Domain,
    Event,
    EventKind,
    InvalidArgumentError,
    Provenance,
    RecommendRequest,
    ReconnectPolicy,
    RejectionReason,
    RetryPolicy,
    Timeouts,
    UnavailableError,
)
from coldbridge_server import Settings, create_server
from conftest import TinyBundle
from prometheus_client import CollectorRegistry

FAST_RECONNECT = ReconnectPolicy(max_attempts=100, initial_backoff=0.02, max_backoff=0.2)
#: Channel reconnects every <= 0.2 s while a restarted server is down (gRPC's default: 1-120 s).
QUICK_CHANNEL = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]


@contextlib.contextmanager
def running(
    bundle: Path,
    state_dir: Path,
    *,
    port: int = 0,
    before_start: Callable[[Any], None] | None = None,
    **settings: Any,
) -> Iterator[tuple[int, CollectorRegistry]]:
    """A real server on 127.0.0.1 with its state in ``state_dir``; yields (port, registry).

    It is stopped only after its warm-up ended: stopping while the warm-up thread still
    recovers the event log can leave ``stop(None).wait()`` blocked (seen once in ~30 runs).
    """
    registry = CollectorRegistry()
    config = Settings(
        bundle_path=str(bundle),
        host="127.0.0.1",
        port=port,
        state_dir=str(state_dir),
        metrics_port=-1,
        state_sync="NORMAL",
        **settings,
    )
    server, bound = create_server(config, registry=registry)
    if before_start is not None:
        before_start(server)
    server.start()
    try:
        yield bound, registry
    finally:
        server.wait_until_ready(timeout=60)
        server.stop(None).wait()


@pytest.fixture
def server(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[tuple[int, CollectorRegistry]]:
    with running(tiny_bundle.path, tmp_path / "state", max_batch_events=5) as served:
        wait_serving(served[0])
        yield served


def wait_serving(port: int) -> None:
    """Block until the server at ``port`` answers Recommend (warm-up done)."""
    with Client(f"127.0.0.1:{port}", retry=RetryPolicy(initial_backoff=0.5, max_backoff=5)) as c:
        c.model_info(timeout=30)
        c.recommend("u0", k=1, timeout=30)


def target(eid: str, user: str, item: str) -> Event:
    return Event(
        event_id=eid,
        user_id=user,
        item_id=item,
        domain=Domain.DOMAIN_TARGET,
        kind=EventKind.EVENT_KIND_IMPLICIT,
    )


def handled(registry: CollectorRegistry, code: str) -> float:
    labels = {
        "grpc_service": "coldbridge.v1.Recommender",
        "grpc_method": "Recommend",
        "grpc_type": "unary",
        "grpc_code": code,
    }
    return registry.get_sample_value("grpc_server_handled_total", labels) or 0.0


def poll(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_recommend_with_a_deadline_matches_the_plain_stub(
    server: tuple[int, CollectorRegistry], tiny_bundle: TinyBundle
) -> None:
    port, _ = server
    with Client(f"127.0.0.1:{port}") as client:
        reply = client.recommend("u0", k=5, exclude_item_ids=["v1"], timeout=5.0)
        plain = recommender_pb2_grpc.RecommenderStub(client.channel).Recommend(
            RecommendRequest(user_id="u0", k=5, exclude_item_ids=["v1"])
        )
        assert reply == plain
        assert reply.provenance == Provenance.PROVENANCE_WARM_TARGET
        assert len(reply.items) == 5 and "v1" not in [i.item_id for i in reply.items]
        assert client.model_info().bundle_version == tiny_bundle.version
        scored = client.score("s0", ["v3", "nope"])
        assert [i.item_id for i in scored.items] == ["v3"]
        assert list(scored.unknown_item_ids) == ["nope"]


@pytest.fixture
def slow_server(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[int]:
    """A real server whose Recommend takes a second (a stand-in for an overloaded one)."""

    def slow_down(server: Any) -> None:
        recommend = server.engine.recommend
        server.engine.recommend = lambda *a, **kw: (time.sleep(1.0), recommend(*a, **kw))[1]

    with running(tiny_bundle.path, tmp_path / "state", before_start=slow_down) as (port, _):
        wait_serving(port)
        yield port


@pytest.mark.parametrize("how", ["per-call", "default"])
def test_deadline_exceeded_is_a_clear_error(slow_server: int, how: str) -> None:
    timeouts = Timeouts(recommend=0.1) if how == "default" else Timeouts()
    with Client(f"127.0.0.1:{slow_server}", timeouts=timeouts) as client:
        with pytest.raises(DeadlineExceededError) as info:
            client.recommend("u0", k=5, timeout=0.1 if how == "per-call" else None)
        assert len(client.recommend("u0", k=5, timeout=30).items) == 5
    error = info.value
    assert isinstance(error, grpc.RpcError)
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert (error.method, error.timeout) == ("Recommend", 0.1)
    assert "Recommend did not finish within its 0.1 s deadline" in str(error)


def test_invalid_argument_is_mapped_and_names_the_field(
    server: tuple[int, CollectorRegistry],
) -> None:
    with (
        Client(f"127.0.0.1:{server[0]}") as client,
        pytest.raises(InvalidArgumentError, match="Recommend failed with INVALID_ARGUMENT"),
    ):
        client.recommend("u0", k=0)


def test_tls_credentials_hook_opens_a_secure_channel(server: tuple[int, CollectorRegistry]) -> None:
    """A TLS client cannot talk to the plaintext test server: the credentials are used."""
    with (
        Client(
            f"127.0.0.1:{server[0]}", credentials=grpc.ssl_channel_credentials(), retry=None
        ) as client,
        pytest.raises(UnavailableError),
    ):
        client.model_info(timeout=10)


def test_retry_policy_retries_unavailable_while_the_server_warms_up(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    gate = threading.Event()

    def hold_warmup(server: Any) -> None:
        warmup = server.engine.warmup
        server.engine.warmup = lambda: (gate.wait(60), warmup())

    with running(tiny_bundle.path, tmp_path / "state", before_start=hold_warmup) as served:
        try:
            retried_through_warmup(*served, gate)
        finally:
            gate.set()


def retried_through_warmup(port: int, registry: CollectorRegistry, gate: threading.Event) -> None:
    """Recommend on a server held in warm-up: fails without retries, succeeds with them."""
    with Client(f"127.0.0.1:{port}", retry=None) as once, pytest.raises(UnavailableError):
        once.recommend("u0", k=3)
    assert handled(registry, "UNAVAILABLE") == 1
    policy = RetryPolicy(
        max_attempts=5, initial_backoff=0.3, max_backoff=5.0, backoff_multiplier=4.0
    )
    result: dict[str, Any] = {}
    with Client(f"127.0.0.1:{port}", retry=policy) as client:
        caller = threading.Thread(
            target=lambda: result.update(reply=client.recommend("u0", k=3, timeout=60))
        )
        caller.start()
        poll(lambda: handled(registry, "UNAVAILABLE") >= 2)  # the retried call's 1st try
        gate.set()
        caller.join(60)
    assert result["reply"].provenance == Provenance.PROVENANCE_WARM_TARGET
    assert handled(registry, "OK") == 1


def test_stream_acks_every_batch_and_reports_rejections(
    server: tuple[int, CollectorRegistry],
) -> None:
    seen: list[int] = []
    with Client(f"127.0.0.1:{server[0]}") as client:
        with client.stream_events(on_ack=lambda ack: seen.append(ack.sequence)) as stream:
            sequences = [
                stream.send([target("a1", "ann", "v1"), target("a2", "ann", "v2")]),
                stream.send([target("a3", "ann", "nope")]),
                stream.send([target("a1", "ann", "v1"), target("a4", "ann", "v4")]),
            ]
        assert sequences == [1, 2, 3] == seen
        assert (stream.acked_sequence, stream.unacked, stream.accepted) == (3, [], 3)
        assert stream.duplicates == 1
        assert [(r.event_id, r.reason) for r in stream.rejections] == [
            ("a3", RejectionReason.REJECTION_REASON_UNKNOWN_ITEM)
        ]
        assert client.user_state("ann").target_events == 3


def test_stream_fails_for_good_on_a_refused_batch(server: tuple[int, CollectorRegistry]) -> None:
    with Client(f"127.0.0.1:{server[0]}") as client:
        stream = client.stream_events()
        stream.send([target(f"b{i}", "bob", "v1") for i in range(6)])  # max_batch_events=5
        with pytest.raises(InvalidArgumentError):
            stream.flush(timeout=20)
        assert [b.sequence for b in stream.unacked] == [1]
        with pytest.raises(InvalidArgumentError):
            stream.send([target("b9", "bob", "v2")])
        stream.cancel()


class Proxy:
    """A TCP proxy 127.0.0.1:<port> -> 127.0.0.1:<upstream> that can drop and cut connections.

    :meth:`mute` drops the server's bytes on the connections open now (the client never sees
    the acks); :meth:`cut` closes those connections. New connections are forwarded normally.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            muted = threading.Event()
            with self.lock:
                self.connections.append((downstream, upstream, muted))
            threading.Thread(
                target=self._pump, args=(downstream, upstream, None), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, muted), daemon=True
            ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, muted: threading.Event | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if muted is None or not muted.is_set():
                    sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def mute(self) -> None:
        with self.lock:
            for _, _, muted in self.connections:
                muted.set()

    def cut(self) -> None:
        with self.lock:
            connections, self.connections = self.connections, []
        for downstream, upstream, _ in connections:
            for end in (downstream, upstream):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_stream_resends_unacked_batches_after_a_cut_and_each_event_is_applied_once(
    server: tuple[int, CollectorRegistry],
) -> None:
    proxy = Proxy(server[0])
    direct = Client(f"127.0.0.1:{server[0]}")
    try:
        with Client(f"127.0.0.1:{proxy.port}", options=QUICK_CHANNEL) as client:
            stream = client.stream_events(reconnect=FAST_RECONNECT)
            stream.send([target("c1", "cat", "v1"), target("c2", "cat", "v2")])
            stream.flush(timeout=20)
            proxy.mute()  # the server still gets batches 2-3 and applies them; no ack arrives
            stream.send([target("c3", "cat", "v3")])
            stream.send([target("c4", "cat", "v4"), target("c5", "cat", "v5")])
            poll(lambda: direct.user_state("cat").target_events == 5)
            assert [b.sequence for b in stream.unacked] == [2, 3]
            proxy.cut()
            stream.send([target("c6", "cat", "v6")])
            stream.close(timeout=30)
        assert stream.reconnects >= 1
        assert (stream.acked_sequence, stream.unacked) == (4, [])
        assert (stream.accepted, stream.duplicates, stream.rejections) == (3, 3, [])
        state = direct.user_state("cat")
        assert (state.target_events, state.online_updates, state.seen_items) == (6, 6, 6)
    finally:
        direct.close()
        proxy.close()


def test_stream_resends_across_a_server_restart_on_the_same_state_dir(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    with running(tiny_bundle.path, state_dir) as (port, _):
        wait_serving(port)
        client = Client(f"127.0.0.1:{port}", options=QUICK_CHANNEL)
        stream = client.stream_events(reconnect=FAST_RECONNECT)
        stream.send([target("d1", "dan", "v1")])
        stream.flush(timeout=20)
    try:
        stream.send([target("d2", "dan", "v2"), target("d1", "dan", "v1")])  # server is down
        assert [b.sequence for b in stream.unacked] == [2]
        with running(tiny_bundle.path, state_dir, port=port):
            stream.close(timeout=60)
            state = client.user_state("dan", timeout=30)
        assert (stream.acked_sequence, stream.accepted, stream.duplicates) == (2, 2, 1)
        assert (state.target_events, state.seen_items) == (2, 2)
    finally:
        client.close()


def test_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, coldbridge_client; "
        "print(sorted(m for m in ('onnxruntime', 'river', 'torch', 'numpy', "
        "'coldbridge_server', 'prometheus_client') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{root / 'client'}:{root / 'protos'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_client_error_is_raised_from_the_grpc_error(server: tuple[int, CollectorRegistry]) -> None:
    with Client(f"127.0.0.1:{server[0]}") as client, pytest.raises(ClientError) as info:
        client.user_state("")
    assert isinstance(info.value.__cause__, grpc.RpcError)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_public_names_are_sorted_and_exported() -> None:
    import coldbridge_client

    assert coldbridge_client.__all__ == sorted(coldbridge_client.__all__)
    missing = [name for name in coldbridge_client.__all__ if not hasattr(coldbridge_client, name)]
    assert not missing


@pytest.mark.parametrize("balance", ["round_robin", "pick_first"])
def test_a_target_naming_two_replicas_spreads_calls_with_round_robin(
    tiny_bundle: TinyBundle, tmp_path: Path, balance: str
) -> None:
    """``Client("ipv4:a,b")`` balances per call by default (``balance="round_robin"``);
    ``pick_first``, gRPC's own default, would send every call to one replica."""
    with (
        running(tiny_bundle.path, tmp_path / "a") as (port_a, reg_a),
        running(tiny_bundle.path, tmp_path / "b") as (port_b, reg_b),
    ):
        wait_serving(port_a)
        wait_serving(port_b)
        before = handled(reg_a, "OK"), handled(reg_b, "OK")
        target = f"ipv4:127.0.0.1:{port_a},127.0.0.1:{port_b}"
        policy = {} if balance == "round_robin" else {"balance": balance}  # the default first
        with Client(target, **policy) as client:
            for n in range(40):
                client.recommend(f"u{n % 3}", k=2, timeout=30)
        calls = handled(reg_a, "OK") - before[0], handled(reg_b, "OK") - before[1]
    assert sum(calls) == 40
    if balance == "round_robin":
        assert min(calls) >= 10, calls  # both replicas serve (round robin: about 20 each)
    else:
        assert min(calls) == 0, calls
