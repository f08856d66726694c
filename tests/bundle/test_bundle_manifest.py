"""The bundle writer: manifest contents, checksums, atomicity, and refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from coldbridge_bundle import BundleContent, Sides, file_sha256, open_session, write
from coldbridge_trainer.export import BaseWeights


def _weights(rng: np.random.Generator, d: int = 4) -> BaseWeights:
    return BaseWeights(
        source_item_emb=rng.normal(size=(6, d)),
        encoder_weight=rng.normal(size=(d, d)),
        encoder_bias=rng.normal(size=d),
        source_user_emb=rng.normal(size=(3, d)),
        bridge_layers=[
            (rng.normal(size=(d, 8)), rng.normal(size=8)),
            (rng.normal(size=(8, d)), np.zeros(d)),
        ],
        target_item_emb=rng.normal(size=(5, d)),
        target_item_bias=rng.normal(size=5),
        target_user_emb=rng.normal(size=(1, d)),
        target_item_popularity=np.array([3, 1, 0, 7, 2]),
    )


def _content(weights: BaseWeights, **fields: Any) -> BundleContent:
    return BundleContent(
        domains=Sides("toys", "games"),
        feedback="implicit",
        items=Sides([f"s{i}" for i in range(6)], [f"t{i}" for i in range(5)]),
        users=Sides(["alice", "bob", "carol"], ["alice"]),
        models=weights.models(),
        arrays=weights.arrays(),
        **fields,
    )


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    content = _content(_weights(np.random.default_rng(0)), metrics={"hr@10": 0.5})
    path = write(tmp_path, content)
    manifest = json.loads((path / "manifest.json").read_text())
    on_disk = {p.name for p in path.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert file_sha256(path / name) == digest
    assert manifest["format"] == "coldbridge-bundle" and manifest["format_version"] == 1
    assert manifest["bundle_version"] == path.name
    assert manifest["items"]["target"] == ["t0", "t1", "t2", "t3", "t4"]
    assert manifest["users"]["source"] == ["alice", "bob", "carol"]
    assert manifest["domains"] == {"source": "toys", "target": "games"}
    assert manifest["embedding_dim"] == {"source": 4, "target": 4}
    assert manifest["metrics"] == {"hr@10": 0.5}
    assert "strategies" not in manifest and "source_histories" not in manifest
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary directory left behind"


def test_topk_graph_matches_numpy(tmp_path: Path) -> None:
    weights = _weights(np.random.default_rng(1))
    path = write(tmp_path, _content(weights))
    session = open_session(path / "target_topk.onnx")
    users = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    scores, indices = session.run(None, {"user_embedding": users, "k": np.array([3], np.int64)})
    expected = users @ weights.target_item_emb.astype(
        np.float32
    ).T + weights.target_item_bias.astype(np.float32)
    np.testing.assert_array_equal(indices, np.argsort(-expected, axis=1)[:, :3])
    np.testing.assert_allclose(scores, np.sort(expected, axis=1)[:, ::-1][:, :3], atol=1e-5)


def test_versions_are_unique_and_never_overwritten(tmp_path: Path) -> None:
    content = _content(_weights(np.random.default_rng(0)))
    first = write(tmp_path, content)
    second = write(tmp_path, content)
    assert first != second
    with pytest.raises(FileExistsError):
        write(tmp_path, content, version=first.name)


def _with_array(content: BundleContent, key: str, value: np.ndarray) -> BundleContent:
    return replace(content, arrays={**content.arrays, key: value})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: replace(c, items=Sides(c.items.source, ["t0", "t0", "t1", "t2", "t3"])),
            "items.target: ids are not unique",
        ),
        (lambda c: replace(c, users=Sides(["alice", "bob"], c.users.target)), "users.source"),
        (lambda c: _with_array(c, "target_item_popularity", np.ones(4)), "target_item_popularity"),
        (lambda c: replace(c, feedback="clicks"), "feedback"),
        (lambda c: _with_array(c, "target_user_embeddings", np.full((1, 4), np.nan)), "non-finite"),
        (lambda c: replace(c, source_histories=[np.zeros(1, np.int64)]), "source_histories"),
        (lambda c: replace(c, models={}), "models"),
    ],
    ids=["duplicate-ids", "ids-vs-rows", "popularity", "feedback", "nan", "histories", "models"],
)
def test_inconsistent_content_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    content = change(_content(_weights(np.random.default_rng(0))))
    with pytest.raises(ValueError, match=message):
        write(tmp_path, content)
    assert list(tmp_path.iterdir()) == []


def test_bridge_that_disagrees_with_the_dims_is_refused() -> None:
    weights = _weights(np.random.default_rng(0))
    bad = replace(weights, bridge_layers=[(np.ones((4, 3)), np.zeros(3))])
    with pytest.raises(ValueError, match="target dims disagree"):
        bad.models()
