"""Durable ingest throughput through StreamEvents vs a raw River ``learn_one`` loop, and freshness.

Usage::

    python benchmarks/ingest.py --bundle var/cdrib/bundles [--events 50000] [--repeat 3]

1. **Raw River loop**: ``ColdStartEmbeddings.learn_one`` (the server's River learner, same
   hyperparameters) over the same target events, in process: no validation, no log, no gRPC.
   Also, as a stricter second baseline, ``learn_many`` over the same batches (the server
   learns each group with it; same weights as the ``learn_one`` loop, bit for bit).
2. **Durable ingest**: the same events through ``StreamEvents`` into a real server subprocess
   (``python -m coldbridge_server``, SQLite WAL ``synchronous=FULL``, prequential evaluation on),
   timed from the first batch sent to the last ack received.
3. **Freshness**: ``IngestEvents`` of one target event, then ``Recommend(exclude_seen=True)``
   right after the ack; the time from ack to a Recommend answer that no longer contains the
   item (p50/p99). An ack already implies visibility, so this is one Recommend round trip.

The two are measured alternately for ``--repeat`` rounds (a fresh server and state directory
each round) and the best rate of each is compared, so that a load change on a shared machine
hits both alike. Prints each round, the best events/s of both and their ratio (target >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "plugins", "protos"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from coldbridge_server.bundle import load_bundle, resolve_bundle_dir  # noqa: E402
from coldbridge_server.config import Settings  # noqa: E402
from coldbridge_server.streaming.online import ColdStartEmbeddings  # noqa: E402
from river import optim  # noqa: E402


def workload(n_events: int, n_users: int, n_items: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    items = rng.integers(0, n_items, n_events)
    return [(f"bench-{u}", int(i)) for u, i in zip(users, items, strict=True)]


def _learner(bundle_path: Path) -> ColdStartEmbeddings:
    bundle, s = load_bundle(bundle_path), Settings()
    return ColdStartEmbeddings(
        bundle.target_item_embeddings,
        bundle.target_item_bias,
        optimizer=optim.SGD(s.online_learning_rate),
        l2=s.online_l2,
        n_negatives=s.online_negatives,
        release_after=s.warm_threshold,
        seed=0,
    )


def raw_river(bundle_path: Path, events: list[tuple[str, int]]) -> float:
    """events/s of the per-event ``learn_one`` loop (the baseline the target is set against)."""
    learner = _learner(bundle_path)
    start = time.perf_counter()
    for user, item in events:
        learner.learn_one(user, item, True)
    return len(events) / (time.perf_counter() - start)


def raw_river_many(bundle_path: Path, events: list[tuple[str, int]], batch: int) -> float:
    """events/s of ``learn_many`` over the same batches the server gets (a stricter baseline:
    the server learns each group of events with it)."""
    learner = _learner(bundle_path)
    start = time.perf_counter()
    for b in range(0, len(events), batch):
        users, items = zip(*events[b : b + batch], strict=True)
        learner.learn_many(users, items, [True] * len(users))
    return len(events) / (time.perf_counter() - start)


def start_server(
    bundle: Path, state: Path, settings: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
    env.update(
        PYTHONPATH=os.pathsep.join(
            str(ROOT / p) for p in ("bundle", "server", "plugins", "protos")
        ),
        COLDBRIDGE_BUNDLE_PATH=str(bundle),
        COLDBRIDGE_STATE_DIR=str(state),
        COLDBRIDGE_HOST="127.0.0.1",
        COLDBRIDGE_PORT="0",
        COLDBRIDGE_METRICS_PORT="-1",
        COLDBRIDGE_ACCESS_LOG="false",
        COLDBRIDGE_LOG_LEVEL="WARNING",
    )
    env.update(settings or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "coldbridge_server"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "serving on" in line:
            return process, line.rsplit(" ", 1)[1].strip()
    raise SystemExit(f"server exited with {process.wait()}")


def durable_ingest(
    stub: events_pb2_grpc.EventsStub,
    events: list[tuple[str, int]],
    item_ids: tuple[str, ...],
    batch: int,
) -> float:
    batches = [
        epb.EventBatch(
            sequence=b // batch + 1,
            events=[
                epb.Event(
                    event_id=f"bench-{b + i}",
                    user_id=u,
                    item_id=item_ids[it],
                    domain=epb.DOMAIN_TARGET,
                    kind=epb.EVENT_KIND_IMPLICIT,
                )
                for i, (u, it) in enumerate(events[b : b + batch])
            ],
        )
        for b in range(0, len(events), batch)
    ]
    start = time.perf_counter()
    acks = list(stub.StreamEvents(iter(batches)))
    elapsed = time.perf_counter() - start
    assert sum(a.accepted for a in acks) == len(events), "events were rejected"
    return len(events) / elapsed


def freshness(channel: grpc.Channel, item_ids: tuple[str, ...], probes: int) -> np.ndarray:
    events = events_pb2_grpc.EventsStub(channel)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    lags = []
    for p in range(probes):
        user = f"fresh-{p}"
        top = rec.Recommend(pb.RecommendRequest(user_id=user, k=10)).items[0].item_id
        event = epb.Event(
            event_id=f"fresh-{p}",
            user_id=user,
            item_id=top,
            domain=epb.DOMAIN_TARGET,
            kind=epb.EVENT_KIND_IMPLICIT,
        )
        events.IngestEvents(epb.EventBatch(sequence=p, events=[event]))
        acked = time.perf_counter()
        while True:
            reply = rec.Recommend(pb.RecommendRequest(user_id=user, k=10, exclude_seen=True))
            if top not in [i.item_id for i in reply.items]:
                break
        lags.append(time.perf_counter() - acked)
    return np.array(lags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="bundle or bundles directory")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (raw loop, durable ingest); the best of each is compared",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for the ingest server, e.g. history_blend=false (repeatable)",
    )
    args = parser.parse_args(argv)
    server_settings = {
        f"COLDBRIDGE_{name.strip().upper()}": value
        for name, _, value in (s.partition("=") for s in args.setting)
    }
    bundle_path = resolve_bundle_dir(args.bundle)
    bundle = load_bundle(bundle_path)
    events = workload(args.events, args.users, len(bundle.target_item_ids))
    rounds: list[tuple[float, float, float]] = []
    for r in range(args.repeat):  # alternate both, a fresh server each round: same load for both
        river_rate = raw_river(bundle_path, events)
        many_rate = raw_river_many(bundle_path, events, args.batch)
        with tempfile.TemporaryDirectory() as state:
            process, address = start_server(bundle_path, Path(state), server_settings)
            try:
                with grpc.insecure_channel(address) as channel:
                    stub = events_pb2_grpc.EventsStub(channel)
                    ingest_rate = durable_ingest(stub, events, bundle.target_item_ids, args.batch)
                    if r == args.repeat - 1:
                        lags = freshness(channel, bundle.target_item_ids, args.probes)
            finally:
                process.terminate()
                process.wait(30)
        rounds.append((river_rate, many_rate, ingest_rate))
        print(
            f"round {r + 1}: raw River learn_one {river_rate:8.0f} events/s, learn_many "
            f"{many_rate:8.0f} events/s, durable ingest {ingest_rate:8.0f} events/s, ratio "
            f"{ingest_rate / river_rate:.2f}x (vs learn_many {ingest_rate / many_rate:.2f}x)",
            flush=True,
        )
    river_rate = max(r for r, _, _ in rounds)
    many_rate = max(m for _, m, _ in rounds)
    ingest_rate = max(i for _, _, i in rounds)
    print(
        f"bundle {bundle.version}: {len(bundle.target_item_ids)} target items, "
        f"d={bundle.target_dim}; {args.events} implicit target events, {args.users} users, "
        f"batches of {args.batch}; best of {args.repeat} rounds"
    )
    print(f"raw River learn_one loop      {river_rate:10.0f} events/s")
    print(f"raw River learn_many loop     {many_rate:10.0f} events/s")
    print(f"durable ingest (StreamEvents) {ingest_rate:10.0f} events/s")
    print(f"ratio                         {ingest_rate / river_rate:10.2f}x  (target >= 0.5x)")
    print(f"ratio vs learn_many           {ingest_rate / many_rate:10.2f}x")
    p50, p99 = np.percentile(lags * 1e3, [50, 99])
    print(
        f"freshness ack -> visible in Recommend: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"({args.probes} probes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
