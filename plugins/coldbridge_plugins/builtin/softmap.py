"""Item-to-item transfer: a denoising source-bag -> target-softmax network (Mult-DAE style)."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["SoftMap", "register_transfer_strategies"]


class SoftMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/softmap/transfer.onnx`` (output: scores, logits)."""

    name = "softmap"
    version = "1.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.softmap:SoftMapTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [SoftMap]
