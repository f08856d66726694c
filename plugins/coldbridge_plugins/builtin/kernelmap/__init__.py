"""Kernel ridge over the overlapping users, with EASE smoothing in both domains."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["KernelMap"]


class KernelMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/kernelmap/transfer.onnx`` (output: scores)."""

    name = "kernelmap"
    version = "1.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.kernelmap.train.KernelMapTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.kernelmap.train import KernelMapTrainer

        return KernelMapTrainer
