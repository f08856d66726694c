"""Trainer half of ``itemmap``: a cross-domain item-to-item ridge map with an intercept.

With ``X`` the binary source-item matrix and ``Y`` the binary target-item matrix of the
overlapping users, both column-centred (``X_c = X - m_x``, ``Y_c = Y - m_y``), the ridge
map ``W = argmin ||X_c W - Y_c||^2 + lambda ||W||^2`` is fitted in closed form in its dual
(kernel) form, ``W = X_c^T (X_c X_c^T + lambda I)^{-1} Y_c``, which is cheap because there
are fewer overlapping users than source items. A cold user with source-item bag ``x`` gets

    scores = (x - m_x) W + w * m_y + eps * log1p(pop_t) / max,

that is ``(x X_c^T) A + bias`` with ``A = (K + lambda I)^{-1} Y_c`` and every constant
folded into ``bias``. The intercept matters: ``m_y`` (how often overlapping users
interacted with each target item) is the strongest single signal for cold users, and the
plain (uncentred) ridge has no way to express it; ``w`` rescales that prior and a tiny
global-popularity term breaks the ties between items no overlapping user touched.
``lambda`` and ``w`` are picked on the valid cold users (sampled MRR). Exported graph:
gather the rows of ``X_c^T`` (compacted to the source items overlapping users touched)
for the history, sum, ``@ A + bias``.
"""

from __future__ import annotations

import numpy as np
from coldbridge_trainer.strategies.context import TrainContext
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import (
    history_inputs,
    history_rows,
    history_rows_nodes,
    init,
    make_model,
)

__all__ = ["ItemMapTrainer", "tie_breaker"]


def tie_breaker(ctx: TrainContext, eps: float = 1e-5) -> np.ndarray:
    """``eps * log1p(pop_t) / max``: orders the items that get no cross-domain evidence."""
    pop = np.log1p(ctx.result.dataset.target.popularity().astype(np.float64))
    return eps * pop / max(float(pop.max()), 1.0)


class ItemMapTrainer(StrategyTrainer):
    """Closed-form centred ridge from source-item bags to target-item scores."""

    name = "itemmap"

    def __init__(
        self,
        lambdas: tuple[float, ...] = (30.0, 100.0, 300.0, 1000.0, 3000.0),
        prior_weights: tuple[float, ...] = (0.5, 1.0, 2.0),
    ) -> None:
        self.lambdas, self.prior_weights = lambdas, prior_weights

    def fit(self, ctx: TrainContext) -> None:
        s_rows, t_rows = ctx.overlap_rows()
        n_src = ctx.result.dataset.source.n_items
        used = np.unique(
            np.concatenate([ctx.histories[r] for r in s_rows] or [np.zeros(0, np.int64)])
        )
        self.remap = np.full(n_src, len(used), dtype=np.int64)  # unused items -> the zero row
        self.remap[used] = np.arange(len(used))
        x = np.zeros((len(s_rows), len(used) + 1))
        for row, r in enumerate(s_rows):
            x[row, self.remap[ctx.histories[r]]] = 1.0
        y = ctx.target_matrix(t_rows)
        mx = x.mean(0) if len(x) else np.zeros(x.shape[1])
        my = y.mean(0) if len(y) else np.zeros(y.shape[1])
        xc, yc = x - mx, y - my
        xc[:, -1] = 0.0  # keep the row of unused items at zero
        eig, q = np.linalg.eigh(xc @ xc.T)
        qty, self.xt = q.T @ yc, np.ascontiguousarray(xc.T.astype(np.float32))
        c0 = mx @ xc.T  # the centring of the cold user's bag, folded into the bias
        tie = tie_breaker(ctx)
        # select on valid without forming A for every lambda:
        # scores = ((kx - c0) Q / (eig + lam)) Q^T Y_c
        valid_users = ctx.cold_users(ctx.valid.users)
        kq = (self._kx(valid_users) - c0) @ q
        best, choice = -np.inf, (self.lambdas[0], self.prior_weights[0])
        for lam in self.lambdas:
            mapped = (kq / (eig + lam)) @ qty
            for w in self.prior_weights:
                scores = (mapped + w * my + tie).astype(np.float32)
                metric = ctx.valid_score(lambda _u, s=scores: s)
                if metric > best:
                    best, choice = metric, (lam, w)
        self.lam, self.prior = choice
        a = (q / (eig + self.lam)) @ qty
        self.a, self.bias = (
            a.astype(np.float32),
            (self.prior * my - c0 @ a + tie).astype(np.float32),
        )

    def _kx(self, users: ColdUsers) -> np.ndarray:
        return history_rows(self.xt, self.remap, users)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [
            *history_rows_nodes("kx"),
            helper.make_node("MatMul", ["kx", "A"], ["mapped"]),
            helper.make_node("Add", ["mapped", "bias"], ["output"]),
        ]
        inits = [
            init("remap", self.remap),
            init("Xt", self.xt),
            init("A", self.a),
            init("bias", self.bias),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
        ]
        return {"transfer": make_model(nodes, "itemmap", history_inputs(), self.a.shape[1], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        return (self._kx(users) @ self.a + self.bias).astype(np.float32)

    def config(self) -> dict[str, float]:
        return {"lambda": self.lam, "prior_weight": self.prior}
