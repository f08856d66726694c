"""Item-to-item transfer through overlapping users: a weighted co-occurrence graph walk."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Peers", "register_transfer_strategies"]


class Peers(OnnxTransferStrategy):
    """Server half: runs ``strategies/peers/transfer.onnx`` (output: scores)."""

    name = "peers"
    version = "1.0"
    output = "scores"
    trainer = "coldbridge_trainer.strategies.peers:PeersTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Peers]
