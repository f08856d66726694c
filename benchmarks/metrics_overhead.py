"""Per-request cost of observability (metrics + request id + access log) vs Recommend itself.

Both arms call the real ``RecommenderServicer.Recommend`` handler in this process on a
10k-item random bundle:

* bare: the servicer over an engine without metrics, called directly;
* observed: the same handler wrapped by ``ServerInterceptor`` (every grpc_server_* series,
  request id) over an engine that also counts answers, fallbacks and inference time;
* logged: observed plus the JSON access log (written to a discarded stream).

The in-process arms leave the gRPC transport out, so the overhead is measured against the
smallest denominator (the handler's own work). Two more arms measure what a client sees:
sequential ``Recommend`` calls over loopback gRPC to two in-process servers with the same
thread pool, one bare, one with the interceptor and metrics (the server's default).
Two A/A controls (a second bare engine, a second bare server) show how far two identical
arms drift apart here: an overhead smaller than that is not resolved. A last pair times an
empty handler bare and wrapped (recording the same metrics a served
Recommend records), which isolates the layer's own cost in µs from the model run's noise.
The arms take turns call by call (shuffled order per request) and every call is timed, so
load from elsewhere hits all arms alike; shares compare medians of per-call times.

Usage::

    python benchmarks/metrics_overhead.py --calls 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "trainer", "protos", "plugins"):
    sys.path.insert(0, str(ROOT / sub))

import grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from coldbridge_plugins import get_plugin_manager, load_strategies  # noqa: E402
from coldbridge_server.app import build_engine  # noqa: E402
from coldbridge_server.bundle import load_bundle  # noqa: E402
from coldbridge_server.config import Settings  # noqa: E402
from coldbridge_server.core import Provenance, Stage  # noqa: E402
from coldbridge_server.observability.interceptor import ServerInterceptor  # noqa: E402
from coldbridge_server.observability.logs import configure_logging  # noqa: E402
from coldbridge_server.observability.metrics import Metrics  # noqa: E402
from coldbridge_server.serving.engine import RecommendationEngine  # noqa: E402
from coldbridge_server.serving.servicer import RecommenderServicer  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from serving import make_bundle  # noqa: E402


class _Context:
    """The few ServicerContext methods the handler and interceptor use."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def code(self) -> None:
        return None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(details)


def _engine(bundle: Any, metrics: Metrics | None) -> RecommendationEngine:
    # unbatched top-k: every arm runs its own model call, as before the engine was assembled
    strategies = load_strategies(get_plugin_manager())
    engine = build_engine(Settings(topk_batch_size=1), bundle, strategies, metrics)
    engine.warmup()
    return engine


def _time(handler: Any, requests: list[pb.RecommendRequest]) -> float:
    ctx = _Context()
    start = time.perf_counter()
    for request in requests:
        handler(request, ctx)
    return (time.perf_counter() - start) / len(requests)


def _grpc_arm(servicer: RecommenderServicer, interceptors: list[Any]) -> tuple[Any, Any]:
    """A loopback server for ``servicer`` and a caller of its Recommend method."""
    from concurrent import futures

    from coldbridge.v1 import recommender_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    recommender_pb2_grpc.add_RecommenderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = recommender_pb2_grpc.RecommenderStub(channel)

    def call(request: pb.RecommendRequest, _ctx: Any) -> Any:
        return stub.Recommend(request)

    return server, call


def _noop_arms(metrics: Metrics, response: pb.RecommendResponse) -> tuple[Any, Any]:
    """A handler that does no work, bare and wrapped, recording what a served Recommend records.

    The difference between the two is the observability layer's own cost in µs, measured
    without the noise of the model run.
    """

    def bare(request: pb.RecommendRequest, context: Any) -> pb.RecommendResponse:
        return response

    def observed_inner(request: pb.RecommendRequest, context: Any) -> pb.RecommendResponse:
        metrics.observe_inference("topk", 1e-4)  # what the engine records per answer
        metrics.count_answer(Provenance.TRANSFERRED, "emcdr", "", Stage.TRANSFERRED)
        return response

    handler = grpc.unary_unary_rpc_method_handler(observed_inner)
    details = type("D", (), {"method": "/coldbridge.v1.Recommender/Recommend"})()
    observed = ServerInterceptor(metrics).intercept_service(lambda _: handler, details).unary_unary
    return bare, observed


def _interleaved(
    arms: dict[str, Any], requests: list[pb.RecommendRequest], rounds: int, rng: random.Random
) -> dict[str, list[float]]:
    """Per-call seconds of every arm, the arms taking turns call by call in a shuffled order.

    Interleaving at the call level means a burst of load from elsewhere on this shared
    machine hits every arm alike; medians of per-call times then ignore the bursts.
    """
    ctx = _Context()
    clock = time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in arms}
    order = list(arms)
    for _ in range(rounds):
        for request in requests:
            rng.shuffle(order)
            for name in order:
                start = clock()
                arms[name](request, ctx)
                times[name].append(clock() - start)
    return times


def _share(
    times: dict[str, list[float]], arm: str, base: str, rounds: int
) -> tuple[float, float, float]:
    """``median(arm) / median(base) - 1`` over all calls, and its range over the rounds."""

    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(a) / statistics.median(b) - 1

    n = len(times[base]) // rounds
    per_round = sorted(
        ratio(times[arm][i * n : (i + 1) * n], times[base][i * n : (i + 1) * n])
        for i in range(rounds)
    )
    return ratio(times[arm], times[base]), per_round[0], per_round[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=2000, help="calls per arm per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="shuffles the arm order per round")
    args = parser.parse_args(argv)
    configure_logging("json", "INFO", stream=io.StringIO())  # output discarded
    logging.getLogger("coldbridge.access").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(make_bundle(Path(tmp), args.items, 2000, 64))
        bare = RecommenderServicer(_engine(bundle, None)).Recommend
        metrics = Metrics(CollectorRegistry())
        observed_servicer = RecommenderServicer(_engine(bundle, metrics))
        handler = grpc.unary_unary_rpc_method_handler(observed_servicer.Recommend)
        details = type("D", (), {"method": "/coldbridge.v1.Recommender/Recommend"})()
        observed = (
            ServerInterceptor(metrics).intercept_service(lambda _: handler, details).unary_unary
        )
        logged = (
            ServerInterceptor(metrics, access_log=True)
            .intercept_service(lambda _: handler, details)
            .unary_unary
        )
        users = [f"u{i}" for i in range(2000)]
        requests = [
            pb.RecommendRequest(user_id=users[i % len(users)], k=10) for i in range(args.calls)
        ]
        noop_bare, noop_observed = _noop_arms(
            Metrics(CollectorRegistry()), bare(requests[0], _Context())
        )
        bare_again = RecommenderServicer(_engine(bundle, None)).Recommend  # A/A control
        wire_bare_server, wire_bare = _grpc_arm(RecommenderServicer(_engine(bundle, None)), [])
        wire_again_server, wire_again = _grpc_arm(RecommenderServicer(_engine(bundle, None)), [])
        wire_metrics = Metrics(CollectorRegistry())
        wire_obs_server, wire_observed = _grpc_arm(
            RecommenderServicer(_engine(bundle, wire_metrics)), [ServerInterceptor(wire_metrics)]
        )
        arms = {
            "bare": bare,
            "bare_again": bare_again,
            "observed": observed,
            "logged": logged,
            "noop_bare": noop_bare,
            "noop_observed": noop_observed,
            "wire_bare": wire_bare,
            "wire_again": wire_again,
            "wire_observed": wire_observed,
        }
        for handler_fn in arms.values():
            _time(handler_fn, requests[:200])  # warm caches
        times = _interleaved(arms, requests, args.rounds, random.Random(args.seed))
        for server in (wire_bare_server, wire_again_server, wire_obs_server):
            server.stop(None)
    med = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    layer = med["noop_observed"] - med["noop_bare"]
    print(f"# items={args.items} calls={args.calls} rounds={args.rounds} seed={args.seed}")
    print("| arm | median µs/call |")
    print("|---|---|")
    print(f"| Recommend handler, no observability | {med['bare']:.1f} |")
    print(f"| same, with interceptor + all metrics (default) | {med['observed']:.1f} |")
    print(f"| same, plus the JSON access log (COLDBRIDGE_ACCESS_LOG=true) | {med['logged']:.1f} |")
    print(f"| empty handler, bare | {med['noop_bare']:.2f} |")
    print(
        "| empty handler + interceptor + the metrics a Recommend records | "
        f"{med['noop_observed']:.2f} |"
    )
    print(f"| Recommend over loopback gRPC, no observability | {med['wire_bare']:.1f} |")
    print(
        "| Recommend over loopback gRPC, interceptor + all metrics (default) | "
        f"{med['wire_observed']:.1f} |"
    )
    print()
    print("| overhead | share | lowest .. highest round |")
    print("|---|---|---|")
    print(
        f"| observability layer alone: {layer:.1f} µs / Recommend handler | "
        f"{layer / med['bare'] * 100:.1f} % | |"
    )
    print(
        f"| observability layer alone / Recommend over gRPC | {layer / med['wire_bare'] * 100:.1f} "
        "% | |"
    )
    for label, arm, base in (
        ("in-handler, metrics", "observed", "bare"),
        ("in-handler, metrics + access log", "logged", "bare"),
        ("in-handler, A/A control: a second bare engine", "bare_again", "bare"),
        ("over gRPC, metrics (what a client sees)", "wire_observed", "wire_bare"),
        ("over gRPC, A/A control: a second bare server", "wire_again", "wire_bare"),
    ):
        mid, lo, hi = _share(times, arm, base, args.rounds)
        print(f"| {label} | {mid * 100:.1f} % | {lo * 100:.1f} % .. {hi * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
