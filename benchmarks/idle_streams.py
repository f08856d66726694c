"""Idle streams benchmark: Recommend latency with 0 vs N idle streams open on the same server.

The real server runs in a subprocess (``python -m coldbridge_server``, 10k-item random
bundle). A closed-loop client sends ``Recommend`` (k=10) from ``--concurrency`` threads; each
round measures it first with no stream open (baseline), then with ``--streams`` idle streams
open (half ``Health.Watch``, half ``StreamEvents`` that sent one batch and wait), then closes
them. The figure is the p99 ratio with / without streams (target <= 2x), per round and the
median. Before the admission layer (``coldbridge_server.admission``) the server had 8 handler
threads in all, and 8 idle streams stopped every other call.

Usage::

    python benchmarks/idle_streams.py --streams 200 --requests 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "trainer", "protos", "plugins"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import (  # noqa: E402
    events_pb2,
    events_pb2_grpc,
    recommender_pb2_grpc,  # noqa: E402
)
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from serving import free_port, make_bundle  # noqa: E402

PACKAGES = ("bundle", "server", "plugins", "protos")
HEADER = "| round | p50 ms, 0 streams | p99 ms | p50 ms, with streams | p99 ms | p99 ratio |"


def start_server(bundle: Path, state: Path, port: int, streams: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
    env.update(
        PYTHONPATH=os.pathsep.join(
            str(ROOT / p) for p in ("bundle", "server", "plugins", "protos")
        ),
        COLDBRIDGE_BUNDLE_PATH=str(bundle),
        COLDBRIDGE_STATE_DIR=str(state),
        COLDBRIDGE_HOST="127.0.0.1",
        COLDBRIDGE_PORT=str(port),
        COLDBRIDGE_METRICS_PORT="-1",
        COLDBRIDGE_LOG_LEVEL="WARNING",
        COLDBRIDGE_MAX_STREAMS=str(max(256, streams)),
        COLDBRIDGE_MAX_STREAMS_PER_CLIENT=str(streams),
        COLDBRIDGE_DRAIN_SECONDS="0",
    )
    process = subprocess.Popen([sys.executable, "-m", "coldbridge_server"], env=env)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return process
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready")


def measure(address: str, users: list[str], requests: int, concurrency: int) -> np.ndarray:
    """Latencies (ms) of ``requests`` Recommend calls from ``concurrency`` threads."""
    with grpc.insecure_channel(address) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        stub.Recommend(pb.RecommendRequest(user_id=users[0], k=10), timeout=30)

        def one(i: int) -> float:
            start = time.perf_counter()
            stub.Recommend(pb.RecommendRequest(user_id=users[i % len(users)], k=10), timeout=30)
            return (time.perf_counter() - start) * 1000

        with futures.ThreadPoolExecutor(concurrency) as pool:
            return np.array(list(pool.map(one, range(requests))))


class IdleStreams:
    """``n`` idle streams over 4 connections: half Health.Watch, half StreamEvents."""

    def __init__(self, address: str, n: int, round_no: int) -> None:
        self.channels = [grpc.insecure_channel(address) for _ in range(4)]
        self.calls: list[Any] = []
        self.feeds: list[queue.Queue[Any]] = []
        for i in range(n):
            channel = self.channels[i % 4]
            if i % 2:
                call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            else:
                feed: queue.Queue[Any] = queue.Queue()
                event = events_pb2.Event(
                    event_id=f"r{round_no}-s{i}",
                    user_id=f"idle-{i}",
                    item_id="t0",
                    domain=events_pb2.DOMAIN_TARGET,
                )
                feed.put(events_pb2.EventBatch(sequence=1, events=[event]))
                self.feeds.append(feed)
                call = events_pb2_grpc.EventsStub(channel).StreamEvents(iter(feed.get, None))
            next(call)  # its handler runs and holds its thread from now on
            self.calls.append(call)

    def close(self) -> None:
        for feed in self.feeds:
            feed.put(None)
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp), args.items, 2000, 64)
        port = free_port()
        address = f"127.0.0.1:{port}"
        server = start_server(bundle, Path(tmp) / "state", port, args.streams)
        users = [f"u{i}" for i in range(1000)]
        ratios = []
        try:
            print(
                "| round | p50 ms, 0 streams | p99 ms | p50 ms, with streams | p99 ms | p99 ratio |"
            )
            print("|---|---|---|---|---|---|")
            for r in range(args.rounds):
                base = measure(address, users, args.requests, args.concurrency)
                streams = IdleStreams(address, args.streams, r)
                try:
                    loaded = measure(address, users, args.requests, args.concurrency)
                finally:
                    streams.close()
                p99 = [float(np.percentile(x, 99)) for x in (base, loaded)]
                p50 = [float(np.percentile(x, 50)) for x in (base, loaded)]
                ratios.append(p99[1] / p99[0])
                print(
                    f"| {r + 1} | {p50[0]:.2f} | {p99[0]:.2f} | {p50[1]:.2f} | {p99[1]:.2f} "
                    f"| {ratios[-1]:.2f} |"
                )
        finally:
            server.terminate()
            server.wait()
        median = statistics.median(ratios)
        print(f"median p99 ratio ({args.streams} idle streams / none): {median:.2f}")


if __name__ == "__main__":
    main()
