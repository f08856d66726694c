"""Evaluation harness: train strategies over several seeds, select on valid, score test once.

:func:`run_direction` trains, for every seed, the base pipeline
(:func:`~coldbridge_trainer.train.fit`) and the requested strategies
(:func:`~coldbridge_trainer.strategies.fit_strategies`), and keeps the **per-line** metrics
of every scorer (random, popularity, co-occurrence and each strategy, through its server
half) on the valid and the test cold users, under both protocols.

Leakage rules (checked by ``tests/trainer/test_no_leakage.py``):

* training reads only ``source.train`` and ``target.train``;
* model selection (bridge early stopping, every strategy's valid-fitted choices, the choice of
  the best strategy) reads only the *selection split*: the valid cold users prepared with
  ``make_split(..., exclude="split")``, whose candidate lists do not depend on ``test`` at all;
* ``test`` is scored once per trained model, and :func:`select_best` never sees those numbers.

Used by ``coldbridge evaluate report ...`` (:mod:`coldbridge_trainer.report` writes the
Markdown report) and by ``benchmarks/strategies.py``.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset
from coldbridge_trainer.evaluate import (
    EvalSplit,
    Scorer,
    cooccurrence_scorer,
    line_metrics,
    make_split,
    popularity_scorer,
    random_scorer,
)
from coldbridge_trainer.results import Metrics, ProtocolMetrics, ScorerResult

__all__ = [
    "BASELINES",
    "DirectionRun",
    "PROTOCOLS",
    "profile_training",
    "run_direction",
    "select_best",
    "selection_split",
    "test_split",
]

BASELINES = ("random", "popularity", "cooccurrence")
"""Reference scorers reported in every run (training-free; identical across seeds)."""

PROTOCOLS = ("sampled", "full")

PerLine = dict[str, dict[str, np.ndarray]]
"""``{protocol: {metric: float64 [n_lines]}}`` of one scorer on one split."""


def selection_split(dataset: CrossDomainDataset, config: TrainConfig) -> EvalSplit:
    """The valid cold users for model selection: negatives never depend on ``test``."""
    return make_split(
        dataset, dataset.valid, config.eval_negatives, config.eval_seed, exclude="split"
    )


def test_split(dataset: CrossDomainDataset, config: TrainConfig) -> EvalSplit:
    """The test cold users, protocol of the data's README (valid + test items excluded)."""
    return make_split(dataset, dataset.test, config.eval_negatives, config.eval_seed)


test_split.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _per_line(scorer: Scorer, ev: EvalSplit, ks: Sequence[int]) -> PerLine:
    scores = scorer(ev.users)
    return {p: line_metrics(scores, ev, p, ks) for p in PROTOCOLS}


@dataclass
class DirectionRun:
    """Everything measured on one source -> target direction.

    Attributes
    ----------
    valid, test : dict
        ``{scorer: [PerLine per seed]}`` (baselines: one entry, they do not depend on the seed).
    seconds : dict
        ``{seed: {"base": s, strategy: s}}`` fit wall-clock seconds.
    configs : dict
        ``{seed: {strategy: manifest config}}`` (what each strategy chose on valid).
    """

    source: str
    target: str
    seeds: list[int]
    strategies: list[str]
    valid_split: EvalSplit
    test_split: EvalSplit
    valid: dict[str, list[PerLine]] = field(default_factory=dict)
    test: dict[str, list[PerLine]] = field(default_factory=dict)
    seconds: dict[int, dict[str, float]] = field(default_factory=dict)
    configs: dict[int, dict[str, Any]] = field(default_factory=dict)
    best: str | None = None
    profile: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.target}"

    def averages(self, split: str = "test") -> dict[str, ScorerResult]:
        """Seed-mean metrics of every scorer on ``split`` (``{scorer: ScorerResult}``)."""
        ev = self.test_split if split == "test" else self.valid_split
        return {name: _seed_mean_result(runs, ev) for name, runs in getattr(self, split).items()}


def _seed_mean_result(runs: list[PerLine], ev: EvalSplit) -> ScorerResult:
    out = {}
    for p in PROTOCOLS:
        line, user = {}, {}
        for m in runs[0][p]:
            values = np.mean([r[p][m] for r in runs], axis=0)
            line[m], user[m] = float(values.mean()), _user_mean(values, ev)
        out[p] = ProtocolMetrics(Metrics(line), Metrics(user))
    return ScorerResult(out)


def _user_mean(values: np.ndarray, ev: EvalSplit) -> float:
    n = len(ev.users)
    counts = np.bincount(ev.line_user, minlength=n)
    seen = counts > 0
    return float(np.mean(np.bincount(ev.line_user, values, n)[seen] / counts[seen]))


def run_direction(
    dataset: CrossDomainDataset,
    names: Sequence[str],
    seeds: Sequence[int],
    config: TrainConfig,
    *,
    registry: Mapping[str, Any] | None = None,
    step: Callable[[str], None] | None = None,
) -> DirectionRun:
    """Train ``names`` for every seed on ``dataset``; per-line valid/test metrics of all scorers.

    ``step(label)`` is called after each unit of work (progress bars): the baselines, each
    seed's base pipeline and each fitted strategy.
    """
    from coldbridge_plugins import get_plugin_manager, load_strategies

    from coldbridge_trainer.strategies import fit_strategies, strategy_scorer
    from coldbridge_trainer.train import fit

    registry = registry if registry is not None else load_strategies(get_plugin_manager())
    step = step or (lambda _label: None)
    valid_ev, test_ev = selection_split(dataset, config), test_split(dataset, config)
    run = DirectionRun(
        dataset.source.name, dataset.target.name, list(seeds), list(names), valid_ev, test_ev
    )
    ks = config.ks
    for name, make in (
        ("random", random_scorer),
        ("popularity", popularity_scorer),
        ("cooccurrence", cooccurrence_scorer),
    ):
        scorer = make(dataset)
        run.valid[name] = [_per_line(scorer, valid_ev, ks)]
        run.test[name] = [_per_line(scorer, test_ev, ks)]
    step("baselines")
    for seed in seeds:
        cfg = replace(config, seed=seed, progress=False)
        t0 = time.perf_counter()
        result = fit(dataset, cfg, valid_split=valid_ev)
        run.seconds[seed] = {"base": round(time.perf_counter() - t0, 2)}
        step(f"seed {seed}: base")
        fitted = fit_strategies(
            result,
            valid_ev,
            list(names),
            registry=registry,
            on_fit=partial(_fitted_step, step, seed),
        )
        run.configs[seed] = {n: f.config for n, f in fitted.items()}
        for n, f in fitted.items():
            run.seconds[seed][n] = f.seconds
            run.valid.setdefault(n, []).append(
                _per_line(strategy_scorer(f, result, valid_ev), valid_ev, ks)
            )
            run.test.setdefault(n, []).append(
                _per_line(strategy_scorer(f, result, test_ev), test_ev, ks)
            )
        del result, fitted
    run.best = select_best({n: run.valid[n] for n in names}, config.select_metric)
    return run


def _fitted_step(step: Callable[[str], None], seed: int, name: str) -> None:
    step(f"seed {seed}: {name}")


def select_best(valid: Mapping[str, list[PerLine]], metric: str = "MRR") -> str:
    """The strategy with the highest seed-mean sampled line-averaged ``metric`` on valid.

    Only valid numbers are passed in: the test split cannot influence the choice.
    """
    means = {
        n: float(np.mean([r["sampled"][metric].mean() for r in runs])) for n, runs in valid.items()
    }
    return max(means, key=lambda n: (means[n], n))


def profile_training(
    names: Sequence[str], config: TrainConfig, load: Callable[[], CrossDomainDataset]
) -> dict[str, Any]:
    """Wall time and peak RSS of one full training (base + ``names``) in a fresh process.

    ``load`` must be picklable (e.g. ``functools.partial(load_cdrib, root, "game", "video")``):
    the training runs in a worker started with multiprocessing's ``spawn`` method (the
    standard library passes ``sys.path`` on), so the peak is that of the training alone.
    Returns ``{"seconds", "load_seconds", "peak_rss_mib", "strategies", "seed"}``; the peak
    is the worker's ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (data loading included).
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_profile_worker, list(names), config.to_dict(), load).result()


def _profile_worker(
    names: list[str], config: dict[str, Any], load: Callable[[], CrossDomainDataset]
) -> dict[str, Any]:
    """Body of :func:`profile_training`, run in the spawned worker."""
    from coldbridge_trainer.strategies import fit_strategies
    from coldbridge_trainer.train import fit

    cfg = TrainConfig.from_dict(config)
    t0 = time.perf_counter()
    ds = load()
    t1 = time.perf_counter()
    valid = selection_split(ds, cfg)
    result = fit(ds, cfg, valid_split=valid)
    fit_strategies(result, valid, names)
    t2 = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(t2 - t1, 2),
        "load_seconds": round(t1 - t0, 2),
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "strategies": names,
        "seed": cfg.seed,
    }
