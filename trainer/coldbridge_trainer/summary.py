"""Seed statistics of :mod:`coldbridge_trainer.harness` runs, as typed summaries.

Numbers
-------
* every metric: mean ± std over the training seeds (baselines are seed-free: one run);
* headline numbers (HR@10, MRR; both protocols, line- and user-averaged): 95% percentile
  bootstrap interval over **users** (``n_boot`` resamples of the test users with
  replacement; a resampled user brings all of their lines) of the seed-averaged model;
* a difference to the co-occurrence scorer is called *real* only when the 95% interval of
  the **paired** bootstrap of the difference (same resampled users for both scorers)
  excludes 0.

:func:`summarize` returns a :class:`DirectionSummary`; its ``to_dict()`` is one entry of a
report's ``results.json`` and :meth:`DirectionSummary.from_dict` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from coldbridge_trainer.harness import BASELINES, PROTOCOLS, DirectionRun
from coldbridge_trainer.results import ResultMapping

__all__ = [
    "AVERAGES",
    "Cell",
    "Difference",
    "DirectionSummary",
    "HEADLINE",
    "REFERENCE",
    "ScorerSummary",
    "Selection",
    "bootstrap",
    "summarize",
]

HEADLINE = ("HR@10", "MRR")
AVERAGES = ("line", "user")
REFERENCE = "cooccurrence"

Table = dict[str, dict[str, dict[str, Any]]]
"""``{protocol: {"line"|"user": {metric: value}}}``."""


@dataclass(frozen=True)
class Cell(ResultMapping):
    """One metric over the seeds: mean, std, per-seed values, optional 95% bootstrap CI."""

    mean: float
    std: float
    per_seed: list[float]
    ci95: list[float] | None = None

    __hash__ = None  # type: ignore[assignment]  # holds lists

    def _items(self) -> dict[str, Any]:
        out = {"mean": self.mean, "std": self.std, "per_seed": self.per_seed}
        return out if self.ci95 is None else {**out, "ci95": self.ci95}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        """Inverse of :meth:`to_dict`."""
        ci = data.get("ci95")
        per_seed = list(data["per_seed"])
        return cls(data["mean"], data["std"], per_seed, None if ci is None else list(ci))


@dataclass(frozen=True)
class Difference(ResultMapping):
    """Paired-bootstrap difference of a scorer to :data:`REFERENCE` on one metric."""

    diff: float
    ci95: list[float]
    real: bool
    p_not_better: float

    __hash__ = None  # type: ignore[assignment]  # holds a list

    def _items(self) -> dict[str, Any]:
        return {
            "diff": self.diff,
            "ci95": self.ci95,
            "real": self.real,
            "p_not_better": self.p_not_better,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Difference:
        """Inverse of :meth:`to_dict`."""
        return cls(data["diff"], list(data["ci95"]), data["real"], data["p_not_better"])


def _table(data: Mapping[str, Any], leaf: type[Cell] | type[Difference]) -> Table:
    return {
        p: {h: {m: leaf.from_dict(c) for m, c in hv.items()} for h, hv in pv.items()}
        for p, pv in data.items()
    }


@dataclass(frozen=True)
class ScorerSummary(ResultMapping):
    """Test metrics of one scorer: ``cells[protocol][averaging][metric]`` and differences.

    ``vs_reference`` (``None`` for the reference itself) is written under the key
    ``"vs_cooccurrence"``.
    """

    cells: Table
    vs_reference: Table | None = None

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def _items(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.cells)
        return out if self.vs_reference is None else {**out, "vs_" + REFERENCE: self.vs_reference}

    def cell(self, protocol: str, how: str, metric: str) -> Cell:
        """The :class:`Cell` of one protocol, averaging and metric."""
        return self.cells[protocol][how][metric]

    def difference(self, protocol: str, how: str, metric: str) -> Difference:
        """The :class:`Difference` to the reference (not defined for the reference)."""
        if self.vs_reference is None:
            raise KeyError(f"no difference to {REFERENCE} recorded")
        return self.vs_reference[protocol][how][metric]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerSummary:
        """Inverse of :meth:`to_dict`."""
        key = "vs_" + REFERENCE
        cells = _table({p: v for p, v in data.items() if p != key}, Cell)
        return cls(cells, _table(data[key], Difference) if key in data else None)


@dataclass(frozen=True)
class Selection(ResultMapping):
    """Valid (selection split) sampled line-averaged MRR of one strategy over the seeds."""

    mrr_mean: float
    mrr_std: float
    per_seed: list[float]

    __hash__ = None  # type: ignore[assignment]  # holds a list

    def _items(self) -> dict[str, Any]:
        return {"MRR_mean": self.mrr_mean, "MRR_std": self.mrr_std, "per_seed": self.per_seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`."""
        return cls(data["MRR_mean"], data["MRR_std"], list(data["per_seed"]))


@dataclass(frozen=True)
class DirectionSummary(ResultMapping):
    """Everything the report shows about one direction (one entry of ``results.json``).

    Attributes
    ----------
    test, valid : dict
        Split sizes and candidate digests (``lines``, ``users``, ``candidates`` (test
        only), ``candidates_sha256``).
    seconds, configs : dict
        Per seed (JSON turns the seed keys into strings).
    profile : dict or None
        :func:`~coldbridge_trainer.harness.profile_training` output.
    """

    direction: str
    seeds: list[int]
    best: str | None
    n_boot: int
    test: dict[str, Any]
    valid: dict[str, Any]
    scorers: dict[str, ScorerSummary]
    valid_selection: dict[str, Selection]
    seconds: dict[Any, dict[str, float]]
    configs: dict[Any, dict[str, Any]]
    profile: dict[str, Any] | None = None

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def _items(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "seeds": self.seeds,
            "best": self.best,
            "n_boot": self.n_boot,
            "test": self.test,
            "valid": self.valid,
            "scorers": self.scorers,
            "valid_selection": self.valid_selection,
            "seconds": self.seconds,
            "configs": self.configs,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DirectionSummary:
        """Inverse of :meth:`to_dict` (e.g. one entry of a saved ``results.json``)."""
        return cls(
            data["direction"],
            list(data["seeds"]),
            data["best"],
            data["n_boot"],
            dict(data["test"]),
            dict(data["valid"]),
            {n: ScorerSummary.from_dict(v) for n, v in data["scorers"].items()},
            {n: Selection.from_dict(v) for n, v in data["valid_selection"].items()},
            dict(data["seconds"]),
            dict(data["configs"]),
            data.get("profile"),
        )


def _seed_mean(runs: list[dict[str, dict[str, np.ndarray]]], proto: str, metric: str) -> np.ndarray:
    return np.mean([r[proto][metric] for r in runs], axis=0)


def _average(values: np.ndarray, line_user: np.ndarray, n_users: int, how: str) -> float:
    if how == "line":
        return float(values.mean())
    counts = np.bincount(line_user, minlength=n_users)
    seen = counts > 0
    return float(np.mean(np.bincount(line_user, values, n_users)[seen] / counts[seen]))


def bootstrap(
    values: np.ndarray, line_user: np.ndarray, n_users: int, idx: np.ndarray, how: str
) -> np.ndarray:
    """Bootstrap distribution ``[n_boot]`` of the line- or user-average of per-line ``values``.

    ``idx`` int ``[n_boot, n_users]`` holds the resampled users (shared between scorers to
    pair them).
    """
    sums = np.bincount(line_user, values, n_users)
    counts = np.bincount(line_user, minlength=n_users).astype(np.float64)
    if how == "line":
        return sums[idx].sum(1) / counts[idx].sum(1)
    per_user = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return per_user[idx].sum(1) / (counts[idx] > 0).sum(1)


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


Boots = dict[tuple[str, str, str, str], np.ndarray]


def _scorer_cells(run: DirectionRun, name: str, idx: np.ndarray, boots: Boots) -> Table:
    ev, runs = run.test_split, run.test[name]
    n_users, lu = len(ev.users), ev.line_user
    metrics = list(next(iter(run.test.values()))[0]["sampled"])
    cells: Table = {}
    for proto in PROTOCOLS:
        for how in AVERAGES:
            per_seed = {m: [_average(r[proto][m], lu, n_users, how) for r in runs] for m in metrics}
            row = {m: Cell(float(np.mean(v)), float(np.std(v)), v) for m, v in per_seed.items()}
            for m in HEADLINE:
                b = bootstrap(_seed_mean(runs, proto, m), lu, n_users, idx, how)
                boots[name, proto, how, m] = b
                row[m] = Cell(row[m].mean, row[m].std, row[m].per_seed, _interval(b))
            cells.setdefault(proto, {})[how] = row
    return cells


def _differences(name: str, cells: Mapping[str, Table], boots: Boots) -> Table:
    diff: Table = {}
    for proto in PROTOCOLS:
        for how in AVERAGES:
            for m in HEADLINE:
                d = boots[name, proto, how, m] - boots[REFERENCE, proto, how, m]
                point = cells[name][proto][how][m].mean - cells[REFERENCE][proto][how][m].mean
                lo, hi = _interval(d)
                diff.setdefault(proto, {}).setdefault(how, {})[m] = Difference(
                    point, [lo, hi], bool(lo > 0 or hi < 0), float(np.mean(d <= 0))
                )
    return diff


def _selection(run: DirectionRun) -> dict[str, Selection]:
    out = {}
    for name in run.strategies:
        vals = [float(r["sampled"]["MRR"].mean()) for r in run.valid[name]]
        out[name] = Selection(float(np.mean(vals)), float(np.std(vals)), vals)
    return out


def summarize(run: DirectionRun, n_boot: int = 1000, seed: int = 0) -> DirectionSummary:
    """Means, stds, intervals and paired differences of one direction."""
    ev, vs = run.test_split, run.valid_split
    n_users = len(ev.users)
    idx = np.random.default_rng(seed).integers(0, n_users, size=(n_boot, n_users))
    boots: Boots = {}
    cells = {name: _scorer_cells(run, name, idx, boots) for name in [*BASELINES, *run.strategies]}
    scorers = {
        name: ScorerSummary(c, None if name == REFERENCE else _differences(name, cells, boots))
        for name, c in cells.items()
    }
    return DirectionSummary(
        direction=run.name,
        seeds=run.seeds,
        best=run.best,
        n_boot=n_boot,
        test={
            "lines": len(ev.positives),
            "users": n_users,
            "candidates": int(ev.candidates.shape[1]),
            "candidates_sha256": ev.digest,
        },
        valid={"lines": len(vs.positives), "users": len(vs.users), "candidates_sha256": vs.digest},
        scorers=scorers,
        valid_selection=_selection(run),
        seconds=run.seconds,
        configs=run.configs,
        profile=run.profile,
    )
