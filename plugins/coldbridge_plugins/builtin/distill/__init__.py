"""Knowledge distillation: a source+target teacher distils into a compact source-only student."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Distill"]


class Distill(OnnxTransferStrategy):
    """Server half: runs ``strategies/distill/transfer.onnx`` (output: embedding)."""

    name = "distill"
    version = "2.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.distill.train.DistillTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.distill.train import DistillTrainer

        return DistillTrainer
