"""What a trainer half reads (:class:`TrainContext`) and the driver's :class:`FittedStrategy`.

A trainer half (:class:`coldbridge_plugins.StrategyTrainer`) is fitted on a
:class:`TrainContext` (the data, the base pipeline of :func:`coldbridge_trainer.train.fit`
and the valid cold users), then returns its bundle ``parts``, its manifest ``config`` and a
torch/numpy ``reference`` output that the exported graphs must reproduce (export parity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from coldbridge_plugins.base import ColdUsers, StrategyTrainer, TransferStrategy

from coldbridge_trainer.evaluate import EvalSplit, score_split
from coldbridge_trainer.train import TrainResult

__all__ = ["FittedStrategy", "TrainContext"]


@dataclass
class FittedStrategy:
    """A fitted trainer half plus the server half built from its exported parts."""

    cls: type[TransferStrategy]
    trainer: StrategyTrainer
    parts: dict[str, Any]
    config: dict[str, Any]
    server: TransferStrategy | None = None
    seconds: float = 0.0


@dataclass
class TrainContext:
    """Everything a trainer half may read.

    Attributes
    ----------
    result
        The base pipeline: MF of both domains, source encoder, EMCDR bridge.
    valid
        The valid cold users, prepared for the sampled protocol (model selection only).
    seed
        Seed of this strategy's initialisation and sampling.
    fitted
        Strategies fitted before this one (their server halves), for blends.
    """

    result: TrainResult
    valid: EvalSplit
    seed: int = 0
    fitted: dict[str, FittedStrategy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ds = self.result.dataset
        self.histories = ds.source.user_histories(self.result.config.encoder_max_history)

    def cold_users(self, users: list[str]) -> ColdUsers:
        """:class:`ColdUsers` of source users: stored source embedding and history."""
        rows = [self.result.dataset.source.user_index[u] for u in users]
        return ColdUsers(self.result.source_user_emb[rows], [self.histories[r] for r in rows])

    def overlap_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Source rows and target rows of the overlapping users (same order)."""
        ds = self.result.dataset
        overlap = ds.overlap_users()
        return (
            np.array([ds.source.user_index[u] for u in overlap], dtype=np.int64),
            np.array([ds.target.user_index[u] for u in overlap], dtype=np.int64),
        )

    def target_matrix(self, target_rows: np.ndarray) -> np.ndarray:
        """Binary ``[len(rows), N_t]`` target interactions of the given target users."""
        ds = self.result.dataset
        local = np.full(ds.target.n_users, -1, dtype=np.int64)
        local[target_rows] = np.arange(len(target_rows))
        y = np.zeros((len(target_rows), ds.target.n_items), dtype=np.float64)
        keep = local[ds.target.users] >= 0
        y[local[ds.target.users[keep]], ds.target.items[keep]] = 1.0
        return y

    def generator(self) -> torch.Generator:
        """A fresh torch generator seeded with :attr:`seed`."""
        torch.manual_seed(self.seed)
        return torch.Generator().manual_seed(self.seed)

    def valid_score(
        self,
        scores_fn: Callable[[ColdUsers], np.ndarray],
        metric: str = "MRR",
        protocol: str = "sampled",
    ) -> float:
        """``metric`` (line-averaged) on the valid cold users of a ``ColdUsers -> scores`` fn.

        ``protocol`` is ``sampled`` (the benchmark's 999 negatives) or ``full`` (every target
        item competes, as in a served list). Either way only the user's valid items are set
        apart: selection never learns which items are in test.txt, so under ``full`` those
        compete like any other item.
        """
        scores = scores_fn(self.cold_users(self.valid.users))
        return float(
            score_split(scores, self.valid, protocols=(protocol,))[protocol]["line"][metric]
        )

    def embedding_scores(self, emb: np.ndarray) -> np.ndarray:
        """Base target scores ``u @ V_t^T + b_t``."""
        return self.result.target_scores(np.asarray(emb, dtype=np.float32))
