"""Server half of ``ridge`` and its hook implementation (numpy + coldbridge_plugins only)."""

from __future__ import annotations

from coldbridge_plugins import OnnxTransferStrategy, StrategyTrainer, TransferStrategy, hookimpl

__all__ = ["Ridge", "register_transfer_strategies"]


class Ridge(OnnxTransferStrategy):
    """``target = source @ W + b``; runs ``strategies/ridge/transfer.onnx`` in the server."""

    name = "ridge"
    version = "0.1.0"
    output = "embedding"

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """The trainer half, imported only when ``coldbridge train`` fits ``ridge``."""
        from coldbridge_example_strategy.train import RidgeTrainer

        return RidgeTrainer


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    """The strategies of this plugin."""
    return [Ridge]
