"""PTUPCDR (Zhu et al., WSDM 2022): a meta network generates a personalised bridge per user."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Ptupcdr", "register_transfer_strategies"]


class Ptupcdr(OnnxTransferStrategy):
    """Server half: runs ``strategies/ptupcdr/transfer.onnx`` (output: embedding)."""

    name = "ptupcdr"
    version = "2.0"
    output = "embedding"
    trainer = "coldbridge_trainer.strategies.ptupcdr:PtupcdrTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Ptupcdr]
