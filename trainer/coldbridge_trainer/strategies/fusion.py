"""Trainer half of ``fusion``: blend weights of the strategies fitted before it.

Cold weights are fitted on the valid cold users by coordinate ascent over a small grid
(starting from the best single member); warm weights (used as the user accumulates target
history) put all mass on the best embedding member.
"""

from __future__ import annotations

import numpy as np
from coldbridge_plugins.base import ColdUsers
from coldbridge_plugins.builtin.fusion import blend

from coldbridge_trainer.strategies.base import StrategyTrainer, TrainContext

__all__ = ["FusionTrainer"]


class FusionTrainer(StrategyTrainer):
    """``members`` default to every strategy fitted before (except ``popular``)."""

    name = "fusion"

    def __init__(self, members: tuple[str, ...] | None = None, grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0),
                 shrinkage: float = 5.0) -> None:
        self.members_arg, self.grid, self.shrinkage = members, grid, shrinkage

    def fit(self, ctx: TrainContext) -> None:
        names = self.members_arg or tuple(n for n in ctx.fitted if n not in ("popular", "fusion"))
        if not names:
            raise ValueError("fusion needs at least one other strategy fitted before it")
        self.members = {n: ctx.fitted[n].server for n in names}
        cold_users = ctx.cold_users(ctx.valid.users)
        cached = {n: s.scores(cold_users) for n, s in self.members.items()}  # type: ignore[union-attr]
        score = lambda w: ctx.valid_score(lambda _u: self._blend(list(cached.values()), w, np.zeros(len(cold_users))))  # noqa: E731
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

    def _blend(self, member_scores: list[np.ndarray], cold: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return blend(member_scores, cold, getattr(self, "warm", cold), counts, self.shrinkage)

    def parts(self) -> dict[str, np.ndarray]:
        return {}

    def reference(self, users: ColdUsers) -> np.ndarray:
        scores = [s.scores(users) for s in self.members.values()]  # type: ignore[union-attr]
        return self._blend(scores, self.cold, users.counts().astype(np.float64))

    def config(self) -> dict[str, object]:
        return {"members": list(self.members), "cold": self.cold.tolist(), "warm": self.warm.tolist(),
                "shrinkage": self.shrinkage}
