"""Kernel ridge over the overlapping users, with EASE smoothing in both domains."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["KernelMap", "register_transfer_strategies"]


class KernelMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/kernelmap/transfer.onnx`` (output: scores)."""

    name = "kernelmap"
    version = "1.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.kernelmap:KernelMapTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [KernelMap]
