"""Neighbourhood mapping: similarity-weighted mean target embedding of the nearest overlapping users."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Knn", "register_transfer_strategies"]


class Knn(OnnxTransferStrategy):
    """Server half: runs ``strategies/knn/transfer.onnx`` (output: embedding)."""

    name = "knn"
    version = "2.0"
    output = "embedding"
    trainer = "coldbridge_trainer.strategies.knn:KnnTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Knn]
