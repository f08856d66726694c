"""Trainer half of ``ridge`` (imported lazily, only by ``coldbridge train``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from coldbridge_plugins import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import make_model, mlp_nodes, source_input
from coldbridge_trainer.strategies import TrainContext
from onnx import ModelProto

__all__ = ["RidgeTrainer"]


class RidgeTrainer(StrategyTrainer):
    """Closed-form ridge from source to target user embeddings of the overlapping users."""

    name = "ridge"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, ctx: TrainContext) -> None:
        s_rows, t_rows = ctx.overlap_rows()
        x = np.c_[ctx.result.source_user_emb[s_rows], np.ones(len(s_rows))].astype(np.float64)
        y = ctx.result.target_user_emb[t_rows].astype(np.float64)
        wb = np.linalg.solve(x.T @ x + self.alpha * np.eye(x.shape[1]), x.T @ y)
        self.w, self.b = wb[:-1].astype(np.float32), wb[-1].astype(np.float32)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes, inits = mlp_nodes("source_embedding", [(self.w, self.b)], "", "output")
        inputs = [source_input(self.w.shape[0])]
        return {"transfer": make_model(nodes, "ridge", inputs, self.w.shape[1], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        x = np.asarray(users.source_embeddings, np.float32)
        return (x @ self.w + self.b).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}
