"""The strategy contract: what a transfer strategy must provide to the server."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

__all__ = ["API_VERSION", "BridgeFn", "TransferStrategy"]

API_VERSION = 1
"""Version of this contract. A strategy declaring another version is refused at load."""

BridgeFn = Callable[[np.ndarray], np.ndarray]
"""The bundle's exported bridge: ``[B, d_s]`` source embeddings -> ``[B, d_t]``."""


class TransferStrategy(ABC):
    """Server half of a transfer strategy.

    Subclasses set the class attributes ``name`` (unique), ``version`` and
    ``api_version`` and implement :meth:`initial_embeddings`. Instances are
    created once at server start-up; they must be thread-safe and free of
    import-time side effects.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    api_version: ClassVar[int] = API_VERSION

    @abstractmethod
    def initial_embeddings(self, source_embeddings: np.ndarray, bridge: BridgeFn) -> np.ndarray:
        """Return cold users' initial target embeddings, ``[B, d_t]`` float32.

        Parameters
        ----------
        source_embeddings
            ``[B, d_s]`` source-domain user embeddings (from the bundle, or from the
            source encoder over a history the server was given).
        bridge
            The bundle's exported bridge model for this strategy.
        """
