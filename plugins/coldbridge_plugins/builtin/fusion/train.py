"""Trainer half of ``fusion``: blend weights of the strategies fitted before it.

Cold weights are fitted on the valid cold users by coordinate ascent over a small grid
(starting from the best single member); warm weights (used as the user accumulates target
history) put all mass on the best embedding member.

The objective is ``balanced`` by default: the geometric mean of valid MRR under the sampled
protocol and under full ranking. A served list faces every target item, and on cdrib a
sampled-only fit gave weight to a member (``kernelmap``) whose full-ranking MRR is below
co-occurrence, which pulled fusion below it too. ``objective="sampled"`` fits on the
sampled MRR alone.
"""

from __future__ import annotations

import numpy as np
from coldbridge_trainer.strategies.context import TrainContext

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.builtin.fusion import blend

__all__ = ["OBJECTIVES", "FusionTrainer"]

OBJECTIVES = ("balanced", "sampled")
"""Valid objective of the blend weights: sqrt(sampled MRR x full-ranking MRR), or sampled MRR."""


class FusionTrainer(StrategyTrainer):
    """``members`` default to every strategy fitted before (except ``popular``)."""

    name = "fusion"

    def __init__(
        self,
        members: tuple[str, ...] | None = None,
        grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0),
        shrinkage: float = 5.0,
        objective: str = "balanced",
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(
                f"fusion objective must be one of {list(OBJECTIVES)}, got {objective!r}"
            )
        self.members_arg, self.grid, self.shrinkage, self.objective = (
            members,
            grid,
            shrinkage,
            objective,
        )

    def fit(self, ctx: TrainContext) -> None:
        names = self.members_arg or tuple(n for n in ctx.fitted if n not in ("popular", "fusion"))
        if not names:
            raise ValueError("fusion needs at least one other strategy fitted before it")
        self.members = {n: ctx.fitted[n].server for n in names}
        cold_users = ctx.cold_users(ctx.valid.users)
        cached = {n: s.scores(cold_users) for n, s in self.members.items()}  # type: ignore[union-attr]

        def score(w: np.ndarray) -> float:
            blended = self._blend(list(cached.values()), w, np.zeros(len(cold_users)))
            sampled = ctx.valid_score(lambda _u: blended)
            if self.objective == "sampled":
                return sampled
            return float(np.sqrt(sampled * ctx.valid_score(lambda _u: blended, protocol="full")))

        singles = [score(np.eye(len(names))[i]) for i in range(len(names))]
        w = np.eye(len(names))[int(np.argmax(singles))]
        best = max(singles)
        for _ in range(2):
            for m in range(len(names)):
                for value in self.grid:
                    trial = w.copy()
                    trial[m] = value
                    if trial.sum() > 0 and (metric := score(trial)) > best:
                        best, w = metric, trial
        self.cold = w / w.sum()
        emb = [i for i, n in enumerate(names) if ctx.fitted[n].cls.output == "embedding"]
        self.warm = np.eye(len(names))[max(emb, key=lambda i: singles[i])] if emb else self.cold

    def _blend(
        self, member_scores: list[np.ndarray], cold: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        return blend(member_scores, cold, getattr(self, "warm", cold), counts, self.shrinkage)

    def parts(self) -> dict[str, np.ndarray]:
        return {}

    def reference(self, users: ColdUsers) -> np.ndarray:
        scores = [s.scores(users) for s in self.members.values()]  # type: ignore[union-attr]
        return self._blend(scores, self.cold, users.counts().astype(np.float64))

    def config(self) -> dict[str, object]:
        return {
            "members": list(self.members),
            "cold": self.cold.tolist(),
            "warm": self.warm.tolist(),
            "shrinkage": self.shrinkage,
            "objective": self.objective,
        }
