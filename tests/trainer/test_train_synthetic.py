"""End-to-end training on synthetic data: transfer beats popularity, runs are reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, load_dataset
from coldbridge_trainer.synth import SynthConfig, write_dataset
from coldbridge_trainer.train import TrainResult, fit

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
