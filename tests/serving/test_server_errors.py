"""Error paths: request validation -> INVALID_ARGUMENT, bad bundles and settings at start-up."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge.v1 import recommender_pb2_grpc
from coldbridge_server import (
    BundleError,
    ConfigError,
    ModelLoadError,
    Settings,
    create_server,
    load_bundle,
)
from coldbridge_server.serving.score import OnnxScorer
from conftest import TinyBundle
from grpc_health.v1 import health_pb2, health_pb2_grpc

MAX_K, MAX_IDS = 20, 5


@pytest.fixture(scope="module")
def stub(tiny_bundle: TinyBundle) -> Iterator[recommender_pb2_grpc.RecommenderStub]:
    settings = Settings(host="127.0.0.1", port=0, max_k=MAX_K, max_request_ids=MAX_IDS)
    server, port = create_server(settings, bundle=load_bundle(tiny_bundle.path))
    server.start()
    assert server.wait_until_ready(timeout=30)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield recommender_pb2_grpc.RecommenderStub(channel)
    server.stop(None).wait()


TOO_MANY = [f"g{i}" for i in range(MAX_IDS + 1)]
BAD_REQUESTS = {
    "recommend-empty-user": ("Recommend", pb.RecommendRequest(user_id="", k=1), "user_id"),
    "k-zero": ("Recommend", pb.RecommendRequest(user_id="u0", k=0), "k"),
    "k-negative": ("Recommend", pb.RecommendRequest(user_id="u0", k=-3), "k"),
    "k-over-max": ("Recommend", pb.RecommendRequest(user_id="u0", k=MAX_K + 1), "max_k"),
    "too-many-excludes": (
        "Recommend",
        pb.RecommendRequest(user_id="u0", k=1, exclude_item_ids=TOO_MANY),
        "exclude_item_ids",
    ),
    "recommend-too-many-source": (
        "Recommend",
        pb.RecommendRequest(user_id="x", k=1, source_item_ids=TOO_MANY),
        "source_item_ids",
    ),
    "score-empty-user": ("Score", pb.ScoreRequest(user_id="", item_ids=["v1"]), "user_id"),
    "too-many-score-ids": ("Score", pb.ScoreRequest(user_id="u0", item_ids=TOO_MANY), "item_ids"),
    "score-too-many-source": (
        "Score",
        pb.ScoreRequest(user_id="x", item_ids=["v1"], source_item_ids=TOO_MANY),
        "source_item_ids",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_invalid_requests_name_the_field(
    stub: recommender_pb2_grpc.RecommenderStub, case: tuple
) -> None:
    method, request, field = case
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, method)(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


def test_limits_are_inclusive(stub: recommender_pb2_grpc.RecommenderStub) -> None:
    at_limit = TOO_MANY[:MAX_IDS]
    reply = stub.Recommend(
        pb.RecommendRequest(
            user_id="x", k=MAX_K, exclude_item_ids=at_limit, source_item_ids=at_limit
        )
    )
    assert len(reply.items) == MAX_K
    scored = stub.Score(pb.ScoreRequest(user_id="u0", item_ids=["v1"] * MAX_IDS))
    assert len(scored.items) == MAX_IDS


def test_unknown_ids_are_ignored_and_reported(stub: recommender_pb2_grpc.RecommenderStub) -> None:
    base = stub.Recommend(pb.RecommendRequest(user_id="u0", k=3))
    reply = stub.Recommend(
        pb.RecommendRequest(
            user_id="u0", k=3, exclude_item_ids=["nope", "nada"], source_item_ids=["zip", "nope"]
        )
    )
    assert reply.items == base.items
    assert list(reply.unknown_item_ids) == ["nope", "nada", "zip"]
    scored = stub.Score(pb.ScoreRequest(user_id="u0", item_ids=["nope", "v3"]))
    assert [i.item_id for i in scored.items] == ["v3"]
    assert list(scored.unknown_item_ids) == ["nope"]


def test_default_limits() -> None:
    assert (Settings().max_k, Settings().max_request_ids) == (1000, 1000)


# ---------------------------------------------------------------- corrupt bundles


def _rewrite_manifest(path: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _replace_file(path: Path, name: str, write: Callable[[Path], None]) -> None:
    """Replace a file *and* fix its sha256, so only the deeper check can catch it."""
    write(path / name)
    digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
    _rewrite_manifest(path, lambda m: m["files"].__setitem__(name, digest))


def _append_byte(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"\0")


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "manifest-missing": (lambda p: (p / "manifest.json").unlink(), "manifest.json", "missing"),
    "manifest-not-json": (
        lambda p: (p / "manifest.json").write_text("{not json"),
        "manifest.json",
        "unreadable",
    ),
    "wrong-format": (
        lambda p: _rewrite_manifest(p, lambda m: m.__setitem__("format", "zip")),
        "manifest.json",
        "'format'",
    ),
    "future-format-version": (
        lambda p: _rewrite_manifest(p, lambda m: m.__setitem__("format_version", 2)),
        "manifest.json",
        "format_version",
    ),
    "missing-field": (
        lambda p: _rewrite_manifest(p, lambda m: m["users"].pop("target")),
        "manifest.json",
        "users.target",
    ),
    "bad-dim": (
        lambda p: _rewrite_manifest(p, lambda m: m["embedding_dim"].__setitem__("target", "8")),
        "manifest.json",
        "embedding_dim.target",
    ),
    "model-not-listed": (
        lambda p: _rewrite_manifest(p, lambda m: m["files"].pop("bridge.onnx")),
        "manifest.json",
        "bridge.onnx",
    ),
    "missing-file": (lambda p: (p / "bridge.onnx").unlink(), "bridge.onnx", "missing"),
    "sha-mismatch": (
        lambda p: _append_byte(p / "target_user_embeddings.npy"),
        "target_user_embeddings.npy",
        "sha256",
    ),
    "wrong-array-shape": (
        lambda p: _replace_file(
            p, "source_user_embeddings.npy", lambda f: np.save(f, np.zeros((5, 8), np.float32))
        ),
        "source_user_embeddings.npy",
        "shape",
    ),
    "ids-disagree-with-array": (
        lambda p: _rewrite_manifest(p, lambda m: m["users"]["target"].append("extra")),
        "target_user_embeddings.npy",
        "shape",
    ),
    "nan-in-array": (
        lambda p: _replace_file(
            p, "target_item_popularity.npy", lambda f: np.save(f, np.full(50, np.nan, np.float32))
        ),
        "target_item_popularity.npy",
        "NaN",
    ),
    "not-an-array": (
        lambda p: _replace_file(
            p, "target_item_popularity.npy", lambda f: f.write_bytes(b"garbage")
        ),
        "target_item_popularity.npy",
        ".npy",
    ),
}


@pytest.mark.parametrize("case", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_bundle_fails_at_startup_naming_the_file(
    tiny_bundle: TinyBundle, tmp_path: Path, case: tuple
) -> None:
    corrupt, filename, words = case
    bundle = shutil.copytree(tiny_bundle.path, tmp_path / tiny_bundle.version)
    corrupt(bundle)
    with pytest.raises(BundleError) as err:
        create_server(Settings(host="127.0.0.1", port=0, bundle_path=str(bundle)))
    assert filename in str(err.value) and words in str(err.value)
    assert err.value.path.name == filename
    assert isinstance(err.value, ModelLoadError)


def test_broken_onnx_model_fails_at_startup(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_bundle.path, tmp_path / tiny_bundle.version)
    _replace_file(bundle, "target_topk.onnx", lambda f: f.write_bytes(b"not onnx"))
    with pytest.raises(ModelLoadError, match="target_topk.onnx"):
        create_server(Settings(host="127.0.0.1", port=0, bundle_path=str(bundle)))


def test_swapped_onnx_model_fails_at_startup(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_bundle.path, tmp_path / tiny_bundle.version)
    _replace_file(
        bundle,
        "bridge.onnx",
        lambda f: f.write_bytes((bundle / "target_candidates.onnx").read_bytes()),
    )
    with pytest.raises(ModelLoadError, match=r"bridge\.onnx.*source_embedding"):
        create_server(Settings(host="127.0.0.1", port=0, bundle_path=str(bundle)))


def test_failed_warmup_stays_not_serving(
    tiny_bundle: TinyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: OnnxScorer) -> None:
        raise ModelLoadError("boom")

    monkeypatch.setattr(OnnxScorer, "warmup", broken)
    server, port = create_server(
        Settings(host="127.0.0.1", port=0), bundle=load_bundle(tiny_bundle.path)
    )
    server.start()
    try:
        with pytest.raises(ModelLoadError, match="boom"):
            server.wait_until_ready(timeout=30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop(None).wait()


def test_directory_without_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="manifest.json: missing"):
        create_server(Settings(host="127.0.0.1", port=0, bundle_path=str(tmp_path)))
    with pytest.raises(BundleError, match="does not exist"):
        create_server(Settings(host="127.0.0.1", port=0, bundle_path=str(tmp_path / "nope")))


# ---------------------------------------------------------------- settings


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDBRIDGE_PORT", "6000")
    monkeypatch.setenv("COLDBRIDGE_GRACE_SECONDS", "0.5")
    monkeypatch.setenv("COLDBRIDGE_BUNDLE_PATH", "/srv/bundles")
    settings = Settings.from_env()
    assert settings.bundle_path == "/srv/bundles"
    assert (settings.port, settings.grace_seconds) == (6000, 0.5)
    assert settings.max_k == 1000


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"COLDBRIDGE_PORT": "http"}, "COLDBRIDGE_PORT"),
        ({"COLDBRIDGE_MAX_K": "0"}, "max_k"),
        ({"COLDBRIDGE_PORT": "70000"}, "port"),
    ],
)
def test_bad_settings_raise_config_error(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.setting == name


def test_every_setting_has_help() -> None:
    for name, env_name, _default, help_text in Settings.describe():
        assert env_name == "COLDBRIDGE_" + name.upper() and len(help_text) > 10


def test_missing_bundle_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bundle_path"):
        create_server(Settings(host="127.0.0.1", port=0))
