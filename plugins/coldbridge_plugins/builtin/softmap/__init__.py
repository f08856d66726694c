"""Item-to-item transfer: denoising source-bag -> target-softmax networks (Mult-DAE style),
averaged over seeds, then a target-domain EASE neighbour step."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["SoftMap", "register_transfer_strategies"]


class SoftMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/softmap/transfer.onnx`` (output: scores, log-probabilities)."""

    name = "softmap"
    version = "2.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.softmap:SoftMapTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [SoftMap]
