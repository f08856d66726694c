"""Trainer half of ``knn``: neighbourhood mapping through the overlapping users.

``target(u) = sum_j softmax_j(cos(s_u, s_j) / temperature) t_j`` over the ``k``
overlapping users ``j`` nearest to ``u`` in the source space (cosine). ``k`` and
``temperature`` are picked on the valid cold users from a small grid.
"""

from __future__ import annotations

import itertools

import numpy as np
from coldbridge_trainer.strategies.context import TrainContext
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import init, make_model, source_input

__all__ = ["KnnTrainer"]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KnnTrainer(StrategyTrainer):
    """Grid over ``ks`` x ``temperatures``; set one value each to fix them."""

    name = "knn"

    def __init__(
        self, ks: tuple[int, ...] = (10, 30, 100), temperatures: tuple[float, ...] = (0.05, 0.2)
    ) -> None:
        self.ks, self.temperatures = ks, temperatures

    def fit(self, ctx: TrainContext) -> None:
        s_rows, t_rows = ctx.overlap_rows()
        self.src = _normalise(ctx.result.source_user_emb[s_rows].astype(np.float32)).astype(
            np.float32
        )
        self.tgt = ctx.result.target_user_emb[t_rows].astype(np.float32)
        best = -np.inf
        for k, temp in itertools.product(self.ks, self.temperatures):
            self.k, self.temperature = min(k, len(self.src)), temp
            metric = ctx.valid_score(lambda u: ctx.embedding_scores(self.reference(u)))
            if metric > best:
                best, choice = metric, (self.k, temp)
        self.k, self.temperature = choice

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        d_s = self.src.shape[1]
        nodes = [
            helper.make_node("ReduceL2", ["source_embedding"], ["norm"], axes=[1], keepdims=1),
            helper.make_node("Max", ["norm", "eps"], ["denom"]),
            helper.make_node("Div", ["source_embedding", "denom"], ["unit"]),
            helper.make_node("MatMul", ["unit", "St"], ["sims"]),
            helper.make_node("TopK", ["sims", "k"], ["top", "idx"], axis=-1, largest=1, sorted=1),
            helper.make_node("Div", ["top", "temp"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["w"], axis=-1),
            helper.make_node("Gather", ["T", "idx"], ["nbrs"], axis=0),
            helper.make_node("Unsqueeze", ["w", "axis2"], ["w3"]),
            helper.make_node("Mul", ["nbrs", "w3"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis1"], ["output"], keepdims=0),
        ]
        inits = [
            init("St", np.ascontiguousarray(self.src.T)),
            init("T", self.tgt),
            init("k", np.array([self.k], np.int64)),
            init("temp", np.array([self.temperature], np.float32)),
            init("eps", np.array([1e-12], np.float32)),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
        ]
        return {"transfer": make_model(nodes, "knn", [source_input(d_s)], self.tgt.shape[1], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        sims = _normalise(np.asarray(users.source_embeddings, np.float32)) @ self.src.T
        idx = np.argsort(-sims, axis=1, kind="stable")[:, : self.k]
        top = np.take_along_axis(sims, idx, 1) / self.temperature
        w = np.exp(top - top.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        return np.einsum("bk,bkd->bd", w, self.tgt[idx]).astype(np.float32)

    def config(self) -> dict[str, float]:
        return {"k": self.k, "temperature": self.temperature}
