"""Per-unit costs for sizing a Redis deployment, measured, and the plan they give.

Usage::

    python benchmarks/sizing.py --items 100000 1000000 --users 50000 --events-per-user 4

Measures, on this machine, with real server subprocesses and one redis-server
(``appendfsync always``):

1. **Recommend CPU per request** at each ``--items`` catalogue size: one server pinned to one
   core (``replicas.py --pin``), 64 calls in flight for ``--requests`` calls; CPU seconds of
   the server / calls answered. Plus the server's resident memory (RSS) after the load, for
   memory per catalogue item.
2. **Ingest and apply costs** on the smallest catalogue: replica A receives
   ``--users`` x ``--events-per-user`` events (new users, batches of 500) while replica B
   follows the log. CPU seconds per event of A (validate, append, apply), of B (follow and
   apply: what every replica pays for every event) and of redis-server; RSS growth per user
   of B; Redis memory per logged event and per snapshotted user state.

Then prints the plan for ``--plan-users`` users, ``--plan-items`` items,
``--plan-events`` events/s and ``--plan-recommend`` Recommend/s, with each formula, from
those figures (Recommend cost is extrapolated linearly in the number of items from the two
measured sizes; ``--headroom`` is the target utilisation).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc  # noqa: E402
from replicas import closed_loop, pin, requests_for  # noqa: E402
from scaleout import cpu_seconds, start_redis, start_server, stop  # noqa: E402
from serving import make_bundle  # noqa: E402


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


def redis_key_bytes(url: str, kind: str) -> int:
    """``MEMORY USAGE`` (every element counted) of all partitions' ``kind`` keys (``snap``: of
    every bundle version)."""
    client = redis.Redis.from_url(url)
    try:
        return sum(
            int(client.memory_usage(key, samples=0) or 0)
            for key in client.scan_iter(f"cb:*:{kind}*")
        )
    finally:
        client.close()


def recommend_cost(items: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    bundle = make_bundle(work / f"bundle{items}", items, 10_000, args.dim)
    server, port = start_server(bundle, work / f"rec{items}")
    try:
        pin(server.pid, 0)
        requests = requests_for(10_000, args.requests, 10)
        closed_loop([port], requests[:500], 64)  # warm-up
        before = cpu_seconds(server.pid)
        qps, _, _, _ = closed_loop([port], requests, 64)
        cpu = cpu_seconds(server.pid) - before
        return {
            "cpu_per_request": cpu / len(requests),
            "qps_per_core": qps,
            "rss": rss_bytes(server.pid),
        }
    finally:
        stop(server)


def batches(users: int, per_user: int, items: int) -> list[epb.EventBatch]:
    rng = np.random.default_rng(1)
    events = [
        epb.Event(
            event_id=f"z{u}-{n}",
            user_id=f"z{u}",
            item_id=f"t{rng.integers(items)}",
            domain=epb.DOMAIN_TARGET,
            kind=epb.EVENT_KIND_IMPLICIT,
        )
        for n in range(per_user)
        for u in range(users)
    ]
    return [
        epb.EventBatch(sequence=i // 500 + 1, events=events[i : i + 500])
        for i in range(0, len(events), 500)
    ]


def ingest_cost(items: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    bundle = work / f"bundle{items}"
    redis, url = start_redis(work)
    procs = [redis]
    try:
        # snapshots every 10k events: the users' states reach Redis during the run
        a, port_a = start_server(
            bundle, work / "a", store="redis", redis_url=url, snapshot_every_events="10000"
        )
        b, port_b = start_server(
            bundle, work / "b", store="redis", redis_url=url, snapshot_every_events="10000"
        )
        procs += [a, b]
        pin(a.pid, 0)
        pin(b.pid, 1 % len(os.sched_getaffinity(0)))
        sent = batches(args.users, args.events_per_user, items)
        n_events = args.users * args.events_per_user
        rss_b = rss_bytes(b.pid)
        cpu = {name: cpu_seconds(p.pid) for name, p in (("a", a), ("b", b), ("redis", redis))}
        with grpc.insecure_channel(f"127.0.0.1:{port_a}") as channel:
            acks = list(events_pb2_grpc.EventsStub(channel).StreamEvents(iter(sent)))
        assert sum(ack.accepted for ack in acks) == n_events
        with grpc.insecure_channel(f"127.0.0.1:{port_b}") as channel:  # B caught up
            stub = events_pb2_grpc.EventsStub(channel)
            last = f"z{args.users - 1}"
            while (
                stub.GetUserState(epb.GetUserStateRequest(user_id=last)).target_events
                < args.events_per_user
            ):
                time.sleep(0.01)
        time.sleep(1.0)  # the last snapshot
        spent = {
            name: cpu_seconds(p.pid) - cpu[name]
            for name, p in (("a", a), ("b", b), ("redis", redis))
        }
        return {
            "cpu_per_event_receiver": spent["a"] / n_events,
            "cpu_per_event_follower": spent["b"] / n_events,
            "cpu_per_event_redis": spent["redis"] / n_events,
            "replica_bytes_per_user": (rss_bytes(b.pid) - rss_b) / args.users,
            "redis_bytes_per_event": sum(redis_key_bytes(url, k) for k in ("log", "ids"))
            / n_events,
            "redis_bytes_per_user_state": redis_key_bytes(url, "snap") / args.users,
        }
    finally:
        stop(*reversed(procs))


def plan(rec: dict[int, dict[str, float]], ing: dict[str, float], args: argparse.Namespace) -> None:
    """Print the sizing for the ``--plan-*`` load from the measured per-unit costs."""
    (n1, r1), (n2, r2) = min(rec.items()), max(rec.items())
    slope = (r2["cpu_per_request"] - r1["cpu_per_request"]) / max(n2 - n1, 1)
    per_call = r1["cpu_per_request"] + slope * (args.plan_items - n1)
    per_item = (r2["rss"] - r1["rss"]) / max(n2 - n1, 1)
    f, r = ing["cpu_per_event_follower"], ing["cpu_per_event_receiver"]
    h, e, q, u, reps = (
        args.headroom,
        args.plan_events,
        args.plan_recommend,
        args.plan_users,
        args.plan_replicas_per_shard,
    )
    gib = 2**30
    print(
        f"\n## Plan: {u:,} users, {args.plan_items:,} items, {e:,} events/s, "
        f"{q:,} Recommend/s, at most {h:.0%} busy"
    )
    print(
        f"- Recommend: {per_call * 1e3:.1f} ms CPU per call at {args.plan_items:,} items "
        f"(linear in items between the measured {n1:,} and {n2:,}) -> "
        f"{q * per_call / h:,.0f} cores"
    )
    items_mem = per_item * args.plan_items
    print(f"- catalogue in every replica: {per_item:,.0f} B per item -> {items_mem / gib:,.1f} GiB")
    print(
        f"- today's design, every replica follows the whole log: {e * f:,.1f} cores of "
        f"apply per replica, but one process applies on one thread: at most {h / f:,.0f} "
        f"events/s; users {ing['replica_bytes_per_user']:,.0f} B each -> "
        f"{u * ing['replica_bytes_per_user'] / gib:,.0f} GiB per replica"
    )
    shards = 2 ** math.ceil(math.log2(e * (f + r / reps) / h))
    per_replica_cores = q * per_call / h / (shards * reps)
    print(
        f"- with partition ownership (not built): shards S = 2^ceil(log2(E (f + r/R) / {h})) "
        f"= {shards}, R = {reps} replicas each; per replica {e / shards:,.0f} events/s followed "
        f"({e / shards * f:.2f} cores), {e / shards / reps:,.0f} received "
        f"({e / shards / reps * r:.2f} cores), {per_replica_cores:.1f} cores of Recommend, "
        f"memory {(items_mem + u / shards * ing['replica_bytes_per_user']) / gib:,.1f} GiB; "
        f"{shards * reps:,} replicas"
    )
    redis_cores = e * ing["cpu_per_event_redis"] / h
    redis_mem = u * (
        args.plan_retained_events * ing["redis_bytes_per_event"] + ing["redis_bytes_per_user_state"]
    )
    primaries = max(math.ceil(redis_cores), math.ceil(redis_mem / (args.redis_primary_gib * gib)))
    print(
        f"- Redis: {ing['cpu_per_event_redis'] * 1e6:.1f} us CPU per event -> "
        f"{redis_cores:,.1f} cores; {ing['redis_bytes_per_event']:,.0f} B per logged event, "
        f"{ing['redis_bytes_per_user_state']:,.0f} B per user state -> "
        f"{redis_mem / gib:,.0f} GiB with {args.plan_retained_events} events per user retained; "
        f"{primaries} primaries (one core, <= {args.redis_primary_gib} GiB each), "
        f"x2 with a replica each for WAIT"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events-per-user", type=int, default=4)
    parser.add_argument("--plan-users", type=int, default=100_000_000)
    parser.add_argument("--plan-items", type=int, default=10_000_000)
    parser.add_argument("--plan-events", type=int, default=1_000_000)
    parser.add_argument("--plan-recommend", type=int, default=20_000)
    parser.add_argument("--headroom", type=float, default=0.6)
    parser.add_argument("--plan-replicas-per-shard", type=int, default=2)
    parser.add_argument("--plan-retained-events", type=int, default=20)
    parser.add_argument("--redis-primary-gib", type=float, default=25.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rec = {items: recommend_cost(items, args, work) for items in args.items}
        for items, r in rec.items():
            print(
                f"Recommend at {items:,} items: {r['cpu_per_request'] * 1e3:.3f} ms CPU per "
                f"call, {r['qps_per_core']:,.0f} QPS on one core, RSS {r['rss'] / 2**20:,.0f} MiB",
                flush=True,
            )
        ing = ingest_cost(min(args.items), args, work)
        for key, value in ing.items():
            print(f"{key}: {value:,.6g}", flush=True)
    plan(rec, ing, args)


if __name__ == "__main__":
    main()
