"""Item-to-item transfer: denoising source-bag -> target-softmax networks (Mult-DAE style),
averaged over seeds, then a target-domain EASE neighbour step."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["SoftMap"]


class SoftMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/softmap/transfer.onnx`` (output: scores, log-probs)."""

    name = "softmap"
    version = "2.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.softmap.train.SoftMapTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.softmap.train import SoftMapTrainer

        return SoftMapTrainer
