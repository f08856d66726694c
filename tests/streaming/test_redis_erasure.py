"""DeleteUser with the Redis store is ordered through the log: erased on one replica, the
user is gone on every replica, from the log, the ids and the snapshots, also after a restart;
other users are untouched."""

from __future__ import annotations

import time
from pathlib import Path

from coldbridge.v1 import events_pb2 as epb
from conftest import TinyBundle
from eventlib import batch, event, serving
from redislib import log_events, redis_server

SETTINGS = dict(store="redis", redis_partitions=2, snapshot_every_events=5)


def test_delete_user_on_one_replica_erases_it_everywhere(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    with redis_server(tmp_path) as redis:
        url = redis.url
        with (
            serving(tiny_bundle.path, tmp_path / "a", redis_url=url, **SETTINGS) as a,
            serving(tiny_bundle.path, tmp_path / "b", redis_url=url, **SETTINGS) as b,
        ):
            events = [event(f"e{k}", "gone" if k % 2 else "kept", f"v{k}") for k in range(20)]
            assert a.events.IngestEvents(batch(1, *events)).accepted == 20  # snapshots too
            deadline = time.monotonic() + 30
            while b.state("gone").target_events != 10:  # b follows the log
                assert time.monotonic() < deadline
                time.sleep(0.02)
            reply = b.events.DeleteUser(epb.DeleteUserRequest(user_id="gone"))
            assert reply.deleted_events == 10 and reply.had_state
            assert b.state("gone").target_events == 0
            while a.state("gone").target_events != 0:  # a applies the erasure entry
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert a.state("kept").target_events == b.state("kept").target_events == 10
            logged = [e for s in log_events(redis.client(), 2) for e in s]
            assert "gone" in logged  # the erasure entry
            assert [e for e in logged if not isinstance(e, str) and e.user_id == "gone"] == []
            client = redis.client()
            snaps = [k for p in range(2) for k in client.scan_iter(f"cb:{{p{p}}}:snap*")]
            assert any(k.endswith(f":snap:{tiny_bundle.version}".encode()) for k in snaps)
            assert b"gone" not in [u for k in snaps for u in client.hkeys(k)]
            again = a.events.IngestEvents(batch(2, events[1]))  # its id is unknown again
            assert again.accepted == 1
        with serving(tiny_bundle.path, tmp_path / "c", redis_url=url, **SETTINGS) as c:
            assert c.state("gone").target_events == 1 and c.state("kept").target_events == 10
