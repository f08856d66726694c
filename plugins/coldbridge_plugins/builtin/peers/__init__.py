"""Item-to-item transfer through overlapping users: a weighted co-occurrence graph walk."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["Peers"]


class Peers(OnnxTransferStrategy):
    """Server half: runs ``strategies/peers/transfer.onnx`` (output: scores)."""

    name = "peers"
    version = "1.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.peers.train.PeersTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.peers.train import PeersTrainer

        return PeersTrainer
