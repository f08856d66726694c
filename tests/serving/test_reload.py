"""Hot reload through a real server: Admin/ReloadBundle, refused bundles, newest wins, watch.

Real gRPC on loopback, real bundles (the real writer), real onnxruntime, SQLite and River.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import admin_pb2
from coldbridge.v1 import events_pb2 as epb
from coldbridge_client import ClientError
from conftest import make_tiny_arrays
from reloadlib import Served, edit_manifest, rehash, serving, version, write_version

SWAPPED, UNCHANGED = admin_pb2.RELOAD_OUTCOME_SWAPPED, admin_pb2.RELOAD_OUTCOME_UNCHANGED


def _target_events(n: int, users: int = 5, prefix: str = "e") -> list[epb.Event]:
    return [
        epb.Event(
            event_id=f"{prefix}{i}",
            user_id=f"n{i % users}",
            item_id=f"v{(7 * i) % 50}",
            domain=epb.DOMAIN_TARGET,
            kind=epb.EVENT_KIND_IMPLICIT,
        )
        for i in range(n)
    ]


def test_reload_serves_the_new_version(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    v1 = version(bundles, "v1", seed=0)
    with serving(bundles, tmp_path / "state") as s:
        assert s.client.recommend("u0", k=5).model_version == "v1"
        v2 = version(bundles, "v2", seed=1)
        reply = s.client.reload_bundle()
        assert (reply.outcome, reply.old_version, reply.new_version) == (SWAPPED, "v1", "v2")
        assert reply.bundle_path == str(v2.path)
        assert s.client.model_info().bundle_version == "v2"
        answer = s.client.recommend("u0", k=5)
        assert answer.model_version == "v2"
        expected = v2.ranking(v2.target_vector("u0"))[:5]
        assert [i.item_id for i in answer.items] == expected
        assert expected != v1.ranking(v1.target_vector("u0"))[:5]
        assert s.metric("coldbridge_bundle_reloads_total", outcome="swapped") == 1
        assert (
            s.metric(
                "coldbridge_bundle_info",
                version="v2",
                strategy="emcdr",
                created_at=_created(s),
                source_domain="game",
                target_domain="video",
            )
            == 1
        )
        assert s.metric("coldbridge_bundle_reload_seconds_count") == 1
        status = s.client.bundle_status()
        assert (status.version, status.reloads, status.last_error) == ("v2", 1, "")


def _created(s: Served) -> str:
    return s.server.engine.bundle.created_at


def test_newest_of_two_versions_wins_and_same_version_is_unchanged(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    version(bundles, "v1", seed=0)
    version(bundles, "v2", seed=1)
    with serving(bundles, tmp_path / "state") as s:
        assert s.client.model_info().bundle_version == "v2"
        reply = s.client.reload_bundle()
        assert (reply.outcome, reply.new_version) == (UNCHANGED, "v2")
        version(bundles, "v3", seed=2)
        assert s.client.reload_bundle().new_version == "v3"
        # an explicit path may go back to an older version
        back = s.client.reload_bundle(str(bundles / "v1"))
        assert (back.old_version, back.new_version) == ("v3", "v1")
        assert s.client.model_info().bundle_version == "v1"
        assert s.metric("coldbridge_bundle_reloads_total", outcome="unchanged") == 1


def _tampered(root: Path) -> tuple[Path, str]:
    bundle = version(root, "bad", seed=1).path
    data = bytearray((bundle / "target_item_bias.npy").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "target_item_bias.npy").write_bytes(bytes(data))
    return bundle, "sha256"


def _corrupt_onnx(root: Path) -> tuple[Path, str]:
    bundle = version(root, "bad", seed=1).path
    (bundle / "bridge.onnx").write_bytes(b"not an onnx model")
    rehash(bundle, "bridge.onnx")
    return bundle, "bridge"


def _wrong_dims(root: Path) -> tuple[Path, str]:
    bundle = version(root, "bad", seed=1).path  # d = 8, with the bridge of a d = 4 bundle
    narrow = write_version(root / "narrow", "d4", make_tiny_arrays(seed=1, d=4)).path
    (bundle / "bridge.onnx").write_bytes((narrow / "bridge.onnx").read_bytes())
    rehash(bundle, "bridge.onnx")
    return bundle, "invalid dimensions"


def _unknown_strategy(root: Path) -> tuple[Path, str]:
    bundle = version(root, "bad", seed=1).path
    edit_manifest(bundle, strategy="no-such-strategy")
    return bundle, "no-such-strategy"


@pytest.mark.parametrize(
    "make",
    [_tampered, _corrupt_onnx, _wrong_dims, _unknown_strategy],
    ids=["tampered-hash", "corrupt-onnx", "wrong-dims", "unknown-strategy"],
)
def test_bad_bundle_is_refused_and_the_old_keeps_serving(tmp_path: Path, make: object) -> None:
    bundles = tmp_path / "bundles"
    v1 = version(bundles, "v1", seed=0)
    with serving(bundles, tmp_path / "state") as s:
        s.client.ingest(_target_events(40))
        before = s.vectors()
        bad, words = make(tmp_path / "bad")  # type: ignore[operator]
        with pytest.raises(ClientError) as caught:
            s.client.reload_bundle(str(bad))
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "refused" in caught.value.details() and words in caught.value.details()
        assert s.client.model_info().bundle_version == "v1"
        answer = s.client.recommend("u0", k=5)
        assert answer.model_version == "v1"
        assert [i.item_id for i in answer.items] == v1.ranking(v1.target_vector("u0"))[:5]
        assert s.metric("coldbridge_bundle_reloads_total", outcome="refused") == 1
        assert words in s.client.bundle_status().last_error
        after = s.vectors()  # the online states were not touched
        assert before.keys() == after.keys() and len(before) == 5
        assert all(np.array_equal(before[u], after[u]) for u in before)
        assert s.client.ingest(_target_events(10, prefix="x")).accepted == 10


def test_watch_picks_up_a_new_version(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    version(bundles, "v1", seed=0)
    with serving(bundles, tmp_path / "state", bundle_watch_seconds=0.05) as s:
        assert s.client.bundle_status().watch_seconds == pytest.approx(0.05)
        version(bundles, "v2", seed=1)
        deadline = time.monotonic() + 60
        while s.client.model_info().bundle_version != "v2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.client.model_info().bundle_version == "v2"
        assert s.client.recommend("u0").model_version == "v2"
        # a refused newest version is counted once, not retried at every poll
        bad = version(bundles, "v3", seed=2).path
        (bad / "bridge.onnx").write_bytes(b"garbage")
        while not s.client.bundle_status().last_error and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert s.metric("coldbridge_bundle_reloads_total", outcome="refused") == 1
        assert s.client.model_info().bundle_version == "v2"


def test_a_reload_keeps_requests_responsive_and_restores_the_interpreter() -> None:
    """responsive(): a short GIL switch interval and a frozen heap, both undone afterwards."""
    import gc
    import sys

    from coldbridge_server.reload.reloader import RELOAD_SWITCH_INTERVAL, responsive

    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), responsive():
        assert sys.getswitchinterval() == pytest.approx(RELOAD_SWITCH_INTERVAL)
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a failed reload restores them too")
    assert sys.getswitchinterval() == before
    assert gc.get_freeze_count() == 0


def test_ratings_follow_the_reloaded_bundles_feedback(tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    v1 = version(bundles, "v1", seed=0)  # implicit feedback: ratings are refused
    v2 = write_version(bundles, "v2", {**make_tiny_arrays(1), "feedback": "explicit"})

    def rating(n: int) -> epb.Event:
        kind, target = epb.EVENT_KIND_RATING, epb.DOMAIN_TARGET
        return epb.Event(event_id=f"r{n}", user_id="n", item_id="v1", domain=target, kind=kind)

    with serving(v1.path, tmp_path / "state") as s:
        assert s.client.ingest([rating(0)]).accepted == 0
        s.client.reload_bundle(str(v2.path))
        assert s.client.ingest([rating(1)]).accepted == 1
        assert s.client.user_state("n").bundle_version == "v2"
