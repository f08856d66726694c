"""The hot reload's state rebuild ends under any ingest rate, and a user erased while it runs
stays erased (real server on a loopback port, real SQLite, real onnxruntime and River)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge_client import ClientError
from coldbridge_server.reload import rebuild
from eventlib import replayed_vectors
from redislib import redis_server
from reloadlib import serving, version


def _event(i: int) -> epb.Event:
    return epb.Event(
        event_id=f"e{i}",
        user_id=f"n{i % 9}",
        item_id=f"v{(7 * i + i // 9) % 50}",
        domain=epb.DOMAIN_TARGET,
        kind=epb.EVENT_KIND_IMPLICIT,
    )


def _same(a: dict[str, np.ndarray | None], b: dict[str, np.ndarray | None]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[u], b[u]) for u in a)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_rebuild_slower_than_the_ingest_still_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """Tiny chunks and long pauses make the rebuild far slower than a client streaming as
    fast as it can: every read comes back full, so without a bound on the catch-up rounds the
    reload would only end when the stream stops (it never does here before the reload).
    Each store says when the rebuild caught up (``read_end`` / ``read_covers``)."""
    monkeypatch.setattr(rebuild, "CHUNK", 4)
    monkeypatch.setattr(rebuild, "YIELD", 20.0)
    monkeypatch.setattr(rebuild, "ROUNDS", 2)
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    version(bundles, "v1", seed=0)
    stop, acks = threading.Event(), []

    def batches() -> Iterator[epb.EventBatch]:
        n = 0
        while not stop.wait(0.002):
            yield epb.EventBatch(sequence=n // 20 + 1, events=[_event(n + j) for j in range(20)])
            n += 20

    with contextlib.ExitStack() as stack:
        settings: dict[str, Any] = {"snapshot_every_events": 10_000}
        if store == "redis":
            redis = stack.enter_context(redis_server(tmp_path))
            settings.update(store="redis", redis_url=redis.url, redis_partitions=4)
        s = stack.enter_context(serving(bundles, state, **settings))
        s.client.ingest([_event(-1 - n) for n in range(200)])
        v2 = version(bundles, "v2", seed=1)
        stream = threading.Thread(
            target=lambda: acks.extend(s.client.events.StreamEvents(batches()))
        )
        stream.start()
        try:
            reply = s.client.reload_bundle(str(v2.path), timeout=120)
            assert stream.is_alive()  # the reload ended while the stream still ran
        except ClientError as exc:
            pytest.fail(f"the reload did not end while events streamed: {exc}")
        finally:
            stop.set()
            stream.join(timeout=60)
        assert reply.new_version == "v2" and reply.states_rebuilt
        accepted = sum(a.accepted for a in acks)
        assert accepted == 20 * len(acks) and accepted > 0
        assert s.server.ingestor is not None and s.server.ingestor.store.count == accepted + 200
        served = s.vectors()
        for user in {_event(n).user_id for n in range(9)}:  # every event applied once
            expected = sum(1 for n in range(accepted) if _event(n).user_id == user)
            expected += sum(1 for n in range(200) if _event(-1 - n).user_id == user)
            assert s.client.user_state(user).target_events == expected
    if store == "sqlite":  # the log on disk, replayed serially on v2
        assert _same(served, replayed_vectors(v2.path, state, tmp_path))


def test_a_user_erased_during_the_rebuild_stays_erased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DeleteUser between two chunks of the rebuild: the events the rebuild already applied
    to the new bundle's states must not bring the user back at the swap."""
    bundles, state = tmp_path / "bundles", tmp_path / "state"
    version(bundles, "v1", seed=0)
    with serving(bundles, state) as s:
        for n in range(4):
            s.client.ingest([_event(100 * n + k) for k in range(100)])
        v2 = version(bundles, "v2", seed=1)
        monkeypatch.setattr(rebuild, "CHUNK", 64)
        real, erased = rebuild._apply, []

        def apply(*args: Any) -> None:
            real(*args)
            if not erased:  # after the first chunk (applied with the writer running)
                erased.append(s.client.delete_user("n0"))

        monkeypatch.setattr(rebuild, "_apply", apply)
        assert s.client.reload_bundle(str(v2.path), timeout=120).states_rebuilt
        assert erased and erased[0].deleted_events > 0
        assert s.server.ingestor is not None
        assert s.server.ingestor.updater.states.get("n0") is None
        assert s.client.user_state("n0").target_events == 0
        served = s.vectors()
    assert "n0" not in served
    assert _same(served, replayed_vectors(v2.path, state, tmp_path))
    with serving(bundles, state) as again:  # and the snapshot written at the swap agrees
        assert _same(served, again.vectors())
