"""Trainer half of ``popular``: the mean target user embedding, whatever the source says."""

from __future__ import annotations

import numpy as np
from coldbridge_trainer.strategies.context import TrainContext
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import init, make_model, source_input

__all__ = ["PopularTrainer"]


class PopularTrainer(StrategyTrainer):
    """No transfer: ``mean(target user embeddings)`` for every cold user."""

    name = "popular"

    def fit(self, ctx: TrainContext) -> None:
        self.mean = ctx.result.target_user_emb.mean(0).astype(np.float32)
        self.d_s = ctx.result.source_user_emb.shape[1]

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [
            helper.make_node("MatMul", ["source_embedding", "Z"], ["zero"]),
            helper.make_node("Add", ["zero", "mean"], ["output"]),
        ]
        inits = [
            init("Z", np.zeros((self.d_s, len(self.mean)), np.float32)),
            init("mean", self.mean),
        ]
        return {
            "transfer": make_model(
                nodes, "popular", [source_input(self.d_s)], len(self.mean), inits
            )
        }

    def reference(self, users: ColdUsers) -> np.ndarray:
        return np.tile(self.mean, (len(users), 1))
