"""End-to-end training on synthetic data: transfer beats popularity, runs are reproducible."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import coldbridge_bundle
import numpy as np
import pytest
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, load_dataset
from coldbridge_trainer.history import HISTORY_EVENTS, HISTORY_GRID
from coldbridge_trainer.synth import SynthConfig, write_dataset
from coldbridge_trainer.train import TrainResult, export_result, fit

SYNTH = SynthConfig(
    n_overlap=500,
    n_source_only=100,
    n_target_only=100,
    n_cold=150,
    n_source_items=200,
    n_target_items=200,
    seed=1,
)
FAST = TrainConfig(epochs=6, bridge_epochs=15, patience=4, progress=False, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> CrossDomainDataset:
    return load_dataset(write_dataset(tmp_path_factory.mktemp("syn"), SYNTH))


@pytest.fixture(scope="module")
def result(dataset: CrossDomainDataset) -> TrainResult:
    return fit(dataset, FAST)


def _test(result: TrainResult, scorer: str, proto: str = "sampled") -> dict[str, float]:
    return result.metrics["test"]["scorers"][scorer][proto]["line"]


def test_bridge_beats_popularity(result: TrainResult) -> None:
    for proto in ("sampled", "full"):
        model, pop = _test(result, "bridge", proto), _test(result, "popularity", proto)
        assert model["HR@10"] > pop["HR@10"] * 1.2, (proto, model, pop)
        assert model["MRR"] > pop["MRR"] * 1.2, (proto, model, pop)
    assert _test(result, "random")["HR@10"] < _test(result, "popularity")["HR@10"]


def test_metrics_structure(result: TrainResult) -> None:
    m = result.metrics
    assert 1 <= m["best_epoch"] <= FAST.bridge_epochs and m["history"]
    assert set(m["test"]["scorers"]) == {
        "bridge",
        "bridge+encoder",
        "popularity",
        "cooccurrence",
        "random",
    }
    assert len(m["test"]["candidates_sha256"]) == 64


def test_same_seed_same_metrics(dataset: CrossDomainDataset, result: TrainResult) -> None:
    again = fit(dataset, FAST)
    assert again.metrics["test"]["scorers"] == result.metrics["test"]["scorers"]
    assert again.metrics["history"] == result.metrics["history"]


def test_explicit_feedback_trains(tmp_path: Path) -> None:
    cfg = SynthConfig(**{**SYNTH.__dict__, "feedback": "explicit", "n_overlap": 200})
    ds = load_dataset(write_dataset(tmp_path / "e", cfg))
    res = fit(ds, TrainConfig(epochs=3, bridge_epochs=3, progress=False))
    assert res.metrics["test"]["scorers"]["bridge"]["sampled"]["line"]["HR@10"] > 0


def test_bad_bridge_input(dataset: CrossDomainDataset) -> None:
    with pytest.raises(ValueError, match="bridge_input"):
        fit(dataset, TrainConfig(bridge_input="nope", progress=False))


def test_bundle_carries_the_valid_fitted_history_part(result: TrainResult, tmp_path: Path) -> None:
    path = export_result(result, tmp_path, version="v1")
    section = json.loads((path / coldbridge_bundle.MANIFEST).read_text())["history"]
    assert section["events"] == list(HISTORY_EVENTS)
    assert all(a in HISTORY_GRID for a in section["history_weight"])
    config = section["config"]
    assert (config["lambda"], config["k"], config["strategy"]) == (200.0, 64, "emcdr")
    buckets = config["buckets"]
    assert [b["events"] for b in buckets] == list(HISTORY_EVENTS)
    assert [b["history_weight"] for b in buckets] == section["history_weight"]
    first = buckets[0]
    assert first["users"] > 0 and first["lines"] > first["users"]
    # the synthetic target domain has item-to-item structure: one event already helps
    assert first["history_weight"] > 0 and first["mrr"] > first["mrr_transferred"]
    model = coldbridge_bundle.read(path).history
    assert model is not None and model.n_items == result.dataset.target.n_items
    assert model.history_weight == tuple(section["history_weight"])
    metrics = json.loads((path / coldbridge_bundle.MANIFEST).read_text())["metrics"]
    assert metrics["history_blend"] == buckets
    assert metrics["history"] == result.metrics["history"], "the bridge's epochs stay"


def test_same_seed_same_history_part(dataset: CrossDomainDataset, result: TrainResult) -> None:
    again = fit(dataset, FAST).history_part()
    first = result.history_part()
    assert again is not None and first is not None
    assert again.model.history_weight == first.model.history_weight
    assert again.config["buckets"] == first.config["buckets"]
    np.testing.assert_array_equal(again.model.weights, first.model.weights)


def test_history_part_can_be_switched_off(result: TrainResult) -> None:
    off = replace(result, config=replace(FAST, history=False), history=None)
    content = off.bundle_content()
    assert content.history is None and "history_blend" not in content.metrics
