"""Many SIGKILLs at random times during streamed ingest with concurrent Recommend load.

Each cycle starts the real server as a subprocess on the same state directory, resends
everything not yet acknowledged, runs Recommend calls in parallel and kills the process with
SIGKILL after a random delay. After every kill, every acknowledged event must be in the log;
at the end every event sent is applied exactly once and the served state equals a serial
replay of the log. The default run does 5 cycles; the 50-cycle soak is marked slow::

    python -m pytest tests/streaming/test_kill_cycles.py -m soak -q -p no:cacheprovider -s
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import SOURCE, batch, event, replayed_vectors
from test_events_durability import start_process  # noqa: F401  (the subprocess fixture)
from test_storage_faults import logged_ids

USERS = ["s0", "s1", "u0", "u1", "u2"] + [f"new-{i}" for i in range(15)]


def make_batch(index: int, size: int = 10) -> epb.EventBatch:
    """Batch ``index`` of an endless deterministic workload (sequence ``index + 1``)."""
    rng = random.Random(index)
    events = []
    for i in range(size):
        user = rng.choice(USERS)
        if user.startswith("new-") and rng.random() < 0.3:
            events.append(event(f"{index}-{i}", user, f"g{rng.randrange(40)}", SOURCE))
        else:
            events.append(event(f"{index}-{i}", user, f"v{rng.randrange(50)}"))
    return batch(index + 1, *events)


@dataclass
class Soak:
    acked: set[str] = field(default_factory=set)
    next_batch: int = 0  # first batch not known to be acknowledged
    sent_until: int = 0  # batches [0, sent_until) were sent at least once
    recommends: int = 0
    kills: int = 0


def recommend_load(channel: grpc.Channel, stop: threading.Event, soak: Soak, errors: list) -> None:
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    rng = random.Random(0)
    while not stop.is_set():
        try:
            reply = stub.Recommend(pb.RecommendRequest(user_id=rng.choice(USERS), k=10))
        except grpc.RpcError as exc:
            if not stop.is_set():  # only the kill may end it
                errors.append(exc)
            return
        assert len(reply.items) == 10
        soak.recommends += 1


def one_cycle(start: Any, state: Path, soak: Soak, rng: random.Random) -> None:
    process, channel = start(state)
    stop, errors = threading.Event(), []
    load = threading.Thread(target=recommend_load, args=(channel, stop, soak, errors))
    load.start()

    def kill() -> None:
        stop.set()
        os.kill(process.pid, signal.SIGKILL)

    timer = threading.Timer(rng.uniform(0.05, 1.0), kill)
    first = soak.next_batch

    def batches() -> Any:
        for index in range(first, first + 100_000):
            soak.sent_until = max(soak.sent_until, index + 1)
            yield make_batch(index)

    timer.start()
    try:
        for ack in events_pb2_grpc.EventsStub(channel).StreamEvents(batches()):
            sent = make_batch(ack.sequence - 1)
            duplicates = [r for r in ack.rejections]
            assert {r.reason for r in duplicates} <= {epb.REJECTION_REASON_DUPLICATE_EVENT}
            assert ack.accepted + len(duplicates) == len(sent.events)
            soak.acked.update(e.event_id for e in sent.events)
            soak.next_batch = ack.sequence
    except grpc.RpcError:
        pass
    timer.join()
    load.join()
    channel.close()
    assert process.wait() == -signal.SIGKILL
    soak.kills += 1
    assert not errors, errors
    lost = soak.acked - logged_ids(state)
    assert not lost, f"cycle {soak.kills}: {len(lost)} acknowledged events lost"


def run(start: Any, tiny_bundle: TinyBundle, tmp_path: Path, cycles: int) -> Soak:
    state, soak, rng = tmp_path / "state", Soak(), random.Random(cycles)
    for _ in range(cycles):
        one_cycle(start, state, soak, rng)
    process, channel = start(state)
    events = events_pb2_grpc.EventsStub(channel)
    sent = [make_batch(i) for i in range(soak.sent_until)]
    acks = list(events.StreamEvents(iter(sent)))  # resend everything ever sent
    duplicates = {r.event_id for a in acks for r in a.rejections}
    assert soak.acked <= duplicates  # acknowledged before: applied once already
    expected = Counter(e.user_id for b in sent for e in b.events)
    logged = logged_ids(state)
    assert logged == {e.event_id for b in sent for e in b.events}
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    items = [f"v{i}" for i in range(50)]
    served = {}
    for user in USERS:
        got = events.GetUserState(epb.GetUserStateRequest(user_id=user))
        assert got.source_events + got.target_events == expected[user]  # none applied twice
        reply = rec.Score(pb.ScoreRequest(user_id=user, item_ids=items))
        served[user] = np.array([i.score for i in reply.items])
    channel.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    replayed = replayed_vectors(tiny_bundle.path, state, tmp_path, warm_threshold=5)
    for user in USERS:
        expected_scores = tiny_bundle.all_scores(replayed.get(user))
        np.testing.assert_allclose(served[user], expected_scores, rtol=1e-5, atol=1e-5)
    print(
        f"\n{cycles} kill cycles: {soak.kills} SIGKILLs, {len(soak.acked)} events acknowledged "
        f"(0 lost), {len(logged)} logged, each applied once, {soak.recommends} Recommend "
        f"calls during ingest, state == serial replay of the log"
    )
    return soak


def test_kill_cycles_lose_nothing_and_apply_nothing_twice(
    start_process: Any,  # noqa: F811
    tiny_bundle: TinyBundle,
    tmp_path: Path,
) -> None:
    soak = run(start_process, tiny_bundle, tmp_path, cycles=5)
    assert soak.kills == 5


@pytest.mark.slow
@pytest.mark.soak  # not in the default run: pytest tests/streaming/test_kill_cycles.py -m soak
def test_fifty_kill_cycles_lose_nothing_and_apply_nothing_twice(
    start_process: Any,  # noqa: F811
    tiny_bundle: TinyBundle,
    tmp_path: Path,
) -> None:
    soak = run(start_process, tiny_bundle, tmp_path, cycles=50)
    assert soak.kills == 50 and len(soak.acked) > 0
