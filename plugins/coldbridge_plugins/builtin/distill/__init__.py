"""Knowledge distillation: a source+target teacher distils into a compact source-only student."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Distill", "register_transfer_strategies"]


class Distill(OnnxTransferStrategy):
    """Server half: runs ``strategies/distill/transfer.onnx`` (output: embedding)."""

    name = "distill"
    version = "2.0"
    output = "embedding"
    trainer = "coldbridge_trainer.strategies.distill:DistillTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Distill]
