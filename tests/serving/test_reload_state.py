"""Hot reload and the online state: rebuild from the log while streaming, no answer mixes
two bundles, replay onto a bundle lacking items, states kept when the space is unchanged.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from coldbridge.v1 import events_pb2 as epb
from conftest import make_tiny_arrays
from eventlib import replayed_vectors
from reloadlib import serving, version, without_target_items, write_version


def _event(i: int, users: int = 9, items: int = 50) -> epb.Event:
    return epb.Event(
        event_id=f"e{i}",
        user_id=f"n{i % users}",
        item_id=f"v{(7 * i + i // users) % items}",
        domain=epb.DOMAIN_TARGET,
        kind=epb.EVENT_KIND_IMPLICIT,
    )


def _same(a: dict[str, np.ndarray | None], b: dict[str, np.ndarray | None]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[u], b[u]) for u in a)


def test_reload_while_streaming_loses_no_acknowledged_event(tmp_path: Path) -> None:
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    v1 = version(bundles, "v1", seed=0)
    v2 = version(bundles, "v2", seed=1)
    stop = threading.Event()
    acks: list[epb.EventAck] = []

    def batches() -> Iterator[epb.EventBatch]:
        n = 0
        while not stop.is_set() or n < 400:
            yield epb.EventBatch(sequence=n // 20, events=[_event(n + j) for j in range(20)])
            n += 20

    with serving(bundles, state, snapshot_every_events=150) as s:
        stream = threading.Thread(
            target=lambda: acks.extend(s.client.events.StreamEvents(batches()))
        )
        stream.start()
        replies = []
        for target in (v1, v2, v1, v2):
            replies.append(s.client.reload_bundle(str(target.path)))
        stop.set()
        stream.join(timeout=60)
        assert not stream.is_alive()
        assert [r.new_version for r in replies] == ["v1", "v2", "v1", "v2"]
        assert all(r.states_rebuilt for r in replies[1:])
        accepted = sum(a.accepted for a in acks)
        assert accepted == len(acks) * 20 >= 400 and not any(a.rejections for a in acks)
        assert s.server.ingestor is not None and s.server.ingestor.store.count == accepted
        per_user = Counter(_event(i).user_id for i in range(accepted))
        for user, n in per_user.items():
            assert s.client.user_state(user).target_events == n
        served = s.vectors()
    # the state after the reloads is a replay of the whole log on the new bundle
    assert _same(served, replayed_vectors(v2.path, state, tmp_path))
    # and the snapshot written at the swap belongs to v2: a restart serves the same states
    with serving(bundles, state) as again:
        assert _same(served, again.vectors())


def test_no_answer_mixes_two_bundles(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    v1, v2 = version(bundles, "v1", seed=0), version(bundles, "v2", seed=1)
    expected = {b.version: b.ranking(b.target_vector("u0"))[:10] for b in (v1, v2)}
    expected_cold = {
        b.version: b.ranking(b.target_vector("x", ["g1", "g2"]))[:10] for b in (v1, v2)
    }
    stop, wrong, seen = threading.Event(), [], Counter[str]()

    def hammer() -> None:
        while not stop.is_set():
            warm = s.client.recommend("u0", k=10)
            cold = s.client.recommend("x", k=10, source_item_ids=["g1", "g2"])
            for reply, table in ((warm, expected), (cold, expected_cold)):
                seen[reply.model_version] += 1
                if [i.item_id for i in reply.items] != table[reply.model_version]:
                    wrong.append(reply.model_version)

    with serving(bundles, tmp_path / "state", topk_batch_size=8) as s:
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        for target in (v1, v2) * 3:
            s.client.reload_bundle(str(target.path))
        stop.set()
        for t in threads:
            t.join()
    assert not wrong and seen["v1"] > 0 and seen["v2"] > 0


def test_replay_onto_a_bundle_lacking_items(tmp_path: Path) -> None:
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    version(bundles, "v1", seed=0)
    small = write_version(tmp_path / "other", "v2", without_target_items(make_tiny_arrays(1), 40))
    events = [_event(i) for i in range(300)]
    lacking = sum(1 for e in events if int(e.item_id[1:]) >= 40)
    assert 0 < lacking < 300
    with serving(bundles, state) as s:
        assert s.client.ingest(events).accepted == 300
        reply = s.client.reload_bundle(str(small.path))
        assert reply.states_rebuilt and reply.new_version == "v2"
        assert (reply.replayed_events, reply.skipped_events) == (300 - lacking, lacking)
        later = s.client.ingest(
            [
                epb.Event(
                    event_id="late",
                    user_id="n1",
                    item_id="v45",
                    domain=epb.DOMAIN_TARGET,
                    kind=epb.EVENT_KIND_IMPLICIT,
                )
            ]
        )
        assert later.accepted == 0
        assert later.rejections[0].reason == epb.REJECTION_REASON_UNKNOWN_ITEM
        assert len(s.client.recommend("n1", k=5).items) == 5
        served = s.vectors()
    assert _same(served, replayed_vectors(small.path, state, tmp_path))


def test_same_space_keeps_the_states(tmp_path: Path) -> None:
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    arrays = make_tiny_arrays(0)
    version_a = write_version(bundles, "v1", arrays)
    popular = dict(arrays, target_item_popularity=arrays["target_item_popularity"][::-1].copy())
    version_b = write_version(bundles, "v2", popular)
    with serving(version_a.path, state) as s:
        s.client.ingest([_event(i) for i in range(200)])
        before = s.vectors()
        reply = s.client.reload_bundle(str(version_b.path))
        assert reply.new_version == "v2" and not reply.states_rebuilt
        assert reply.users == len(before) and _same(before, s.vectors())
        assert s.client.user_state("n1").bundle_version == "v2"
        assert s.client.ingest([_event(i) for i in range(200, 260)]).accepted == 60
        served = s.vectors()
    assert _same(served, replayed_vectors(version_b.path, state, tmp_path))


def test_rebuild_keeps_each_users_logged_time(tmp_path: Path) -> None:
    # a rebuilt state equals the recovered one: each event applied with its batch's
    # received_at (not the time of a later batch read in the same chunk)
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    v1, v2 = version(bundles, "v1", seed=0), version(bundles, "v2", seed=1)
    with serving(v1.path, state) as s:
        for b in range(3):
            events = [_event(i) for i in range(b * 9, b * 9 + 9)]
            for n, e in enumerate(events):
                e.user_id = f"t{b}-{n}"
            assert s.client.ingest(events).accepted == 9
            time.sleep(0.01)
        assert s.server.ingestor is not None
        before = {u.user_id: u.last_update for u in s.server.ingestor.updater.states}
        assert len(set(before.values())) == 3
        assert s.client.reload_bundle(str(v2.path)).states_rebuilt
        after = {u.user_id: u.last_update for u in s.server.ingestor.updater.states}
    assert after == before
