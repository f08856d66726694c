"""EMCDR (Man et al., IJCAI 2017): linear or MLP mapping of the source user embedding."""

from __future__ import annotations

import numpy as np

from coldbridge_plugins.base import ColdUsers, OnnxTransferStrategy, StrategyTrainer

__all__ = ["Emcdr"]


class Emcdr(OnnxTransferStrategy):
    """Server half: runs ``strategies/emcdr/transfer.onnx`` (output: embedding)."""

    name = "emcdr"
    version = "2.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.emcdr.train.EmcdrTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.emcdr.train import EmcdrTrainer

        return EmcdrTrainer

    def transfer(self, users: ColdUsers) -> np.ndarray:
        """Its own ``transfer`` part if trained into the bundle, else the top-level bridge."""
        if self.part in self.parts.models or self.parts.bridge is None:
            return super().transfer(users)
        x = np.ascontiguousarray(users.source_embeddings, dtype=np.float32)
        return np.asarray(self.parts.bridge(x), dtype=np.float32)
