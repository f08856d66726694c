"""Server half of ``ridge`` and its hook implementation (numpy + coldbridge_plugins only)."""

from __future__ import annotations

from coldbridge_plugins import OnnxTransferStrategy, TransferStrategy, hookimpl

__all__ = ["Ridge", "register_transfer_strategies"]


class Ridge(OnnxTransferStrategy):
    """``target = source @ W + b``; runs ``strategies/ridge/transfer.onnx`` in the server."""

    name = "ridge"
    version = "0.1.0"
    output = "embedding"
    trainer = "coldbridge_example_strategy.trainer:RidgeTrainer"


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Ridge]
