"""Scale-out over Redis: Recommend with 1 and 2 replicas, durable ingest, freshness A -> B.

Usage::

    python benchmarks/scaleout.py [--items 10000] [--events 20000] [--requests 3000]
                                  [--no-recommend]

Starts a redis-server (``--appendonly yes --appendfsync always``, a temporary directory) and
server subprocesses (``python -m coldbridge_server``) on a random-weight bundle
(``benchmarks/serving.py``'s ``make_bundle``), then measures, in the same run:

1. **Durable ingest**: the events (target, 2000 users, batches of 500) through
   ``StreamEvents`` into one replica: SQLite (``state_sync=FULL``), Redis with one replica,
   and Redis with a second replica following the log. Events/s from the first batch sent
   to the last ack; also the CPU time the server (and redis-server) spent per 1000 events
   of the one-replica runs (Linux ``/proc``), steadier than the rate on a shared machine.
2. **Freshness A -> B**: once B has applied the ingest runs, ``IngestEvents`` of one event
   on replica A, then ``GetUserState`` on replica B until it shows the event: p50 / p99 of
   ack-on-A -> visible-on-B.
3. **Recommend**: ``--requests`` calls from ``--concurrency`` client threads against one
   SQLite server, one Redis replica, and two Redis replicas (threads spread over both);
   ``--no-recommend`` leaves this part out (ingest and freshness only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from serving import ROOT, free_port, make_bundle, wait_serving  # noqa: E402


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    redis_dir = workdir / "redis"
    redis_dir.mkdir()
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
    command += ["--bind", "127.0.0.1", "--dir", str(redis_dir), "--save", ""]
    command += ["--appendonly", "yes", "--appendfsync", "always"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).stdout.strip()
        != b"PONG"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("redis-server did not start")
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_server(bundle: Path, state: Path, **settings: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
    env.update(
        PYTHONPATH=os.pathsep.join(
            str(ROOT / s) for s in ("bundle", "server", "plugins", "protos")
        ),
        COLDBRIDGE_BUNDLE_PATH=str(bundle),
        COLDBRIDGE_STATE_DIR=str(state),
        COLDBRIDGE_HOST="127.0.0.1",
        COLDBRIDGE_PORT=str(port),
        COLDBRIDGE_METRICS_PORT="-1",
        COLDBRIDGE_DRAIN_SECONDS="0",
        **{f"COLDBRIDGE_{k.upper()}": v for k, v in settings.items()},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbridge_server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_serving(port)
    return proc, port


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def ingest(port: int, n_events: int, items: int, tag: str) -> float:
    rng = np.random.default_rng(0)
    users, picks = rng.integers(0, 2000, n_events), rng.integers(0, items, n_events)
    batches = [
        epb.EventBatch(
            sequence=b // 500 + 1,
            events=[
                epb.Event(
                    event_id=f"{tag}-{n}",
                    user_id=f"new{users[n]}",
                    item_id=f"t{picks[n]}",
                    domain=epb.DOMAIN_TARGET,
                    kind=epb.EVENT_KIND_IMPLICIT,
                )
                for n in range(b, min(b + 500, n_events))
            ],
        )
        for b in range(0, n_events, 500)
    ]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = events_pb2_grpc.EventsStub(channel)
        start = time.perf_counter()
        acks = list(stub.StreamEvents(iter(batches)))
        wall = time.perf_counter() - start
    assert sum(a.accepted for a in acks) == n_events
    return n_events / wall


def cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds the processes used so far (Linux ``/proc``; NaN elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_caught_up(a: int, b: int, users: int = 2000) -> None:
    """Until replica ``b`` shows every ingest user's events that ``a`` shows (its follower
    has applied the backlog of the ingest run, so freshness measures an idle follower)."""
    with (
        grpc.insecure_channel(f"127.0.0.1:{a}") as ca,
        grpc.insecure_channel(f"127.0.0.1:{b}") as cb,
    ):
        ea, eb = events_pb2_grpc.EventsStub(ca), events_pb2_grpc.EventsStub(cb)
        for n in range(users):
            request = epb.GetUserStateRequest(user_id=f"new{n}")
            want = ea.GetUserState(request).target_events
            while eb.GetUserState(request).target_events < want:
                time.sleep(0.01)


def freshness(a: int, b: int, probes: int) -> tuple[float, float]:
    lags = []
    with (
        grpc.insecure_channel(f"127.0.0.1:{a}") as ca,
        grpc.insecure_channel(f"127.0.0.1:{b}") as cb,
    ):
        ea, eb = events_pb2_grpc.EventsStub(ca), events_pb2_grpc.EventsStub(cb)
        for n in range(probes):
            user = f"fresh{n}"
            event = epb.Event(
                event_id=f"fresh-{n}",
                user_id=user,
                item_id="t1",
                domain=epb.DOMAIN_TARGET,
                kind=epb.EVENT_KIND_IMPLICIT,
            )
            ea.IngestEvents(epb.EventBatch(sequence=1, events=[event]))
            acked = time.perf_counter()
            while eb.GetUserState(epb.GetUserStateRequest(user_id=user)).target_events < 1:
                pass
            lags.append(time.perf_counter() - acked)
    ms = np.array(lags) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def recommend(ports: list[int], requests: int, concurrency: int) -> float:
    channels = [grpc.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    stubs = [recommender_pb2_grpc.RecommenderStub(c) for c in channels]
    per_thread = requests // concurrency

    def work(t: int) -> None:
        stub = stubs[t % len(stubs)]
        for n in range(per_thread):
            stub.Recommend(pb.RecommendRequest(user_id=f"new{(t * 997 + n) % 2000}", k=10))

    for t in range(concurrency):  # warm-up
        stubs[t % len(stubs)].Recommend(pb.RecommendRequest(user_id="u1", k=10))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for channel in channels:
        channel.close()
    return per_thread * concurrency / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--no-recommend", action="store_true", help="ingest and freshness only")
    args = parser.parse_args()
    qps = recommend if not args.no_recommend else lambda *_: float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = make_bundle(work / "bundle", args.items, 2000, args.dim)
        redis_proc, url = start_redis(work)
        try:
            sqlite, port = start_server(bundle, work / "sqlite", state_sync="FULL")
            cpu = cpu_seconds(sqlite.pid)
            rate_sqlite = ingest(port, args.events, args.items, "s")
            cpu_sqlite = (cpu_seconds(sqlite.pid) - cpu) * 1e6 / args.events
            qps_sqlite = qps([port], args.requests, args.concurrency)
            stop(sqlite)
            a, pa = start_server(bundle, work / "a", store="redis", redis_url=url)
            cpu, cpu_r = cpu_seconds(a.pid), cpu_seconds(redis_proc.pid)
            rate_redis1 = ingest(pa, args.events, args.items, "r1")
            cpu_redis = (cpu_seconds(a.pid) - cpu) * 1e6 / args.events
            cpu_server = (cpu_seconds(redis_proc.pid) - cpu_r) * 1e6 / args.events
            qps_redis1 = qps([pa], args.requests, args.concurrency)
            b, pb_ = start_server(bundle, work / "b", store="redis", redis_url=url)
            rate_redis2 = ingest(pa, args.events, args.items, "r2")
            wait_caught_up(pa, pb_)
            p50, p99 = freshness(pa, pb_, args.probes)
            qps_redis2 = qps([pa, pb_], args.requests, args.concurrency)
            stop(a, b)
        finally:
            stop(redis_proc)
    print(
        f"durable ingest events/s: sqlite FULL {rate_sqlite:.0f}, redis 1 replica "
        f"{rate_redis1:.0f} ({rate_redis1 / rate_sqlite:.2f}x), redis with a follower "
        f"{rate_redis2:.0f} ({rate_redis2 / rate_sqlite:.2f}x)"
    )
    print(
        f"ingest CPU ms per 1000 events: sqlite server {cpu_sqlite:.0f}, redis server "
        f"{cpu_redis:.0f} + redis-server {cpu_server:.0f}"
    )
    print(f"freshness ack on A -> visible on B: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    if args.no_recommend:
        return
    print(
        f"Recommend QPS: sqlite 1 {qps_sqlite:.0f}, redis 1 {qps_redis1:.0f} "
        f"({qps_redis1 / qps_sqlite:.2f}x), redis 2 replicas {qps_redis2:.0f} "
        f"({qps_redis2 / qps_sqlite:.2f}x)"
    )


if __name__ == "__main__":
    main()
