"""The strategy contract (API version 2): both halves' base classes.

A strategy has two halves:

* the **trainer half** (:class:`StrategyTrainer`, returned by
  :meth:`TransferStrategy.trainer_class`, which imports it lazily so the server never
  imports torch) fits the strategy from the training data and the base models and returns
  its ONNX graphs / arrays; they are written into the bundle under ``strategies/<name>/``;
* the **server half** (:class:`TransferStrategy`) is built once at start-up with those
  parts (:class:`StrategyParts`) and maps what the server knows about cold users
  (:class:`ColdUsers`) to either initial target embeddings ``[B, d_t]``
  (``output = "embedding"``) or scores over every target item ``[B, N_t]``
  (``output = "scores"``, item-to-item strategies).

This module imports numpy only; the trainer types (``TrainContext``, ``onnx.ModelProto``)
are named for type checkers alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import onnx
    from coldbridge_trainer.strategies.context import TrainContext

__all__ = [
    "API_VERSION",
    "OUTPUTS",
    "BridgeFn",
    "ColdUsers",
    "OnnxTransferStrategy",
    "StrategyParts",
    "StrategyTrainer",
    "TransferStrategy",
    "pad_histories",
]

API_VERSION = 2
"""Version of this contract. A strategy declaring another version is refused at load."""

OUTPUTS = ("embedding", "scores")
"""What :meth:`TransferStrategy.transfer` returns: ``[B, d_t]`` or ``[B, N_t]``."""

BridgeFn = Callable[[np.ndarray], np.ndarray]
"""The bundle's top-level bridge: ``[B, d_s]`` source embeddings -> ``[B, d_t]``."""


@dataclass(frozen=True)
class ColdUsers:
    """What the server knows about a batch of users without a target embedding.

    Attributes
    ----------
    source_embeddings
        float32 ``[B, d_s]``: stored source embeddings, or the source encoder's output
        over the history a request carried.
    histories
        One int64 array of source item indices (bundle order) per user.
    target_counts
        int64 ``[B]``: target interactions the server has seen for the user (0 for cold).
    """

    source_embeddings: np.ndarray
    histories: Sequence[np.ndarray]
    target_counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source_embeddings)

    def counts(self) -> np.ndarray:
        """``target_counts``, zeros when unknown."""
        if self.target_counts is None:
            return np.zeros(len(self), dtype=np.int64)
        return np.asarray(self.target_counts, dtype=np.int64)


@dataclass
class StrategyParts:
    """The bundle parts a strategy's server half reads.

    Attributes
    ----------
    models
        Part name -> loaded model with ``run(output_names, feeds)`` (an onnxruntime
        ``InferenceSession``) for the ``strategies/<name>/<part>.onnx`` files.
    arrays
        Part name -> array for the ``strategies/<name>/<part>.npy`` files.
    config
        The strategy's free-form ``config`` from the manifest.
    bridge
        The bundle's top-level bridge (EMCDR), for strategies that reuse it.
    target_item_embeddings, target_item_bias
        ``V_t`` ``[N_t, d_t]`` and ``b_t`` ``[N_t]``: turn embeddings into scores.
    peers
        Name -> server half of the other strategies of the bundle (for blends).
    """

    models: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    bridge: BridgeFn | None = None
    target_item_embeddings: np.ndarray | None = None
    target_item_bias: np.ndarray | None = None
    peers: Mapping[str, TransferStrategy] = field(default_factory=dict)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """``u @ V_t^T + b_t`` for target embeddings ``[B, d_t]`` (float32 ``[B, N_t]``)."""
        if self.target_item_embeddings is None or self.target_item_bias is None:
            raise ValueError("the target item embeddings were not given to this strategy")
        out = embeddings @ self.target_item_embeddings.T + self.target_item_bias
        return np.asarray(out, dtype=np.float32)


class TransferStrategy(ABC):
    """Server half of a transfer strategy.

    Subclasses set the class attributes ``name`` (unique), ``version``, ``api_version`` and
    ``output`` (``"embedding"`` or ``"scores"``), implement :meth:`transfer` and override
    :meth:`trainer_class` to import their trainer half lazily. Instances are created once
    per bundle; ``transfer`` must be thread-safe and deterministic. No import-time side
    effects.

    Examples
    --------
    >>> class Doubled(TransferStrategy):
    ...     name, version = "doubled", "1.0"
    ...
    ...     def transfer(self, users: ColdUsers) -> np.ndarray:
    ...         return (2 * users.source_embeddings).astype(np.float32)
    >>> Doubled().transfer(ColdUsers(np.ones((1, 2)), [np.zeros(0, np.int64)]))
    array([[2., 2.]], dtype=float32)
    """

    name: ClassVar[str]
    version: ClassVar[str]
    api_version: ClassVar[int] = API_VERSION
    output: ClassVar[str] = "embedding"

    def __init__(self, parts: StrategyParts | None = None) -> None:
        self.parts = parts if parts is not None else StrategyParts()

    @abstractmethod
    def transfer(self, users: ColdUsers) -> np.ndarray:
        """Initial target embeddings ``[B, d_t]`` or target scores ``[B, N_t]``, float32."""

    def scores(self, users: ColdUsers) -> np.ndarray:
        """Scores over every target item ``[B, N_t]`` whatever :attr:`output` is."""
        out = self.transfer(users)
        return self.parts.scores(out) if self.output == "embedding" else out

    @classmethod
    def trainer_class(cls) -> type[StrategyTrainer]:
        """The trainer half (needs the trainer extra: torch, onnx).

        Override it with a function-level import, so that importing the server half never
        imports the trainer's dependencies::

            @classmethod
            def trainer_class(cls) -> type[StrategyTrainer]:
                from my_pkg.train import MyTrainer

                return MyTrainer

        Raises
        ------
        NotImplementedError
            If the strategy has no trainer half (it cannot be fitted by ``coldbridge train``).
        """
        raise NotImplementedError(f"strategy {cls.name!r} declares no trainer half")


class StrategyTrainer(ABC):
    """Trainer half of a strategy (constructor parameters are its hyperparameters).

    It is fitted on a ``coldbridge_trainer.strategies.TrainContext`` (the data, the base
    pipeline and the valid cold users), then returns its bundle :meth:`parts`, its manifest
    :meth:`config` and a torch/numpy :meth:`reference` that the exported parts must
    reproduce (export parity). Graph helpers: :mod:`coldbridge_plugins.graph`.
    """

    name: ClassVar[str]

    @abstractmethod
    def fit(self, ctx: TrainContext) -> None:
        """Fit on ``ctx`` (deterministic given ``ctx.seed``)."""

    @abstractmethod
    def parts(self) -> dict[str, onnx.ModelProto | np.ndarray]:
        """Bundle parts: ``{part: ONNX model or array}`` (``transfer`` for one-graph ones)."""

    @abstractmethod
    def reference(self, users: ColdUsers) -> np.ndarray:
        """Torch/numpy output for ``users``; the exported parts must reproduce it."""

    def config(self) -> dict[str, Any]:
        """Free-form manifest ``config`` of the strategy (chosen hyperparameters...)."""
        return {}


def pad_histories(
    histories: Sequence[np.ndarray], max_len: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad histories (most recent ``max_len`` kept) -> ``(item_indices, mask)``.

    At least one column, so an empty history is one masked-out slot.
    """
    length = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    idx = np.zeros((len(histories), length), dtype=np.int64)
    mask = np.zeros((len(histories), length), dtype=np.float32)
    for row, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-max_len:]
        idx[row, : len(h)], mask[row, : len(h)] = h, 1.0
    return idx, mask


class OnnxTransferStrategy(TransferStrategy):
    """A strategy whose whole server half is one graph, ``strategies/<name>/transfer.onnx``.

    The graph takes any of ``source_embedding`` float32 ``[B, d_s]``, ``item_indices``
    int64 ``[B, L]`` and ``mask`` float32 ``[B, L]`` and returns ``output``.
    """

    part: ClassVar[str] = "transfer"
    max_history: ClassVar[int] = 256
    #: users per ``session.run``: item-to-item graphs (``itemmap``, ``kernelmap``, the EASE
    #: steps) have ``[B, history, width]`` intermediates, and onnxruntime's arena keeps the
    #: largest it has seen for the session's lifetime, so big batches are scored in chunks
    chunk: ClassVar[int] = 32

    def transfer(self, users: ColdUsers) -> np.ndarray:
        if len(users) > self.chunk:
            parts = [
                self._run(
                    ColdUsers(
                        users.source_embeddings[start : start + self.chunk],
                        users.histories[start : start + self.chunk],
                    )
                )
                for start in range(0, len(users), self.chunk)
            ]
            return np.concatenate(parts, axis=0)
        return self._run(users)

    def _run(self, users: ColdUsers) -> np.ndarray:
        session = self.parts.models[self.part]
        names = {i.name for i in session.get_inputs()}
        feeds: dict[str, np.ndarray] = {}
        if "source_embedding" in names:
            feeds["source_embedding"] = np.ascontiguousarray(
                users.source_embeddings, dtype=np.float32
            )
        if "item_indices" in names or "mask" in names:
            idx, mask = pad_histories(users.histories, self.max_history)
            feeds.update({k: v for k, v in (("item_indices", idx), ("mask", mask)) if k in names})
        return np.asarray(session.run(["output"], feeds)[0], dtype=np.float32)
