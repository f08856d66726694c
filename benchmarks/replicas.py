"""Recommend throughput of replicas over Redis, next to the embedded store and a bare echo server.

Usage::

    python benchmarks/replicas.py --items 100000 --inflight 64 --requests 4000 --rounds 3

One random-weight bundle (``benchmarks/serving.py``'s ``make_bundle``: ``--items`` target
items, 10,000 users, half warm and half through the bridge) and, all started once and kept up
for the whole run:

* **echo**: a bare gRPC server that answers Recommend with a precomputed response of the same
  size (``serving.py --bare-server``): the ceiling of gRPC + this client on this machine;
* **sqlite**: one coldbridge server on the embedded store;
* **redis A, redis B**: two coldbridge servers over one redis-server (``appendfsync always``).

Each round measures, in this order, the same closed-loop load against echo, sqlite,
redis A alone and redis A + B together (one channel whose target lists both addresses with
gRPC's ``round_robin`` load-balancing policy, which is how a client reaches replicas behind a
headless Kubernetes Service). The load keeps ``--inflight`` calls outstanding from one
``grpc.aio`` client process, with the requests serialised beforehand and the responses left
as bytes, so that the client spends as little of the two cores as it can. The figures are
the medians over the rounds of each configuration's QPS and of the ratios taken within a
round (the machine is shared: only ratios in the same round are compared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from scaleout import cpu_seconds, start_redis, start_server, stop  # noqa: E402
from serving import METHOD, free_port, make_bundle, start, wait_serving  # noqa: E402

CONFIGS = ("echo", "sqlite", "redis1", "redis2")


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """User + system CPU seconds so far of this process and of ``pids`` together."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, cpu_seconds(*pids)


def pin(pid: int, core: int) -> None:
    """Bind every thread of process ``pid`` (and the threads it starts later) to ``core``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def requests_for(users: int, n: int, k: int, seed: int = 0) -> list[bytes]:
    """``n`` serialised RecommendRequests for ``u0..u{users-1}`` (half warm, half bridged)."""
    picks = np.random.default_rng(seed).integers(0, users, n)
    return [pb.RecommendRequest(user_id=f"u{p}", k=k).SerializeToString() for p in picks]


async def _closed_loop(target: str, requests: list[bytes], inflight: int) -> tuple[float, float]:
    options = [("grpc.lb_policy_name", "round_robin")]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(METHOD)  # bytes in, bytes out: no client-side protobuf
        await channel.channel_ready()
        for request in requests[:inflight]:  # every subchannel connected and warm
            await call(request, timeout=30)
        latencies: list[float] = []
        position = 0

        async def worker() -> None:
            nonlocal position
            while position < len(requests):
                request = requests[position]
                position += 1
                began = time.perf_counter()
                await call(request, timeout=30)
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        wall = time.perf_counter() - began
    return len(latencies) / wall, float(np.percentile(np.array(latencies) * 1000, 99))


def closed_loop(
    ports: list[int], requests: list[bytes], inflight: int, pids: list[int] | None = None
) -> tuple[float, float, float, float]:
    """QPS, p99 ms and cores used of ``requests`` sent with ``inflight`` outstanding.

    Cores used: CPU seconds of this client, and of ``pids`` (the servers and Redis), over
    the wall time of the load.
    """
    target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)
    (client, servers), began = cpu_split(pids or []), time.perf_counter()
    qps, p99 = asyncio.run(_closed_loop(target, requests, inflight))
    (client_end, servers_end), wall = cpu_split(pids or []), time.perf_counter() - began
    return qps, p99, (client_end - client) / wall, (servers_end - servers) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="bind each server to one core (echo, sqlite and replica A to core 0, replica B "
        "to core 1), as a CPU limit of one core per pod would; the client and Redis float",
    )
    args = parser.parse_args()
    requests = requests_for(args.users, args.requests, args.k)
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = make_bundle(work / "bundle", args.items, args.users, args.dim)
        echo_port = free_port()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(
                start(
                    [sys.executable, str(HERE / "serving.py"), "--bare-server"]
                    + [str(echo_port), str(args.k)],
                    {},
                )
            )
            wait_serving(echo_port)
            redis_proc, url = start_redis(work)
            procs.append(redis_proc)
            sqlite, sqlite_port = start_server(bundle, work / "sqlite")
            a, port_a = start_server(bundle, work / "a", store="redis", redis_url=url)
            b, port_b = start_server(bundle, work / "b", store="redis", redis_url=url)
            procs += [sqlite, a, b]
            if args.pin:
                for proc, core in ((procs[0], 0), (sqlite, 0), (a, 0), (b, 1)):
                    pin(proc.pid, core % len(os.sched_getaffinity(0)))
            pids = {
                "echo": [procs[0].pid],
                "sqlite": [sqlite.pid],
                "redis1": [a.pid, b.pid, redis_proc.pid],
                "redis2": [a.pid, b.pid, redis_proc.pid],
            }
            ports = {
                "echo": [echo_port],
                "sqlite": [sqlite_port],
                "redis1": [port_a],
                "redis2": [port_a, port_b],
            }
            for name in CONFIGS:  # warm-up: sessions, caches, connections
                closed_loop(ports[name], requests[:500], args.inflight)
            for round_ in range(args.rounds):
                for name in CONFIGS:
                    results[name].append(
                        closed_loop(ports[name], requests, args.inflight, pids[name])
                    )
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{n} {results[n][-1][0]:.0f} QPS" for n in CONFIGS),
                    flush=True,
                )
        finally:
            stop(*reversed(procs))
    qps = {n: [r[0] for r in results[n]] for n in CONFIGS}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(qps[a], qps[b], strict=True))

    print(
        f"# {args.items:,} items, d={args.dim}, k={args.k}, {args.inflight} in flight, "
        f"{args.requests} requests x {args.rounds} rounds"
        + (", one core per server (--pin)" if args.pin else "")
    )
    print("| configuration | QPS | p99 ms | vs echo | cores: client | cores: servers + Redis |")
    print("|---|---|---|---|---|---|")
    for name in CONFIGS:
        p99, client, servers = (statistics.median(r[i] for r in results[name]) for i in (1, 2, 3))
        print(
            f"| {name} | {statistics.median(qps[name]):.0f} | {p99:.1f} | "
            f"{ratio(name, 'echo'):.2f} | {client:.2f} | {servers:.2f} |"
        )
    print(
        f"redis 2 replicas / redis 1: {ratio('redis2', 'redis1'):.2f}x; "
        f"redis 1 / sqlite: {ratio('redis1', 'sqlite'):.2f}x"
    )


if __name__ == "__main__":
    main()
