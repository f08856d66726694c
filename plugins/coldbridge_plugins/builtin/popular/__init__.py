"""No transfer: every cold user starts at the mean target user embedding (baseline)."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Popular", "register_transfer_strategies"]


class Popular(OnnxTransferStrategy):
    """Server half: runs ``strategies/popular/transfer.onnx`` (output: embedding)."""

    name = "popular"
    version = "2.0"
    output = "embedding"
    trainer = "coldbridge_trainer.strategies.popular:PopularTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Popular]
