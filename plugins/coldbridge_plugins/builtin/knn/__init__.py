"""Neighbourhood mapping: similarity-weighted mean target embedding of the nearest overlap."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Knn"]


class Knn(OnnxTransferStrategy):
    """Server half: runs ``strategies/knn/transfer.onnx`` (output: embedding)."""

    name = "knn"
    version = "2.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.knn.train.KnnTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.knn.train import KnnTrainer

        return KnnTrainer
