"""EMCDR (Man et al., IJCAI 2017): map a source user embedding through the bridge MLP."""

from __future__ import annotations

import numpy as np

from coldbridge_plugins.base import BridgeFn, TransferStrategy
from coldbridge_plugins.hookspecs import hookimpl

__all__ = ["Emcdr", "register_transfer_strategies"]


class Emcdr(TransferStrategy):
    """Embedding-and-mapping transfer: ``target = bridge(source)``."""

    name = "emcdr"
    version = "1.0"

    def initial_embeddings(self, source_embeddings: np.ndarray, bridge: BridgeFn) -> np.ndarray:
        return np.asarray(bridge(np.asarray(source_embeddings, dtype=np.float32)), dtype=np.float32)


@hookimpl
def register_transfer_strategies() -> list[type[TransferStrategy]]:
    return [Emcdr]
