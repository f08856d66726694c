"""Model fusion: a weighted blend of other strategies' standardised scores.

The manifest ``config`` of the strategy holds ``members`` (names of other strategies in
the same bundle) and two weight vectors: ``cold`` (no target history, fitted on the
valid cold users) and ``warm`` (used in proportion ``n / (n + shrinkage)`` as the user
accumulates ``n`` target interactions; it favours embedding strategies, whose vectors
the online learner keeps updating).
"""

from __future__ import annotations

import numpy as np

from coldbridge_plugins.base import ColdUsers, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Fusion", "blend", "register_transfer_strategies", "standardise"]


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores (a constant row becomes zeros), float64."""
    s = np.asarray(scores, dtype=np.float64)
    std = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def blend(member_scores: list[np.ndarray], cold: np.ndarray, warm: np.ndarray,
          counts: np.ndarray, shrinkage: float) -> np.ndarray:
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
    trainer = "coldbridge_trainer.strategies.fusion:FusionTrainer"

    def transfer(self, users: ColdUsers) -> np.ndarray:
        cfg = self.parts.config
        members = [self.parts.peers[m].scores(users) for m in cfg["members"]]
        return blend(members, np.asarray(cfg["cold"]), np.asarray(cfg["warm"]),
                     users.counts().astype(np.float64), float(cfg.get("shrinkage", 5.0)))


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Fusion]
