"""The bundle writer: manifest contents, checksums, atomicity, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from coldbridge_trainer.export import sha256_file, write_bundle


def _arrays(rng: np.random.Generator, d: int = 4) -> dict:
    return dict(
        source_domain="toys",
        target_domain="games",
        feedback="implicit",
        source_item_ids=[f"s{i}" for i in range(6)],
        target_item_ids=[f"t{i}" for i in range(5)],
        source_user_ids=["alice", "bob", "carol"],
        target_user_ids=["alice"],
        source_item_emb=rng.normal(size=(6, d)),
        encoder_weight=rng.normal(size=(d, d)),
        encoder_bias=rng.normal(size=d),
        source_user_emb=rng.normal(size=(3, d)),
        bridge_layers=[(rng.normal(size=(d, 8)), rng.normal(size=8)), (rng.normal(size=(8, d)), np.zeros(d))],
        target_item_emb=rng.normal(size=(5, d)),
        target_item_bias=rng.normal(size=5),
        target_user_emb=rng.normal(size=(1, d)),
        target_item_popularity=np.array([3, 1, 0, 7, 2]),
    )


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, **_arrays(np.random.default_rng(0)), metrics={"hr@10": 0.5})
    manifest = json.loads((path / "manifest.json").read_text())
    on_disk = {p.name for p in path.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert sha256_file(path / name) == digest
    assert manifest["bundle_version"] == path.name
    assert manifest["items"]["target"] == ["t0", "t1", "t2", "t3", "t4"]
    assert manifest["users"]["source"] == ["alice", "bob", "carol"]
    assert manifest["domains"] == {"source": "toys", "target": "games"}
    assert manifest["embedding_dim"] == {"source": 4, "target": 4}
    assert manifest["metrics"] == {"hr@10": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary directory left behind"


def test_topk_graph_matches_numpy(tmp_path: Path) -> None:
    kw = _arrays(np.random.default_rng(1))
    path = write_bundle(tmp_path, **kw)
    session = ort.InferenceSession(str(path / "target_topk.onnx"), providers=["CPUExecutionProvider"])
    users = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    scores, indices = session.run(None, {"user_embedding": users, "k": np.array([3], dtype=np.int64)})
    expected = users @ kw["target_item_emb"].astype(np.float32).T + kw["target_item_bias"].astype(np.float32)
    np.testing.assert_array_equal(indices, np.argsort(-expected, axis=1)[:, :3])
    np.testing.assert_allclose(scores, np.sort(expected, axis=1)[:, ::-1][:, :3], atol=1e-5)


def test_versions_are_unique_and_never_overwritten(tmp_path: Path) -> None:
    kw = _arrays(np.random.default_rng(0))
    first = write_bundle(tmp_path, **kw)
    second = write_bundle(tmp_path, **kw)
    assert first != second
    with pytest.raises(FileExistsError):
        write_bundle(tmp_path, **kw, version=first.name)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("target_item_ids", ["t0", "t0", "t1", "t2", "t3"], "not unique"),
        ("source_user_ids", ["alice", "bob"], "source_user_ids"),
        ("target_item_popularity", np.ones(4), "popularity"),
        ("feedback", "clicks", "feedback"),
        ("target_user_emb", np.full((1, 4), np.nan), "non-finite"),
    ],
)
def test_inconsistent_inputs_are_refused(tmp_path: Path, field: str, value: object, message: str) -> None:
    kw = _arrays(np.random.default_rng(0))
    kw[field] = value
    with pytest.raises(ValueError, match=message):
        write_bundle(tmp_path, **kw)
    assert list(tmp_path.iterdir()) == []
