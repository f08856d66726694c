"""Retention over Redis: trimming rate against the append rate of the same entries.

Usage::

    python benchmarks/redis_retention.py [--events 100000] [--batch 500]

Starts a redis-server (``--appendonly yes --appendfsync always``, a temporary directory, as
``benchmarks/scaleout.py``), appends ``--events`` events to one partition through
``RedisEventStore.append_events`` (the APPEND script, batches of ``--batch``), writes an
empty snapshot covering them, then trims all but the newest one
(``redis_retention.trim``, 1000 entries per script call). Prints both rates, their ratio,
and the median and longest trim call (about how long Redis is blocked by one; wall
clock seen by the client, so a loaded machine inflates the longest).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from coldbridge_server.streaming.redis_retention import trim  # noqa: E402
from coldbridge_server.streaming.redis_store import RedisEventStore  # noqa: E402
from coldbridge_server.streaming.validate import Domain, Event, Kind  # noqa: E402
from scaleout import start_redis, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(Path(tmp))
        store = RedisEventStore(url, partitions=1)
        try:
            start = time.perf_counter()
            for first in range(0, args.events, args.batch):
                events = [
                    Event(f"e{n}", f"u{n % 1000}", "v1", Domain.TARGET, Kind.IMPLICIT)
                    for n in range(first, min(first + args.batch, args.events))
                ]
                ids = store.append_events(events, time.time()).ids
            append_s = time.perf_counter() - start
            store.cursors[0] = max(i for i in ids if i is not None)
            store.write_partition(0, [], "bench", full=True)
            deleted, calls, start = 0, [], time.perf_counter()
            while True:
                call = time.perf_counter()
                n = trim(store, 0, "bench", keep=1, calls=1)
                calls.append(time.perf_counter() - call)
                deleted += n
                if not n:
                    break
            trim_s = time.perf_counter() - start
            assert store.client.xlen("cb:{p0}:log") == 1 == store.client.hlen("cb:{p0}:ids")
        finally:
            store.close()
            stop(proc)
    append_rate, trim_rate = args.events / append_s, deleted / trim_s
    print(f"append: {append_rate:,.0f} events/s; trim: {trim_rate:,.0f} entries/s")
    print(f"trim / append: {trim_rate / append_rate:.1f}x")
    median, longest = statistics.median(calls) * 1e3, max(calls) * 1e3
    print(f"trim call (1000 entries): median {median:.1f} ms, longest {longest:.1f} ms")


if __name__ == "__main__":
    main()
