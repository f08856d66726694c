"""Serving benchmark: Recommend QPS and latency next to a bare gRPC server.

For each catalogue size a random bundle is written, the real coldbridge server is
started in a subprocess (once with dynamic top-k batching, the default, and once with
``COLDBRIDGE_TOPK_BATCH_SIZE=1``), and the same closed-loop client load is sent to it and to
a bare gRPC server (same port setup, same method path, answering a precomputed
``RecommendResponse`` of the same size without doing any work). The figure that
matters is the ratio coldbridge / bare, measured in the same script run, because
this machine is shared and absolute numbers drift.

Usage::

    python benchmarks/serving.py --items 10000 100000 --requests 4000 --concurrency 8

``--history`` measures the history part instead (issue 15): the same bundle with an
item-to-item history model (``--neighbours`` random positive weights per item), the same
``--history-events`` target events streamed for each of ``--history-users`` users through
``StreamEvents``, then the same Recommend load over those users against the server with the
history part on and with ``COLDBRIDGE_HISTORY_BLEND=0`` (both servers up, the load
alternating between them for ``--rounds`` rounds); the median ratio on / off is the figure
(target >= 0.9)::

    python benchmarks/serving.py --history --items 10000 --requests 4000 --concurrency 8
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "trainer", "protos", "plugins"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import events_pb2, events_pb2_grpc, recommender_pb2  # noqa: E402

METHOD = "/coldbridge.v1.Recommender/Recommend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_bundle(out: Path, n_items: int, n_users: int, dim: int, seed: int = 0) -> Path:
    """A bundle with random weights: serving cost does not depend on their values."""
    from coldbridge_bundle import BundleContent, Sides, write
    from coldbridge_trainer.export import BaseWeights

    rng = np.random.default_rng(seed)
    n_src = 5000
    weights = BaseWeights(
        source_item_emb=rng.normal(size=(n_src, dim)),
        encoder_weight=rng.normal(size=(dim, dim)) / np.sqrt(dim),
        encoder_bias=np.zeros(dim),
        source_user_emb=rng.normal(size=(n_users, dim)),
        bridge_layers=[
            (rng.normal(size=(dim, 2 * dim)) / np.sqrt(dim), np.zeros(2 * dim)),
            (rng.normal(size=(2 * dim, dim)) / np.sqrt(2 * dim), np.zeros(dim)),
        ],
        target_item_emb=rng.normal(size=(n_items, dim)),
        target_item_bias=rng.normal(size=n_items),
        target_user_emb=rng.normal(size=(n_users // 2, dim)),
        target_item_popularity=rng.integers(0, 100, size=n_items).astype(np.float32),
    )
    return write(
        out,
        BundleContent(
            domains=Sides("source", "target"),
            feedback="implicit",
            items=Sides([f"s{i}" for i in range(n_src)], [f"t{i}" for i in range(n_items)]),
            users=Sides([f"u{i}" for i in range(n_users)], [f"u{i}" for i in range(n_users // 2)]),
            models=weights.models(),
            arrays=weights.arrays(),
        ),
    )


def wait_serving(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"server on port {port} not SERVING after {timeout}s")


def serve_bare(port: int, k: int) -> None:
    """The baseline: a gRPC server that answers Recommend with a fixed response."""
    response = recommender_pb2.RecommendResponse(
        items=[recommender_pb2.ScoredItem(item_id=f"t{i}", score=1.0) for i in range(k)],
        model_version="bare",
    ).SerializeToString()
    handler = grpc.method_handlers_generic_handler(
        "coldbridge.v1.Recommender",
        {"Recommend": grpc.unary_unary_rpc_method_handler(lambda req, ctx: response)},
    )
    from grpc_health.v1 import health

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def history_model(n_items: int, neighbours: int, seed: int = 0) -> object:
    """A history model of random positive weights (cost depends on sizes, not values)."""
    from coldbridge_bundle.history import HistoryModel

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, size=(n_items, neighbours))
    w = rng.uniform(0.01, 1.0, size=(n_items, neighbours))
    return HistoryModel.from_neighbours(
        idx, w, events=(1, 2, 3, 5, 10), history_weight=(0.3, 0.4, 0.5, 0.6, 0.7)
    )


def serve_with_history(neighbours: int) -> None:
    """``python -m coldbridge_server`` with a history model attached to the bundle.

    Until the trainer writes the bundle's history section, the benchmark attaches the model
    to the loaded bundle (``Bundle.history``), exactly where the server reads it.
    """
    import dataclasses

    from coldbridge_server import Settings, load_bundle
    from coldbridge_server.app import serve

    settings = Settings.from_env()
    bundle = load_bundle(settings.bundle_path)
    model = history_model(len(bundle.target_item_ids), neighbours)
    serve(settings, bundle=dataclasses.replace(bundle, history=model))


def stream_history(port: int, users: list[str], n_items: int, per_user: int) -> None:
    """``per_user`` implicit target events for each of ``users`` (same items every run)."""
    rng = np.random.default_rng(1)
    events = [
        events_pb2.Event(
            event_id=f"{user}-{j}",
            user_id=user,
            item_id=f"t{int(item)}",
            domain=events_pb2.DOMAIN_TARGET,
            kind=events_pb2.EVENT_KIND_IMPLICIT,
        )
        for user in users
        for j, item in enumerate(rng.integers(0, n_items, size=per_user))
    ]
    batches = [
        events_pb2.EventBatch(sequence=i + 1, events=events[start : start + 1000])
        for i, start in enumerate(range(0, len(events), 1000))
    ]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        acks = list(events_pb2_grpc.EventsStub(channel).StreamEvents(iter(batches)))
    assert sum(a.accepted for a in acks) == len(events), "events were rejected"


def load(port: int, users: list[str], requests: int, concurrency: int, k: int) -> dict[str, float]:
    """Closed loop: ``concurrency`` threads, each on its own channel, ``requests`` calls in all."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = requests // concurrency

    def worker(t: int) -> None:
        own: list[float] = []
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                METHOD,
                request_serializer=recommender_pb2.RecommendRequest.SerializeToString,
                response_deserializer=recommender_pb2.RecommendResponse.FromString,
            )
            for i in range(per_thread):
                req = recommender_pb2.RecommendRequest(
                    user_id=users[(t * per_thread + i) % len(users)], k=k
                )
                start = time.perf_counter()
                call(req, timeout=30)
                own.append(time.perf_counter() - start)
        with lock:
            latencies.extend(own)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000.0
    return {
        "qps": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_one(n_items: int, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    bundle = make_bundle(workdir / f"items{n_items}", n_items, args.users, args.dim)
    users = [f"u{i}" for i in range(args.users)]  # half warm, half transferred
    results: dict[str, object] = {"items": n_items}
    server = [sys.executable, "-m", "coldbridge_server"]
    for name, cmd, env in (
        ("bare", [sys.executable, __file__, "--bare-server"], {}),
        ("coldbridge", server, {"COLDBRIDGE_BUNDLE_PATH": str(bundle)}),
        (
            "unbatched",
            server,
            {"COLDBRIDGE_BUNDLE_PATH": str(bundle), "COLDBRIDGE_TOPK_BATCH_SIZE": "1"},
        ),
    ):
        env = {**env, "COLDBRIDGE_STATE_DIR": str(workdir / f"state-{name}-{n_items}")}
        port = free_port()
        env = {
            **env,
            "COLDBRIDGE_PORT": str(port),
            "COLDBRIDGE_HOST": "127.0.0.1",
            "COLDBRIDGE_METRICS_PORT": "-1",
            "PYTHONPATH": os.pathsep.join(
                str(ROOT / s) for s in ("bundle", "server", "plugins", "protos", "trainer")
            ),
        }
        if name == "bare":
            cmd = cmd + [str(port), str(args.k)]
        proc = start(cmd, env)
        try:
            wait_serving(port)
            load(port, users, min(200, args.requests), args.concurrency, args.k)  # warm-up
            results[name] = load(port, users, args.requests, args.concurrency, args.k)
        finally:
            stop(proc)
    return results


def history_env(
    bundle: Path, blend: str, state_dir: Path, port: int, ahead: bool = False
) -> dict[str, str]:
    """Environment of one ``--history-server`` (history part on: ``blend="1"``)."""
    return {
        "COLDBRIDGE_BUNDLE_PATH": str(bundle),
        "COLDBRIDGE_HISTORY_BLEND": blend,
        "COLDBRIDGE_HISTORY_PREPARE_AHEAD": "1" if ahead else "0",
        "COLDBRIDGE_STATE_DIR": str(state_dir),
        "COLDBRIDGE_STATE_SYNC": "NORMAL",
        "COLDBRIDGE_PORT": str(port),
        "COLDBRIDGE_HOST": "127.0.0.1",
        "COLDBRIDGE_METRICS_PORT": "-1",
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / s) for s in ("bundle", "server", "plugins", "protos", "trainer")
        ),
    }


def bench_history(n_items: int, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    """Recommend for users with a streamed history: the history part on vs off.

    Both servers run side by side and the load alternates between them for ``--rounds``
    rounds (order swapped every round), so that drift of a shared machine hits both alike;
    each round's ratio on / off is kept.
    """
    bundle = make_bundle(workdir / f"items{n_items}", n_items, args.users, args.dim)
    users = [f"h{i}" for i in range(args.history_users)]  # cold users: online vectors
    cmd = [sys.executable, __file__, "--history-server", str(args.neighbours)]
    ports = {"on": free_port(), "off": free_port()}
    procs = {
        name: start(
            cmd,
            history_env(
                bundle, blend, workdir / f"state-{name}-{n_items}", port, args.prepare_ahead
            ),
        )
        for (name, port), blend in zip(ports.items(), ("1", "0"), strict=True)
    }
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    try:
        for port in ports.values():
            wait_serving(port)
            stream_history(port, users, n_items, args.history_events)
            load(port, users, min(200, args.requests), args.concurrency, args.k)  # warm-up
        for r in range(args.rounds):
            for name in ("on", "off") if r % 2 == 0 else ("off", "on"):
                runs[name].append(load(ports[name], users, args.requests, args.concurrency, args.k))
    finally:
        for proc in procs.values():
            stop(proc)
    ratios = [on["qps"] / off["qps"] for on, off in zip(runs["on"], runs["off"], strict=True)]
    return {"items": n_items, **runs, "ratios": ratios}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def main_history(args: argparse.Namespace) -> int:
    print(
        f"# history part: users={args.history_users} events/user={args.history_events} "
        f"neighbours={args.neighbours} dim={args.dim} k={args.k} requests={args.requests} "
        f"concurrency={args.concurrency} rounds={args.rounds} (medians; ratio per round)"
    )
    print(
        "| target items | history on QPS | p50 ms | p99 ms | off QPS | p50 ms | p99 ms "
        "| ratio (median) | ratios per round |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n_items in args.items:
            r = bench_history(n_items, args, Path(tmp))
            on, off, ratios = r["on"], r["off"], r["ratios"]
            assert isinstance(on, list) and isinstance(off, list) and isinstance(ratios, list)
            cells = " | ".join(
                f"{_median(runs, key):.{0 if key == 'qps' else 2}f}"
                for runs in (on, off)
                for key in ("qps", "p50_ms", "p99_ms")
            )
            print(
                f"| {n_items:,} | {cells} | {float(np.median(ratios)):.2f} | "
                f"{' '.join(f'{x:.2f}' for x in ratios)} |",
                flush=True,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--history", action="store_true", help="measure the history part on vs off instead"
    )
    parser.add_argument("--history-users", type=int, default=2000)
    parser.add_argument("--history-events", type=int, default=10)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument(
        "--prepare-ahead",
        action="store_true",
        help="--history: the servers prepare blends when events arrive (history_prepare_ahead)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="--history: alternating on/off load rounds"
    )
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--history-server", type=int, metavar="NEIGHBOURS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        serve_bare(int(args.bare_server[0]), int(args.bare_server[1]))
        return 0
    if args.history_server is not None:
        serve_with_history(args.history_server)
        return 0
    if args.history:
        return main_history(args)
    print(
        f"# serving benchmark: users={args.users} dim={args.dim} k={args.k} "
        f"requests={args.requests} concurrency={args.concurrency}"
    )
    print(
        "| target items | coldbridge QPS | p50 ms | p99 ms | bare gRPC QPS | p50 ms | p99 ms "
        "| QPS ratio | without batching: QPS | p50 ms | p99 ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n_items in args.items:
            r = bench_one(n_items, args, Path(tmp))
            cb, bare, nb = r["coldbridge"], r["bare"], r["unbatched"]
            assert isinstance(cb, dict) and isinstance(bare, dict) and isinstance(nb, dict)
            print(
                f"| {n_items:,} | {cb['qps']:.0f} | {cb['p50_ms']:.2f} | {cb['p99_ms']:.2f} | "
                f"{bare['qps']:.0f} | {bare['p50_ms']:.2f} | {bare['p99_ms']:.2f} | "
                f"{cb['qps'] / bare['qps']:.2f} | {nb['qps']:.0f} | {nb['p50_ms']:.2f} | "
                f"{nb['p99_ms']:.2f} | {nb['qps'] / bare['qps']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
