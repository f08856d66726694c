"""Trainer half of ``itemmap``: an EASE-style cross-domain item-to-item ridge map.

With ``X`` the binary source-item matrix and ``Y`` the binary target-item matrix of the
overlapping users, the ridge map ``W = argmin ||X W - Y||^2 + lambda ||W||^2`` is fitted
in closed form in its dual (kernel) form, ``W = X^T (X X^T + lambda I)^{-1} Y``, which is
cheap because there are fewer overlapping users than source items. A cold user with
source-item bag ``x`` gets target scores ``x W = (x X^T) A`` with ``A = (K + lambda I)^{-1} Y``.
``lambda`` is picked on the valid cold users. Exported graph: gather the rows of ``X^T``
(compacted to the source items overlapping users touched) for the history, sum, ``@ A``.
"""

from __future__ import annotations

import numpy as np
from coldbridge_plugins.base import ColdUsers
from onnx import ModelProto, helper

from coldbridge_trainer.strategies.base import (
    StrategyTrainer,
    TrainContext,
    history_inputs,
    init,
    make_model,
)

__all__ = ["ItemMapTrainer"]


class ItemMapTrainer(StrategyTrainer):
    """Closed-form ridge from source-item bags to target-item scores."""

    name = "itemmap"

    def __init__(self, lambdas: tuple[float, ...] = (1.0, 5.0, 20.0, 100.0, 500.0)) -> None:
        self.lambdas = lambdas

    def fit(self, ctx: TrainContext) -> None:
        s_rows, t_rows = ctx.overlap_rows()
        n_src = ctx.result.dataset.source.n_items
        used = np.unique(np.concatenate([ctx.histories[r] for r in s_rows] or [np.zeros(0, np.int64)]))
        self.remap = np.full(n_src, len(used), dtype=np.int64)  # unused items -> the zero row
        self.remap[used] = np.arange(len(used))
        x = np.zeros((len(s_rows), len(used) + 1))
        for row, r in enumerate(s_rows):
            x[row, self.remap[ctx.histories[r]]] = 1.0
        y = ctx.target_matrix(t_rows)
        eig, q = np.linalg.eigh(x @ x.T)
        qty, self.xt = q.T @ y, np.ascontiguousarray(x.T.astype(np.float32))
        best = -np.inf
        for lam in self.lambdas:
            self.lam, self.a = lam, ((q / (eig + lam)) @ qty).astype(np.float32)
            metric = ctx.valid_score(self.reference)
            if metric > best:
                best, choice = metric, (lam, self.a)
        self.lam, self.a = choice

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [
            helper.make_node("Gather", ["remap", "item_indices"], ["rows"], axis=0),
            helper.make_node("Gather", ["Xt", "rows"], ["k3"], axis=0),
            helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
            helper.make_node("Mul", ["k3", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["kx"], keepdims=0),
            helper.make_node("MatMul", ["kx", "A"], ["output"]),
        ]
        inits = [init("remap", self.remap), init("Xt", self.xt), init("A", self.a),
                 init("axis1", np.array([1], np.int64)), init("axis2", np.array([2], np.int64))]
        return {"transfer": make_model(nodes, "itemmap", history_inputs(), self.a.shape[1], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        kx = np.stack([self.xt[self.remap[np.asarray(h, np.int64)[-256:]]].sum(0) for h in users.histories])
        return (kx @ self.a).astype(np.float32)

    def config(self) -> dict[str, float]:
        return {"lambda": self.lam}
