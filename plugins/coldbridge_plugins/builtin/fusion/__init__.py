"""Model fusion: a weighted blend of other strategies' standardised scores.

The manifest ``config`` of the strategy holds ``members`` (names of other strategies in
the same bundle) and two weight vectors: ``cold`` (no target history, fitted on the
valid cold users) and ``warm`` (used in proportion ``n / (n + shrinkage)`` as the user
accumulates ``n`` target interactions; it favours embedding strategies, whose vectors
the online learner keeps updating).
"""

from __future__ import annotations

import numpy as np

from coldbridge_plugins.base import ColdUsers, StrategyTrainer, TransferStrategy

__all__ = ["Fusion", "blend", "standardise"]


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores (a constant row becomes zeros), float64."""
    s = np.asarray(scores, dtype=np.float64)
    std = s.std(axis=1, keepdims=True)
    z: np.ndarray = (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    return z


def blend(
    member_scores: list[np.ndarray],
    cold: np.ndarray,
    warm: np.ndarray,
    counts: np.ndarray,
    shrinkage: float,
) -> np.ndarray:
    """``sum_m ((1 - g) cold_m + g warm_m) z(scores_m)`` with ``g = n / (n + shrinkage)``."""
    g = (counts / (counts + shrinkage))[:, None]
    out = np.zeros_like(member_scores[0], dtype=np.float64)
    for m, scores in enumerate(member_scores):
        out += ((1 - g) * cold[m] + g * warm[m]) * standardise(scores)
    return out.astype(np.float32)


class Fusion(TransferStrategy):
    """Server half: asks its member strategies (``parts.peers``) and blends their scores."""

    name = "fusion"
    version = "2.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.fusion.train.FusionTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.fusion.train import FusionTrainer

        return FusionTrainer

    def transfer(self, users: ColdUsers) -> np.ndarray:
        cfg = self.parts.config
        members = [self.parts.peers[m].scores(users) for m in cfg["members"]]
        return blend(
            members,
            np.asarray(cfg["cold"]),
            np.asarray(cfg["warm"]),
            users.counts().astype(np.float64),
            float(cfg.get("shrinkage", 5.0)),
        )
