"""Trainer half of ``emcdr`` (Man et al., IJCAI 2017): MLP or linear mapping.

``mapping="mlp"`` reuses the base pipeline's bridge (MLP, mapping MSE + task BPR,
early-stopped on the valid users); ``mapping="linear"`` trains a linear bridge the same way.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from coldbridge_trainer.models import Bridge
from coldbridge_trainer.strategies.context import TrainContext
from coldbridge_trainer.train import fit_bridge
from onnx import ModelProto

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import make_model, mlp_nodes, source_input

__all__ = ["EmcdrTrainer"]


class EmcdrTrainer(StrategyTrainer):
    """EMCDR mapping; ``mapping`` is ``"mlp"`` (the base bridge) or ``"linear"``."""

    name = "emcdr"

    def __init__(self, mapping: str = "mlp") -> None:
        if mapping not in ("mlp", "linear"):
            raise ValueError(f"mapping must be 'mlp' or 'linear', got {mapping!r}")
        self.mapping = mapping

    def fit(self, ctx: TrainContext) -> None:
        result = ctx.result
        if self.mapping == "mlp":
            self.bridge = result.bridge
            return
        gen = ctx.generator()
        linear = Bridge(result.source_user_emb.shape[1], result.target_item_emb.shape[1], (), gen)
        copy = dataclasses.replace(result, bridge=linear)
        fit_bridge(copy, ctx.valid, gen)
        self.bridge = linear.eval()

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        layers = self.bridge.layer_weights()
        nodes, inits = mlp_nodes("source_embedding", layers, "", "output")
        d_in, d_out = layers[0][0].shape[0], layers[-1][0].shape[1]
        return {"transfer": make_model(nodes, "emcdr", [source_input(d_in)], d_out, inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        with torch.no_grad():
            return self.bridge(
                torch.as_tensor(users.source_embeddings, dtype=torch.float32)
            ).numpy()

    def config(self) -> dict[str, str]:
        return {"mapping": self.mapping}
