"""Erasure: DeleteUser removes a user's events and state durably, ordered with their events."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_client import Client as PublicClient
from coldbridge_server.streaming.validate import Domain, Event, Kind
from conftest import TinyBundle
from eventlib import SOURCE, Client, batch, event, replayed_vectors, serving
from test_storage_faults import logged_ids, wait_for

SETTINGS: dict[str, Any] = dict(warm_threshold=3, snapshot_every_events=10)


def alice_events(prefix: str = "a") -> list[epb.Event]:
    return [event(f"{prefix}-s{i}", "alice", f"g{i}", SOURCE) for i in range(3)] + [
        event(f"{prefix}-t{i}", "alice", f"v{i}") for i in range(12)
    ]


def others() -> list[epb.Event]:
    return [event(f"b-{i}", "bob", f"v{i + 3}") for i in range(8)] + [
        event(f"s-{i}", "s0", f"v{i + 7}") for i in range(5)
    ]


def delete(c: Client, user: str) -> epb.DeleteUserResponse:
    return c.events.DeleteUser(epb.DeleteUserRequest(user_id=user))


def is_new(c: Client, user: str) -> bool:
    got = c.state(user)
    return (
        got.stage == pb.LIFECYCLE_STAGE_NEW
        and got.source_events == got.target_events == got.online_updates == 0
        and c.recommend(user).provenance == pb.PROVENANCE_FALLBACK
    )


def test_delete_user_erases_durably_and_leaves_others_untouched(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state, **SETTINGS) as c:
        acks = c.stream([batch(1, *alice_events()), batch(2, *others())])
        assert [a.accepted for a in acks] == [15, 13]
        assert c.state("alice").stage == pb.LIFECYCLE_STAGE_WARM  # snapshotted: 28 > 10 events
        before = {u: c.scores(u) for u in ("bob", "s0")}
        reply = delete(c, "alice")
        assert (reply.user_id, reply.deleted_events, reply.had_state) == ("alice", 15, True)
        assert is_new(c, "alice")
        for user, scores in before.items():
            np.testing.assert_array_equal(c.scores(user), scores)
        assert c.metric("coldbridge_events_erased_total", reason="user") == 15
        again = delete(c, "alice")  # idempotent
        assert (again.deleted_events, again.had_state) == (0, False)
    raw = b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith("coldbridge"))
    assert b"alice" not in raw and b"a-t1" not in raw  # overwritten, not just unlinked
    assert not any(i.startswith("a-") for i in logged_ids(state))
    with serving(tiny_bundle.path, state, **SETTINGS) as c:
        assert is_new(c, "alice")
        for user, scores in before.items():
            np.testing.assert_array_equal(c.scores(user), scores)
        # the deleted ids are new again: the resent events start a new user
        assert c.stream([batch(1, *alice_events())])[0].accepted == 15
        assert c.state("alice").target_events == 12
        served = {u: c.scores(u) for u in ("alice", "bob", "s0")}
    replayed = replayed_vectors(tiny_bundle.path, state, tmp_path, warm_threshold=3)
    for user, scores in served.items():  # a serial replay of the log gives the same state
        expected = tiny_bundle.all_scores(replayed[user])
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_a_snapshot_taken_before_the_deletion_cannot_bring_the_user_back(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with serving(tiny_bundle.path, state, **SETTINGS) as c:
        c.stream([batch(1, *alice_events()), batch(2, *others())])  # snapshots alice
        assert delete(c, "alice").deleted_events == 15
        bob = c.scores("bob")
        ingestor = c.server.ingestor
        ingestor.close = ingestor.store.close  # type: ignore[method-assign]  # a crash
    with serving(tiny_bundle.path, state, **SETTINGS) as c:
        assert is_new(c, "alice")
        np.testing.assert_array_equal(c.scores("bob"), bob)


def test_deletion_is_ordered_with_the_events_queued_around_it(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    def target(eid: str, item: str) -> Event:
        return Event(eid, "alice", item, Domain.TARGET, Kind.IMPLICIT)

    with serving(tiny_bundle.path, tmp_path / "state", **SETTINGS) as c:
        ingestor = c.server.ingestor
        holding, release = threading.Event(), threading.Event()

        def hold(state: Any) -> None:
            if state.user_id == "bob":
                holding.set()
                release.wait()

        ingestor.updater.states.subscribe(hold)
        busy = ingestor.submit([Event("b-0", "bob", "v0", Domain.TARGET, Kind.IMPLICIT)])
        wait_for(holding.is_set, "the writer busy")
        before = ingestor.submit([target("old-1", "v1"), target("old-2", "v2")])
        erasure = ingestor.delete_user("alice")
        after = ingestor.submit([target("new-1", "v3")])
        release.set()
        assert busy.wait().accepted == 1 and before.wait().accepted == 2
        assert erasure.wait() == 2 and erasure.had_state
        assert after.wait().accepted == 1
        got = c.state("alice")
        assert (got.target_events, got.seen_items) == (1, 1)
        redo = c.events.IngestEvents(batch(1, event("old-1", "alice", "v1")))
        assert redo.accepted == 1  # its id was deleted with the user: a new event


def test_delete_user_needs_a_user_id_and_the_client_has_it(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    with serving(tiny_bundle.path, tmp_path / "state", **SETTINGS) as c:
        with pytest.raises(grpc.RpcError) as empty:
            delete(c, "")
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "user_id" in empty.value.details()
        c.stream([batch(1, *alice_events())])
        target = c.channel._channel.target().decode()  # type: ignore[attr-defined]
        with PublicClient(target) as client:
            reply = client.delete_user("alice")
            assert (reply.deleted_events, reply.had_state) == (15, True)
            assert client.user_state("alice").target_events == 0
