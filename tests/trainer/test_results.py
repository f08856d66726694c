"""Typed evaluation results: the old dict layout, JSON round trips, re-rendered reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from coldbridge_trainer.data import CrossDomainDataset, load_dataset
from coldbridge_trainer.evaluate import (
    EvalSplit,
    cooccurrence_scorer,
    evaluate_scorers,
    line_metrics,
    make_split,
    popularity_scorer,
    random_scorer,
)
from coldbridge_trainer.report import write_summaries
from coldbridge_trainer.results import (
    Metrics,
    ScorerResult,
    SplitResult,
    StrategyResult,
    TrainMetrics,
)
from coldbridge_trainer.summary import DirectionSummary
from coldbridge_trainer.synth import SynthConfig, write_dataset

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
COMMITTED = sorted(RESULTS.glob("*/results.json"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> CrossDomainDataset:
    cfg = SynthConfig(
        n_overlap=60,
        n_source_only=10,
        n_target_only=10,
        n_cold=20,
        n_source_items=50,
        n_target_items=40,
        seed=5,
    )
    return load_dataset(write_dataset(tmp_path_factory.mktemp("syn"), cfg))


@pytest.fixture(scope="module")
def split(dataset: CrossDomainDataset) -> EvalSplit:
    return make_split(dataset, dataset.test, n_negatives=20, seed=1)


@pytest.fixture(scope="module")
def result(dataset: CrossDomainDataset, split: EvalSplit) -> SplitResult:
    scorers = {
        "popularity": popularity_scorer(dataset),
        "random": random_scorer(dataset),
        "cooccurrence": cooccurrence_scorer(dataset),
    }
    return evaluate_scorers(scorers, split)


def _legacy_scorer(scores: np.ndarray, ev: EvalSplit) -> dict:
    """The dict ``score_split`` returned before the typed results (copied arithmetic)."""
    out = {}
    n = len(ev.users)
    counts = np.bincount(ev.line_user, minlength=n)
    seen = counts > 0
    for p in ("sampled", "full"):
        per_line = line_metrics(scores, ev, p)
        user = {
            k: float(np.mean(np.bincount(ev.line_user, v, n)[seen] / counts[seen]))
            for k, v in per_line.items()
        }
        out[p] = {"line": {k: float(v.mean()) for k, v in per_line.items()}, "user": user}
    return out


def test_to_dict_is_the_legacy_layout(
    dataset: CrossDomainDataset, split: EvalSplit, result: SplitResult
) -> None:
    legacy = {
        "n_lines": len(split.positives),
        "n_users": len(split.users),
        "n_candidates": split.candidates.shape[1],
        "candidates_sha256": split.digest,
        "scorers": {
            name: _legacy_scorer(fn(split.users), split)
            for name, fn in (
                ("popularity", popularity_scorer(dataset)),
                ("random", random_scorer(dataset)),
                ("cooccurrence", cooccurrence_scorer(dataset)),
            )
        },
    }
    # same keys, same order, same floats to the last bit
    assert json.dumps(result.to_dict()) == json.dumps(legacy)
    assert list(result.scorers["random"].sampled.line) == [
        "HR@1",
        "HR@5",
        "HR@10",
        "NDCG@5",
        "NDCG@10",
        "MRR",
    ]


def test_typed_access_and_old_subscripts_agree(result: SplitResult) -> None:
    pop = result.scorers["popularity"]
    assert isinstance(pop, ScorerResult) and isinstance(pop.full.user, Metrics)
    assert result["scorers"]["popularity"]["full"]["user"]["HR@10"] == pop.full.user.hr(10)
    assert pop.sampled.line.mrr == pop["sampled"]["line"]["MRR"]
    assert pop.sampled.line.ndcg(5) == pop.sampled.line["NDCG@5"]
    assert result["n_lines"] == result.n_lines and set(result) >= {"scorers", "n_users"}
    with pytest.raises(KeyError):
        pop.sampled.line.hr(3)


def _train_metrics(result: SplitResult, strategies: bool) -> TrainMetrics:
    m = TrainMetrics(
        result,
        result,
        best_epoch=2,
        history=[{"epoch": 1, "valid_MRR": 0.5}],
        n_overlap_users=60,
        seconds={"mf": 0.1, "total": 0.2},
    )
    return m.with_strategies({"emcdr": StrategyResult(result, result, 1.5)}) if strategies else m


@pytest.mark.parametrize("strategies", [False, True], ids=["base", "with-strategies"])
def test_train_metrics_json_round_trip(result: SplitResult, strategies: bool) -> None:
    metrics = _train_metrics(result, strategies)
    data = json.loads(json.dumps(metrics.to_dict()))
    assert list(data) == [
        "valid",
        "test",
        "best_epoch",
        "history",
        "n_overlap_users",
        "seconds",
        *(["strategies"] if strategies else []),
    ]
    back = TrainMetrics.from_dict(data)
    assert back == metrics and back.to_dict() == data
    assert SplitResult.from_dict(data["test"]) == result


@pytest.mark.parametrize("path", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_committed_results_json_round_trip(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    summaries = [DirectionSummary.from_dict(d) for d in json.loads(text)]
    assert json.dumps([s.to_dict() for s in summaries], indent=1) == text
    best = summaries[0].scorers[str(summaries[0].best)]
    assert best.cell("sampled", "line", "MRR").ci95 is not None
    assert isinstance(best.difference("full", "user", "HR@10").real, bool)


def test_saved_results_re_render_the_committed_report(tmp_path: Path) -> None:
    folder = RESULTS / "evaluation_fusion_balanced"
    data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    summaries = [DirectionSummary.from_dict(d) for d in data]
    path = write_summaries(summaries, tmp_path, command="x", config={}, n_boot=data[0]["n_boot"])
    body = path.read_text(encoding="utf-8").split("## Summary", 1)[1]
    assert body == (folder / "report.md").read_text(encoding="utf-8").split("## Summary", 1)[1]
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8")) == data
