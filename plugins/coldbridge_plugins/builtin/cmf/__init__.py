"""Collective matrix factorisation (Singh & Gordon 2008): user embeddings shared by both domains."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Cmf", "register_transfer_strategies"]


class Cmf(OnnxTransferStrategy):
    """Server half: runs ``strategies/cmf/transfer.onnx`` (output: scores)."""

    name = "cmf"
    version = "2.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.cmf:CmfTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Cmf]
