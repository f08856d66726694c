"""Hot reload under load: failed calls and Recommend p99 while the bundle is swapped.

The server runs in this process (its memory is measured here: ``ru_maxrss`` and the
current RSS from ``/proc/self/statm``, plus ``tracemalloc``'s peak over one traced reload);
a second *process* (this script with ``--load``) sends Recommend open-loop at ``--rate``
calls/s and streams target events (``--events-rate``) for the whole run. After a steady
phase of ``--steady`` seconds, ``--reloads`` reloads alternate between two random bundles
of ``--items`` target items (different embeddings: every reload rebuilds the online state
from the event log, preloaded with ``--log`` events). The figures: failed calls (target 0)
and the ratio p99 of Recommend started during reloads / p99 of the steady phase, measured in
the same run (target <= 2).

Usage::

    python benchmarks/reload_under_load.py --items 10000 --log 50000 --reloads 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "trainer", "protos", "plugins", "client", "benchmarks"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402


def _event(i: int, n_items: int, tag: str) -> epb.Event:
    return epb.Event(
        event_id=f"{tag}{i}",
        user_id=f"n{i % 2000}",
        item_id=f"t{(i * 7919) % n_items}",
        domain=epb.DOMAIN_TARGET,
        kind=epb.EVENT_KIND_IMPLICIT,
    )


def load(address: str, stop: Path, rate: float, events_rate: float, items: int) -> None:
    """The load process: Recommend open-loop + a continuous event stream until the file
    ``stop`` exists; JSON on stdout."""
    channel = grpc.insecure_channel(address)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    calls: list[tuple[float, float, bool]] = []
    acks = {"accepted": 0, "failed": 0}
    lock = threading.Lock()

    def recommend(user: str) -> None:
        start = time.time()
        t0 = time.perf_counter()
        try:
            rec.Recommend(pb.RecommendRequest(user_id=user, k=10), timeout=10)
            ok = True
        except grpc.RpcError:
            ok = False
        with lock:
            calls.append((start, time.perf_counter() - t0, ok))

    def stream() -> None:
        def batches():  # type: ignore[no-untyped-def]
            n = 0
            while not stop.exists():
                yield epb.EventBatch(
                    sequence=n, events=[_event(n * 10 + j, items, "L") for j in range(10)]
                )
                n += 1
                time.sleep(10 / events_rate)

        try:
            for ack in events_pb2_grpc.EventsStub(channel).StreamEvents(batches()):
                acks["accepted"] += ack.accepted
        except grpc.RpcError:
            acks["failed"] += 1

    streamer = threading.Thread(target=stream)
    streamer.start()
    workers: list[threading.Thread] = []
    i = 0
    next_at = time.time()
    while not stop.exists():  # open loop: a call every 1/rate s, each in its own thread
        user = f"n{i % 2000}" if i % 2 else f"u{i % 1000}"
        t = threading.Thread(target=recommend, args=(user,))
        t.start()
        workers.append(t)
        i += 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.time()))
    for t in workers:
        t.join()
    streamer.join()
    json.dump({"calls": calls, "acks": acks}, sys.stdout)


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--log", type=int, default=50_000, help="events in the log before the run")
    p.add_argument("--reloads", type=int, default=20)
    p.add_argument("--steady", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=50.0, help="Recommend calls per second")
    p.add_argument("--events-rate", type=float, default=200.0, help="streamed events/s")
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--stop", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.load:
        load(a.load, a.stop, a.rate, a.events_rate, a.items)
        return 0
    from coldbridge_client import Client
    from coldbridge_server import Settings, create_server
    from serving import make_bundle

    tmp = Path(tempfile.mkdtemp(prefix="reload-bench-"))
    bundles = [make_bundle(tmp / f"b{s}", a.items, 2000, 64, seed=s) for s in (1, 2)]
    settings = Settings(
        bundle_path=str(bundles[0]),
        host="127.0.0.1",
        port=0,
        state_dir=str(tmp / "state"),
        metrics_port=-1,
        state_sync="NORMAL",
        reload_drain_seconds=5.0,
    )
    server, port = create_server(settings)
    server.start()
    server.wait_until_ready(120)
    address = f"127.0.0.1:{port}"
    client = Client(address, retry=None)
    for lo in range(0, a.log, 1000):
        client.ingest([_event(i, a.items, "P") for i in range(lo, min(lo + 1000, a.log))])
    rss_before = _rss_mb()
    tracemalloc.start()
    traced = client.reload_bundle(str(bundles[1]))  # one traced reload (memory, not timed)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    client.reload_bundle(str(bundles[0]))
    stop = tmp / "stop"
    loader = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--load",
            address,
            "--stop",
            str(stop),
            "--rate",
            str(a.rate),
            "--events-rate",
            str(a.events_rate),
            "--items",
            str(a.items),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(a.steady)
    windows, durations, failed_reloads = [], [], 0
    for n in range(a.reloads):
        start = time.time()
        try:
            reply = client.reload_bundle(str(bundles[(n + 1) % 2]))
            durations.append(reply.seconds)
        except grpc.RpcError:
            failed_reloads += 1
        windows.append((start, time.time()))
    time.sleep(1.0)
    stop.touch()
    out, _ = loader.communicate()
    result = json.loads(out)
    calls = result["calls"]
    steady = [d for s, d, ok in calls if ok and s < windows[0][0] - 1]
    during = [d for s, d, ok in calls if ok and any(lo <= s <= hi for lo, hi in windows)]
    failed = sum(1 for _, _, ok in calls if not ok) + result["acks"]["failed"]
    p99 = lambda xs: float(np.percentile(np.array(xs) * 1e3, 99))  # noqa: E731
    report = {
        "reloads": a.reloads,
        "failed_reloads": failed_reloads,
        "recommend_calls": len(calls),
        "failed_calls": failed,
        "events_acked": result["acks"]["accepted"],
        "steady_calls": len(steady),
        "reload_calls": len(during),
        "steady_p50_ms": float(np.median(steady) * 1e3),
        "steady_p99_ms": p99(steady),
        "reload_p50_ms": float(np.median(during) * 1e3),
        "reload_p99_ms": p99(during),
        "p99_ratio": p99(during) / p99(steady),
        "reload_seconds_median": float(np.median(durations)),
        "replayed_events_first": traced.replayed_events,
        "rss_before_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tracemalloc_peak_one_reload_mb": traced_peak,
        "log_events_end": server.ingestor.store.count if server.ingestor else 0,
    }
    print(json.dumps(report, indent=1))
    client.close()
    server.stop(None).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
