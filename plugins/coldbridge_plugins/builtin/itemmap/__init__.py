"""Item-to-item transfer: closed-form (dual) ridge map, source-item bags -> target scores."""

from __future__ import annotations

from coldbridge_plugins.base import OnnxTransferStrategy, StrategyTrainer

__all__ = ["ItemMap"]


class ItemMap(OnnxTransferStrategy):
    """Server half: runs ``strategies/itemmap/transfer.onnx`` (output: scores)."""

    name = "itemmap"
    version = "2.0"
    output = "scores"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """:class:`~coldbridge_plugins.builtin.itemmap.train.ItemMapTrainer` (imports torch)."""
        from coldbridge_plugins.builtin.itemmap.train import ItemMapTrainer

        return ItemMapTrainer
