"""Learning and serving concurrently: no lost updates, no torn reads, bounded buffering."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server.streaming.ingest import Ingestor
from conftest import TinyBundle
from eventlib import SOURCE, batch, event, replayed_vectors, serving

USERS = ["s0", "s1", "u1", "late-1", "late-2"]
STAGES = {
    pb.LIFECYCLE_STAGE_NEW,
    pb.LIFECYCLE_STAGE_TRANSFERRED,
    pb.LIFECYCLE_STAGE_WARMING,
    pb.LIFECYCLE_STAGE_WARM,
}


def stream_batches(stream: int, n: int) -> list[epb.EventBatch]:
    rng = np.random.default_rng(stream)
    out = []
    for b in range(n):
        events = []
        for i in range(8):
            user = USERS[int(rng.integers(len(USERS)))]
            if user.startswith("late") and rng.random() < 0.25:
                events.append(event(f"{stream}-{b}-{i}", user, f"g{rng.integers(40)}", SOURCE))
            else:
                events.append(event(f"{stream}-{b}-{i}", user, f"v{rng.integers(50)}"))
        out.append(batch(b + 1, *events))
    return out


def test_concurrent_streams_and_reads_equal_a_serial_replay(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    streams = [stream_batches(s, 40) for s in range(4)]
    errors: list[BaseException] = []
    done = threading.Event()
    with serving(tiny_bundle.path, state, warm_threshold=20, max_workers=16) as c:

        def write(batches: list[epb.EventBatch]) -> None:
            try:
                acks = c.stream(batches)
                assert [a.accepted for a in acks] == [8] * len(batches)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def read() -> None:
            try:
                while not done.is_set():
                    for user in USERS:
                        reply = c.recommend(user, k=50)
                        scores = [i.score for i in reply.items]
                        assert scores == sorted(scores, reverse=True) and len(scores) == 50
                        assert reply.stage in STAGES
                        state = c.state(user)
                        assert state.online_updates >= state.target_events
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(s,)) for s in streams]
        readers = [threading.Thread(target=read) for _ in range(2)]
        for t in (*writers, *readers):
            t.start()
        for t in writers:
            t.join()
        done.set()
        for t in readers:
            t.join()
        assert not errors, errors
        sent = Counter(e.user_id for s in streams for b in s for e in b.events)
        served = {}
        for user in USERS:
            got = c.state(user)
            assert got.source_events + got.target_events == sent[user]  # no lost update
            served[user] = c.scores(user)
    replayed = replayed_vectors(tiny_bundle.path, state, tmp_path, warm_threshold=20)
    for user in USERS:
        np.testing.assert_allclose(
            served[user], tiny_bundle.all_scores(replayed[user]), rtol=1e-5, atol=1e-5
        )


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold the ingest writer before each group of batches until the test opens the gate."""
    opened = threading.Event()
    process = Ingestor._process

    def held(self: Ingestor, batches: list) -> None:
        assert opened.wait(60)
        process(self, batches)

    monkeypatch.setattr(Ingestor, "_process", held)
    yield opened
    opened.set()


def test_a_fast_client_is_slowed_down_not_buffered(
    tiny_bundle: TinyBundle, tmp_path: Path, gate: threading.Event
) -> None:
    pulled = 0
    filler = "x" * 2000  # ~100 kB per batch

    def batches() -> Iterator[epb.EventBatch]:
        nonlocal pulled
        for b in range(200):
            pulled += 1
            yield batch(b + 1, *[event(f"{b}-{i}-{filler}", "s0", "v1") for i in range(50)])

    with serving(
        tiny_bundle.path,
        tmp_path / "state",
        ingest_queue_size=2,
        max_batch_events=50,
        max_id_bytes=4096,  # the filler makes 2 kB event ids
    ) as c:
        acks = []
        thread = threading.Thread(target=lambda: acks.extend(c.events.StreamEvents(batches())))
        thread.start()
        threading.Event().wait(2.0)  # a client without backpressure would send it all
        first = pulled
        threading.Event().wait(2.0)
        held_back = pulled
        gate.set()
        thread.join(120)
        # server: queue (2) + unacked window (2) + reader + writer; the rest is what gRPC's
        # HTTP/2 flow-control windows hold (a few MB on loopback): bounded, and not growing
        assert held_back == first < 100, f"{first} then {held_back} of 200 batches taken"
        assert len(acks) == 200 and all(a.accepted == 50 for a in acks)
        assert c.state("s0").target_events == 10_000
