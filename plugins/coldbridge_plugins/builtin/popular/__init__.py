"""No transfer: every cold user starts at the mean target user embedding (baseline)."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Popular"]


class Popular(OnnxTransferStrategy):
    """Server half: runs ``strategies/popular/transfer.onnx`` (output: embedding)."""

    name = "popular"
    version = "2.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.popular.train.PopularTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.popular.train import PopularTrainer

        return PopularTrainer
