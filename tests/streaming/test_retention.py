"""Retention: compaction deletes applied events covered by a snapshot; a restart after it
restores the same state; the idempotency window is the retention."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge_server import Settings
from coldbridge_server.errors import ConfigError
from conftest import TinyBundle
from eventlib import batch, serving
from test_events_durability import USERS, workload
from test_storage_faults import logged_ids


def test_retention_by_events_compacts_and_a_restart_restores_the_same_state(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    batches = workload(40)  # 400 events
    settings = dict(warm_threshold=5, snapshot_every_events=50, event_retention_events=100)
    with serving(tiny_bundle.path, state, **settings) as c:
        assert all(a.accepted == 10 for a in c.stream(batches))
        before = {u: (c.scores(u), c.state(u)) for u in USERS}
        kept = logged_ids(state)
        assert 100 <= len(kept) <= 150  # the newest 100, plus what no snapshot covers yet
        assert c.metric("coldbridge_events_erased_total", reason="retention") == 400 - len(kept)
        assert c.metric("coldbridge_event_log_events") == len(kept)
        # the idempotency window: a compacted event is new again, a kept one a duplicate
        first, last = batches[0].events[0], batches[-1].events[0]
        assert first.event_id not in kept and last.event_id in kept
        ingestor = c.server.ingestor
        ingestor.close = ingestor.store.close  # type: ignore[method-assign]  # no final snapshot
    with serving(tiny_bundle.path, state, **settings) as c:
        for user, (scores, got) in before.items():
            np.testing.assert_array_equal(c.scores(user), scores)
            assert c.state(user).target_events == got.target_events
            assert c.state(user).source_events == got.source_events
        dup = c.events.IngestEvents(batch(1, last))
        assert [r.reason for r in dup.rejections] == [epb.REJECTION_REASON_DUPLICATE_EVENT]
        assert c.events.IngestEvents(batch(2, first)).accepted == 1
        position = c.events.IngestEvents(batch(3, batches[5].events[0])).log_position
        assert position == 402  # positions are never reused after compaction


def test_retention_by_age_deletes_only_old_events_covered_by_a_snapshot(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    batches = workload(12)
    settings = dict(warm_threshold=5, snapshot_every_events=30, event_retention_seconds=1.0)
    with serving(tiny_bundle.path, state, **settings) as c:
        c.stream(batches[:6])  # 60 events, two snapshots: nothing is old enough yet
        assert len(logged_ids(state)) == 60
        time.sleep(1.2)  # the first 60 events age past the retention
        c.stream(batches[6:])  # the next snapshots cover them: they are compacted
        kept = logged_ids(state)
        assert kept <= {e.event_id for b in batches[6:] for e in b.events}
        assert {e.event_id for e in batches[-1].events} <= kept  # recent: kept
        before = {u: c.scores(u) for u in USERS}
    with serving(tiny_bundle.path, state, **settings) as c:
        for user, scores in before.items():
            np.testing.assert_array_equal(c.scores(user), scores)


@pytest.mark.parametrize(
    "name, value",
    [
        ("event_retention_seconds", -1.0),
        ("event_retention_seconds", float("inf")),
        ("event_retention_events", -5),
        ("state_max_bytes", -1),
        ("storage_retry_seconds", 0.0),
    ],
)
def test_storage_settings_are_range_checked(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings(**{name: value})
