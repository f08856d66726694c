"""Item-to-item transfer: closed-form (dual) ridge map from source-item bags to target-item scores."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["ItemMap", "register_transfer_strategies"]


class ItemMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/itemmap/transfer.onnx`` (output: scores)."""

    name = "itemmap"
    version = "2.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.itemmap:ItemMapTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [ItemMap]
