"""Hostile input to coldbridge.v1.Events: values, ratings, timestamps and id sizes.

Real server on 127.0.0.1:0, real SQLite, real River; the tiny bundle (implicit feedback) and
an explicit-feedback copy of it. Every limit of docs/api.md ("Input limits") has a test here.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from conftest import TinyBundle, make_tiny_arrays, tiny_content
from eventlib import RATING, SOURCE, Client, batch, event, serving
from google.protobuf.timestamp_pb2 import Timestamp

MAX_ID = 100
INVALID = epb.REJECTION_REASON_INVALID_VALUE


@pytest.fixture(scope="module")
def explicit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle, trained (so its manifest says) on explicit feedback."""
    from coldbridge_bundle import write

    arrays = make_tiny_arrays()
    arrays["feedback"] = "explicit"
    out = tmp_path_factory.mktemp("explicit")
    return Path(write(out, tiny_content(arrays), version="20260101T000000Z-explicit1"))


@pytest.fixture
def client(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[Client]:
    with serving(tiny_bundle.path, tmp_path / "state", max_id_bytes=MAX_ID) as c:
        yield c


def stamped(eid: str, user: str, seconds: int, nanos: int = 0) -> epb.Event:
    message = event(eid, user, "v1")
    message.timestamp.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
    return message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_implicit_event_with_a_non_finite_value_is_rejected_alone(
    client: Client, value: float
) -> None:
    ack = client.events.IngestEvents(
        batch(1, event("ok-1", "u0", "v1"), event("bad", "u0", "v2", value=value))
    )
    assert ack.accepted == 1
    (rejection,) = ack.rejections
    assert (rejection.index, rejection.event_id, rejection.reason) == (1, "bad", INVALID)
    assert rejection.message.startswith("value: must be finite")
    assert client.state("u0").target_events == 1
    rejected = client.metric(
        "coldbridge_events_rejected_total", domain="target", reason="invalid_value"
    )
    assert rejected == 1


def test_bad_events_never_fail_a_concurrent_well_behaved_stream(client: Client) -> None:
    """The writer commits batches of several clients together: a NaN from one must not
    reach that shared commit (it failed everybody's batches with INTERNAL)."""
    good = [batch(s, *[event(f"g{s}-{i}", "s1", f"v{i}") for i in range(5)]) for s in range(1, 41)]
    errors: list[BaseException] = []

    def attack() -> None:
        try:
            for n in range(40):
                bad = event(f"nan-{n}", f"attacker-{n}", "v3", value=math.nan)
                ack = client.events.IngestEvents(batch(n, bad, event(f"fine-{n}", "s2", "v4")))
                assert ack.accepted == 1 and ack.rejections[0].reason == INVALID
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=attack)
    thread.start()
    acks = client.stream(good)
    thread.join()
    assert not errors, errors
    assert [a.accepted for a in acks] == [5] * 40
    assert client.state("s1").target_events == 200 and client.state("s2").target_events == 40
    assert client.state("attacker-0").target_events == 0


def test_implicit_bundle_refuses_ratings(client: Client) -> None:
    ack = client.events.IngestEvents(batch(1, event("r", "s0", "v1", kind=RATING, value=4.0)))
    (rejection,) = ack.rejections
    assert ack.accepted == 0 and rejection.reason == INVALID
    assert rejection.message.startswith("kind:") and "implicit feedback" in rejection.message


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(0.0, True), (5.0, True), (10.0, True), (10.5, False), (-1.0, False), (1e308, False)],
)
def test_explicit_bundle_accepts_ratings_within_the_range(
    explicit_bundle: Path, tmp_path: Path, value: float, accepted: bool
) -> None:
    with serving(explicit_bundle, tmp_path / "state") as c:
        before = c.scores("s0")
        ack = c.events.IngestEvents(batch(1, event("r", "s0", "v1", kind=RATING, value=value)))
        assert ack.accepted == int(accepted)
        if not accepted:
            assert ack.rejections[0].reason == INVALID
            assert "[min_rating=0.0, max_rating=10.0]" in ack.rejections[0].message
            assert np.array_equal(c.scores("s0"), before)
        after = c.scores("s0")
        assert np.all(np.isfinite(after)) and np.abs(after).max() < 1e3


def test_rating_range_is_a_setting(explicit_bundle: Path, tmp_path: Path) -> None:
    with serving(explicit_bundle, tmp_path / "state", min_rating=-1.0, max_rating=1.0) as c:
        ack = c.events.IngestEvents(
            batch(
                1,
                event("a", "s0", "v1", kind=RATING, value=-1.0),
                event("b", "s0", "v2", kind=RATING, value=2.0),
            )
        )
    assert ack.accepted == 1 and [r.index for r in ack.rejections] == [1]


BAD_TIMES = {
    "seconds-min-int64": (-(2**63), 0),
    "seconds-max-int64": (2**63 - 1, 0),
    "before-year-1": (-62_135_596_801, 0),
    "after-year-9999": (253_402_300_800, 0),
    "nanos-negative": (0, -5),
    "nanos-two-billion": (1_700_000_000, 2_000_000_000),
}


@pytest.mark.parametrize("when", BAD_TIMES.values(), ids=BAD_TIMES.keys())
def test_out_of_range_timestamp_is_rejected(client: Client, when: tuple[int, int]) -> None:
    ack = client.events.IngestEvents(batch(1, stamped("t", "s0", *when), event("ok", "s0", "v2")))
    assert ack.accepted == 1
    (rejection,) = ack.rejections
    assert (rejection.index, rejection.reason) == (0, INVALID)
    assert rejection.message.startswith("timestamp:")
    assert client.state("s0").target_events == 1


def _drop_snapshot(state_dir: Path) -> None:
    """Make the next start replay the whole log (as after a crash before any snapshot)."""
    with contextlib.closing(sqlite3.connect(state_dir / "coldbridge.sqlite3")) as db:
        db.execute("DELETE FROM meta")
        db.execute("DELETE FROM user_state")
        db.commit()


def test_timestamps_at_the_range_ends_and_last_update_survive_replay(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    edges = [(-62_135_596_800, 0), (253_402_300_799, 999_999_999), (1000, 0)]
    users = [f"edge-{i}" for i in range(len(edges))]
    with serving(tiny_bundle.path, state_dir) as c:
        for n, (user, when) in enumerate(zip(users, edges, strict=True)):
            assert c.events.IngestEvents(batch(n, stamped(f"e{n}", user, *when))).accepted == 1
        before = {u: c.state(u) for u in users}
    _drop_snapshot(state_dir)
    with serving(tiny_bundle.path, state_dir) as c:
        after = {u: c.state(u) for u in users}
    for user in users:
        assert after[user].last_update_time == before[user].last_update_time
        assert after[user].last_update_time.seconds > 1_600_000_000  # server time, not the event's
        assert after[user].target_events == 1


def test_an_over_long_id_fails_its_batch_only(client: Client) -> None:
    huge = "x" * 1_300_000
    with pytest.raises(grpc.RpcError) as err:
        client.stream(
            [
                batch(1, event("first", "s3", "v1")),
                batch(2, event("e-2", "s3", "v2"), event(huge, "s3", "v3")),
            ]
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details == "events[1].event_id: 1300000 bytes exceed max_id_bytes=100"
    assert client.state("s3").target_events == 1  # the first batch stays, nothing of the 2nd


@pytest.mark.parametrize("field", ["event_id", "user_id", "item_id"])
def test_id_limit_counts_utf8_bytes(client: Client, field: str) -> None:
    fits, over = "ü" * (MAX_ID // 2), "ü" * (MAX_ID // 2) + "x"  # 100 and 101 bytes

    def with_id(value: str) -> epb.Event:
        message = event("e", "u", "v1")
        setattr(message, field, value)
        return message

    ack = client.events.IngestEvents(batch(1, with_id(fits)))  # no error: 100 bytes fit
    unknown = [epb.REJECTION_REASON_UNKNOWN_ITEM] if field == "item_id" else []
    assert [r.reason for r in ack.rejections] == unknown and ack.accepted == 1 - len(unknown)
    with pytest.raises(grpc.RpcError) as err:
        client.events.IngestEvents(batch(2, event("ok", "u", "v2"), with_id(over)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == f"events[1].{field}: 101 bytes exceed max_id_bytes=100"


def test_get_user_state_refuses_a_huge_user_id(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.state("u" * 1_000_000)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "user_id: 1000000 bytes exceed max_id_bytes=100"


def test_unknown_item_echo_is_truncated(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    with serving(tiny_bundle.path, tmp_path / "state", max_id_bytes=1 << 20) as c:
        ack = c.events.IngestEvents(batch(1, event("e", "s0", "w" * 500_000, SOURCE)))
    (rejection,) = ack.rejections
    assert rejection.reason == epb.REJECTION_REASON_UNKNOWN_ITEM
    assert len(rejection.message) < 200 and "(500000 bytes)" in rejection.message
