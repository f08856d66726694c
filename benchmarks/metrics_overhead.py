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
Arms alternate in rounds and the median per-call time of each is compared.

Usage::

    python benchmarks/metrics_overhead.py --calls 2000 --rounds 7
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for sub in ("server", "trainer", "protos", "plugins"):
    sys.path.insert(0, str(ROOT / sub))

import grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from coldbridge_server.bundle import load_bundle  # noqa: E402
from coldbridge_server.engine import Limits, RecommendationEngine  # noqa: E402
from coldbridge_server.interceptor import ServerInterceptor  # noqa: E402
from coldbridge_server.logs import configure_logging  # noqa: E402
from coldbridge_server.metrics import Metrics  # noqa: E402
from coldbridge_server.servicer import RecommenderServicer  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from serving import make_bundle  # noqa: E402


class _Context:
    """The few ServicerContext methods the handler and interceptor use."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def send_initial_metadata(self, metadata: Any) -> None:
        pass

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def code(self) -> None:
        return None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(details)


def _engine(bundle: Any, metrics: Metrics | None) -> RecommendationEngine:
    engine = RecommendationEngine(bundle, Limits(), metrics=metrics)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
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
        observed = ServerInterceptor(metrics).intercept_service(lambda _: handler, details).unary_unary
        logged = ServerInterceptor(metrics, access_log=True).intercept_service(
            lambda _: handler, details).unary_unary
        users = [f"u{i}" for i in range(2000)]
        requests = [pb.RecommendRequest(user_id=users[i % len(users)], k=10) for i in range(args.calls)]
        wire_bare_server, wire_bare = _grpc_arm(RecommenderServicer(_engine(bundle, None)), [])
        wire_metrics = Metrics(CollectorRegistry())
        wire_obs_server, wire_observed = _grpc_arm(RecommenderServicer(_engine(bundle, wire_metrics)),
                                                   [ServerInterceptor(wire_metrics)])
        arms = {"bare": bare, "observed": observed, "logged": logged,
                "wire_bare": wire_bare, "wire_observed": wire_observed}
        times: dict[str, list[float]] = {name: [] for name in arms}
        for handler_fn in arms.values():
            _time(handler_fn, requests[:200])  # warm caches
        for _ in range(args.rounds):
            for name, handler_fn in arms.items():
                times[name].append(_time(handler_fn, requests))
        wire_bare_server.stop(None)
        wire_obs_server.stop(None)
    b, o, lg = (statistics.median(times[n]) for n in ("bare", "observed", "logged"))
    print(f"# items={args.items} calls={args.calls} rounds={args.rounds}")
    print("| arm | median µs/call |")
    print("|---|---|")
    print(f"| Recommend handler, no observability | {b * 1e6:.1f} |")
    print(f"| same, with interceptor + all metrics (default) | {o * 1e6:.1f} |")
    print(f"| same, plus the JSON access log (COLDBRIDGE_ACCESS_LOG=true) | {lg * 1e6:.1f} |")
    print(f"| metrics overhead | {(o - b) / b * 100:.1f} % |")
    print(f"| metrics + access log overhead | {(lg - b) / b * 100:.1f} % |")
    wb, wo = statistics.median(times["wire_bare"]), statistics.median(times["wire_observed"])
    print(f"| Recommend over loopback gRPC, no observability | {wb * 1e6:.1f} |")
    print(f"| Recommend over loopback gRPC, interceptor + all metrics (default) | {wo * 1e6:.1f} |")
    print(f"| metrics overhead over gRPC (what a client sees) | {(wo - wb) / wb * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
