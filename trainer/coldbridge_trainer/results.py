"""Typed evaluation results: frozen dataclasses with ``to_dict``/``from_dict``.

The nesting follows the evaluation (``evaluate.score_split`` and ``evaluate_scorers``,
``train.fit``)::

    TrainMetrics          valid, test: SplitResult; best_epoch, history, n_overlap_users,
     |                    seconds; strategies: {name: StrategyResult} (after attach_strategies)
     +- StrategyResult    valid, test: SplitResult; seconds
     +- SplitResult       n_lines, n_users, n_candidates, candidates_sha256,
         |                scorers: {name: ScorerResult}
         +- ScorerResult  {protocol ("sampled" | "full"): ProtocolMetrics}
             +- ProtocolMetrics  line, user: Metrics
                 +- Metrics      {"HR@k" | "NDCG@k" | "MRR": float}

``to_dict()`` gives exactly the JSON layout written before these types existed (the bundle
manifest's ``metrics``), and ``from_dict`` reads it back. Every type is also a read-only
:class:`~collections.abc.Mapping` over the same keys, so ``res["sampled"]["line"]["HR@10"]``
still reads a value; new code should use the attributes (``res.sampled.line.hr(10)``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Metrics",
    "ProtocolMetrics",
    "ResultMapping",
    "ScorerResult",
    "SplitResult",
    "StrategyResult",
    "TrainMetrics",
]


class ResultMapping(Mapping[str, Any]):
    """Base of the result types: a read-only mapping over the keys of ``to_dict()``.

    A subclass lists its entries (children typed) in ``_items``; ``to_dict`` converts them
    recursively to plain dicts.
    """

    @abstractmethod
    def _items(self) -> dict[str, Any]:
        """The entries of this result, by the keys of :meth:`to_dict`."""

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (today's layout), children converted recursively."""
        return {k: _plain(v) for k, v in self._items().items()}


def _plain(value: Any) -> Any:
    if isinstance(value, ResultMapping):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, eq=True)
class Metrics(ResultMapping):
    """Ranking metrics of one protocol and one averaging, in computation order.

    Attributes
    ----------
    data : dict
        ``{"HR@k": ..., "NDCG@k": ..., "MRR": ...}`` (floats; which ``k`` depends on ``ks``),
        named like :attr:`collections.UserDict.data` (``values`` is the mapping method).

    Examples
    --------
    >>> m = Metrics({"HR@10": 0.5, "MRR": 0.25})
    >>> m.hr(10), m.mrr, m["MRR"], m.to_dict(), list(m.values())
    (0.5, 0.25, 0.25, {'HR@10': 0.5, 'MRR': 0.25}, [0.5, 0.25])
    """

    data: dict[str, float]

    __hash__ = None  # type: ignore[assignment]  # holds a dict

    def _items(self) -> dict[str, Any]:
        return self.data

    def hr(self, k: int) -> float:
        """Hit rate at ``k``."""
        return self.data[f"HR@{k}"]

    def ndcg(self, k: int) -> float:
        """NDCG at ``k``."""
        return self.data[f"NDCG@{k}"]

    @property
    def mrr(self) -> float:
        """Mean reciprocal rank (untruncated)."""
        return self.data["MRR"]

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Metrics:
        """Inverse of :meth:`to_dict`."""
        return cls(dict(data))


@dataclass(frozen=True)
class ProtocolMetrics(ResultMapping):
    """Line- and user-averaged metrics of one protocol.

    Attributes
    ----------
    line : Metrics
        Mean over held-out lines.
    user : Metrics
        Mean over users of each user's line mean.
    """

    line: Metrics
    user: Metrics

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def _items(self) -> dict[str, Any]:
        return {"line": self.line, "user": self.user}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProtocolMetrics:
        """Inverse of :meth:`to_dict`."""
        return cls(Metrics.from_dict(data["line"]), Metrics.from_dict(data["user"]))


@dataclass(frozen=True)
class ScorerResult(ResultMapping):
    """Metrics of one scorer on one split, per protocol.

    Attributes
    ----------
    protocols : dict
        ``{"sampled" | "full": ProtocolMetrics}``, in evaluation order (a scorer evaluated
        under one protocol only has one entry).
    """

    protocols: dict[str, ProtocolMetrics]

    __hash__ = None  # type: ignore[assignment]  # holds a dict

    def _items(self) -> dict[str, Any]:
        return self.protocols

    @property
    def sampled(self) -> ProtocolMetrics:
        """The sampled-candidates protocol."""
        return self.protocols["sampled"]

    @property
    def full(self) -> ProtocolMetrics:
        """The full-ranking protocol."""
        return self.protocols["full"]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerResult:
        """Inverse of :meth:`to_dict`."""
        return cls({p: ProtocolMetrics.from_dict(v) for p, v in data.items()})


@dataclass(frozen=True)
class SplitResult(ResultMapping):
    """Several scorers evaluated on one prepared split (``evaluate_scorers``).

    Attributes
    ----------
    n_lines, n_users, n_candidates : int
        Held-out lines, distinct users, sampled candidates per line (positive included).
    candidates_sha256 : str
        Digest of the sampled candidate lists.
    scorers : dict
        ``{scorer name: ScorerResult}``.
    """

    n_lines: int
    n_users: int
    n_candidates: int
    candidates_sha256: str
    scorers: dict[str, ScorerResult]

    __hash__ = None  # type: ignore[assignment]  # holds a dict

    def _items(self) -> dict[str, Any]:
        return {
            "n_lines": self.n_lines,
            "n_users": self.n_users,
            "n_candidates": self.n_candidates,
            "candidates_sha256": self.candidates_sha256,
            "scorers": self.scorers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitResult:
        """Inverse of :meth:`to_dict`."""
        scorers = {n: ScorerResult.from_dict(v) for n, v in data["scorers"].items()}
        return cls(
            data["n_lines"],
            data["n_users"],
            data["n_candidates"],
            data["candidates_sha256"],
            scorers,
        )


@dataclass(frozen=True)
class StrategyResult(ResultMapping):
    """One fitted strategy evaluated on valid and test (``attach_strategies``)."""

    valid: SplitResult
    test: SplitResult
    seconds: float

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def _items(self) -> dict[str, Any]:
        return {"valid": self.valid, "test": self.test, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategyResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            SplitResult.from_dict(data["valid"]),
            SplitResult.from_dict(data["test"]),
            data["seconds"],
        )


@dataclass(frozen=True)
class TrainMetrics(ResultMapping):
    """What :func:`coldbridge_trainer.train.fit` measured (the bundle manifest's ``metrics``).

    Attributes
    ----------
    valid, test : SplitResult
        Base pipeline and baselines on the valid (selection) and test cold users.
    best_epoch : int
        Early-stopping epoch of the bridge.
    history : list of dict
        Per-epoch ``{"epoch", "valid_<metric>"}``.
    n_overlap_users : int
        Users in both training sets.
    seconds : dict
        ``{"mf": s, "total": s}`` wall clock.
    strategies : dict or None
        ``{name: StrategyResult}`` once strategies are attached (``None``: key absent).
    """

    valid: SplitResult
    test: SplitResult
    best_epoch: int
    history: list[dict[str, Any]]
    n_overlap_users: int
    seconds: dict[str, float]
    strategies: dict[str, StrategyResult] | None = field(default=None)

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def _items(self) -> dict[str, Any]:
        out = {
            "valid": self.valid,
            "test": self.test,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "n_overlap_users": self.n_overlap_users,
            "seconds": self.seconds,
        }
        return out if self.strategies is None else {**out, "strategies": self.strategies}

    def with_strategies(self, strategies: dict[str, StrategyResult]) -> TrainMetrics:
        """A copy with ``strategies`` set."""
        return replace(self, strategies=strategies)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainMetrics:
        """Inverse of :meth:`to_dict`."""
        strategies = data.get("strategies")
        return cls(
            SplitResult.from_dict(data["valid"]),
            SplitResult.from_dict(data["test"]),
            data["best_epoch"],
            list(data["history"]),
            data["n_overlap_users"],
            dict(data["seconds"]),
            None
            if strategies is None
            else {n: StrategyResult.from_dict(v) for n, v in strategies.items()},
        )
