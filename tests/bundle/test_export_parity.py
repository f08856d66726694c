"""The exported ONNX graphs reproduce the torch modules (onnxruntime vs torch, 1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from coldbridge_plugins import pad_histories
from coldbridge_trainer.commands import bundle_scorer
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import load_dataset
from coldbridge_trainer.synth import SynthConfig, write_dataset
from coldbridge_trainer.train import TrainResult, export_result, fit

TOL = 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    root = tmp_path_factory.mktemp("parity")
    cfg = SynthConfig(
        n_overlap=150,
        n_source_only=30,
        n_target_only=30,
        n_cold=40,
        n_source_items=90,
        n_target_items=80,
        seed=5,
    )
    ds = load_dataset(write_dataset(root / "data", cfg))
    result = fit(
        ds, TrainConfig(dim=16, epochs=2, bridge_epochs=2, bridge_hidden=(24, 20), progress=False)
    )
    return result, export_result(result, root / "bundles", version="v1")


def _session(bundle: Path, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(bundle / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def test_manifest(trained: tuple[TrainResult, Path]) -> None:
    result, bundle = trained
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["users"]["source"] == result.dataset.source.user_ids
    assert manifest["items"]["target"] == result.dataset.target.item_ids
    assert manifest["config"]["bridge_hidden"] == [24, 20]
    assert "test" in manifest["metrics"]
    pop = np.load(bundle / "target_item_popularity.npy")
    np.testing.assert_array_equal(pop, result.dataset.target.popularity())


def test_source_encoder(trained: tuple[TrainResult, Path]) -> None:
    result, bundle = trained
    enc, _, _ = result.modules()
    hist = result.dataset.source.user_histories()[:12] + [np.zeros(0, np.int64)]
    idx, mask = pad_histories(hist, 256)
    (onnx_out,) = _session(bundle, "source_encoder").run(None, {"item_indices": idx, "mask": mask})
    with torch.no_grad():
        ref = enc(torch.from_numpy(idx), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(onnx_out, ref, atol=TOL, rtol=TOL)
    stored = np.load(bundle / "source_user_embeddings.npy")[:12]  # bridge_input="encoder"
    np.testing.assert_allclose(onnx_out[:12], stored, atol=TOL, rtol=TOL)


def test_bridge(trained: tuple[TrainResult, Path]) -> None:
    result, bundle = trained
    x = np.random.default_rng(0).normal(size=(9, 16)).astype(np.float32)
    (onnx_out,) = _session(bundle, "bridge").run(None, {"source_embedding": x})
    np.testing.assert_allclose(onnx_out, result.transfer(x), atol=TOL, rtol=TOL)


def test_target_topk_and_candidates(trained: tuple[TrainResult, Path]) -> None:
    result, bundle = trained
    _, _, scorer = result.modules()
    u = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    scores, idx = _session(bundle, "target_topk").run(
        None, {"user_embedding": u, "k": np.array([7])}
    )
    ref_scores, ref_idx = scorer.topk(torch.from_numpy(u), 7)
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=TOL, rtol=TOL)
    cand = np.random.default_rng(2).integers(0, result.dataset.target.n_items, size=(5, 11))
    (c_scores,) = _session(bundle, "target_candidates").run(
        None, {"user_embedding": u, "item_indices": cand}
    )
    ref = scorer.candidates(torch.from_numpy(u), torch.from_numpy(cand)).numpy()
    np.testing.assert_allclose(c_scores, ref, atol=TOL, rtol=TOL)
    np.testing.assert_allclose(ref, result.target_scores(u)[np.arange(5)[:, None], cand], atol=TOL)


def test_bundle_scorer_matches_training_scorer(trained: tuple[TrainResult, Path]) -> None:
    result, bundle = trained
    users = result.dataset.cold_users()[:10]
    np.testing.assert_allclose(
        bundle_scorer(bundle, result.dataset)(users), result.scorer()(users), atol=TOL, rtol=TOL
    )
