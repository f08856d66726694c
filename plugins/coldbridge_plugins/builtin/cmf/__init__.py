"""Collective matrix factorisation (Singh & Gordon 2008): user embeddings shared by both domains."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Cmf"]


class Cmf(OnnxTransferStrategy):
    """Server half: runs ``strategies/cmf/transfer.onnx`` (output: scores)."""

    name = "cmf"
    version = "2.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.cmf.train.CmfTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.cmf.train import CmfTrainer

        return CmfTrainer
