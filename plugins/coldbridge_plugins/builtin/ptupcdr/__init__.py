"""PTUPCDR (Zhu et al., WSDM 2022): a meta network generates a personalised bridge per user."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Ptupcdr"]


class Ptupcdr(OnnxTransferStrategy):
    """Server half: runs ``strategies/ptupcdr/transfer.onnx`` (output: embedding)."""

    name = "ptupcdr"
    version = "2.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.ptupcdr.train.PtupcdrTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.ptupcdr.train import PtupcdrTrainer

        return PtupcdrTrainer
