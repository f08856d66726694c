"""What serving and streaming both need: user state, lifecycle stage, provenance.

:mod:`coldbridge_server.serving` and :mod:`coldbridge_server.streaming` never import each
other; they meet here. Streaming writes :class:`UserState` objects into :class:`UserStates`,
serving reads them; streaming asks the serving model for priors and top-K lists through the
:class:`ServingModel` protocol, which ``app.py`` fills with the serving resolver.

Stages, first match wins (:func:`stage_of`):

========  ==================================================================================
WARM      a bundle target user, or ``target_events >= warm_threshold``: the target model is
          trusted. For online users it means the online vector is served and the learner no
          longer pulls it back to the bridge prior (the anchor is released).
WARMING   ``0 < target_events < warm_threshold``: bridge prior plus anchored online updates
TRANSFERRED  a source representation exists (bundle source user, request history or streamed
          source events) and no target events: the bridge alone
NEW       nothing known: popularity fallback
========  ==================================================================================

:class:`UserState` objects are immutable; the single ingest writer builds a new one per change
and :class:`UserStates` swaps it in with one dict assignment, so a reader sees either the old
or the new state of a user, never a mix (no torn reads).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "Blend",
    "Provenance",
    "ServingModel",
    "Stage",
    "UserState",
    "UserStates",
    "UserView",
    "stage_of",
]


class Stage(enum.Enum):
    """Lifecycle stage of a user (mirrors the proto enum ``LifecycleStage``)."""

    NEW = "new"
    TRANSFERRED = "transferred"
    WARMING = "warming"
    WARM = "warm"


class Provenance(enum.Enum):
    """Where a user's vector came from (mirrors the proto enum ``Provenance``)."""

    WARM_TARGET = "warm_target"
    TRANSFERRED = "transferred"
    FALLBACK = "fallback"
    ONLINE = "online"


@dataclass(frozen=True, eq=False)
class UserState:
    """What streamed events taught the server about one user (immutable).

    Attributes
    ----------
    source_history
        Source item indices folded in from streamed source events (users the bundle does not
        know only; the last ``encoder_max_history``).
    prior
        Bridge output for ``source_history`` (float32 ``[d_t]``), or ``None``.
    delta
        Online residual over the prior (float64 ``[d_t]``), or ``None`` before any target event.
    vector
        Served target vector ``prior + delta`` (float32, read-only), or ``None`` before any
        target event.
    online_updates
        Changes of the user's vector: one per target event plus one per source fold-in.
    seen
        Target item indices of the user's applied target events.
    """

    user_id: str
    source_history: tuple[int, ...] = ()
    prior: np.ndarray | None = None
    delta: np.ndarray | None = None
    vector: np.ndarray | None = None
    source_events: int = 0
    target_events: int = 0
    online_updates: int = 0
    last_update: float = 0.0
    seen: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Blend:
    """How much a user's own target history counts in their served list (proto ``Blend``).

    Attributes
    ----------
    history_weight
        ``a(n)`` of the served scores ``(1 - a) z(transferred) + a z(history)``; 0 means
        the transferred list alone (no events yet, no history model, or the blend is off).
    target_events
        Applied target-domain events of the user (``n``).
    history_items
        Distinct target items of those events (the history that was scored).
    """

    history_weight: float = 0.0
    target_events: int = 0
    history_items: int = 0


@dataclass(frozen=True)
class UserView:
    """How serving would answer for a user right now (``GetUserState`` reports it)."""

    stage: Stage
    provenance: Provenance
    strategy: str
    blend: Blend = Blend()


def stage_of(
    state: UserState | None, *, bundle_target: bool, has_source: bool, warm_threshold: int
) -> Stage:
    """Apply the lifecycle rules of the module docstring.

    Examples
    --------
    >>> stage_of(None, bundle_target=False, has_source=True, warm_threshold=10)
    <Stage.TRANSFERRED: 'transferred'>
    >>> stage_of(UserState("ann", target_events=3), bundle_target=False, has_source=False,
    ...          warm_threshold=10)
    <Stage.WARMING: 'warming'>
    """
    target_events = 0 if state is None else state.target_events
    if bundle_target or target_events >= warm_threshold:
        return Stage.WARM
    if target_events > 0:
        return Stage.WARMING
    if has_source or (state is not None and state.prior is not None):
        return Stage.TRANSFERRED
    return Stage.NEW


class UserStates:
    """The published user states: written by one thread, read by any number."""

    def __init__(self) -> None:
        self._states: dict[str, UserState] = {}
        self._listeners: tuple[Callable[[UserState], None], ...] = ()

    def subscribe(self, listener: Callable[[UserState], None]) -> None:
        """Call ``listener(state)`` after every publish (in the writer: keep it cheap)."""
        self._listeners = (*self._listeners, listener)

    def get(self, user_id: str) -> UserState | None:
        """The current state of ``user_id`` (``None`` if no event of theirs was applied)."""
        return self._states.get(user_id)

    def publish(self, state: UserState) -> None:
        """Replace the state of ``state.user_id`` atomically."""
        self._states[state.user_id] = state
        for listener in self._listeners:
            listener(state)

    def discard(self, user_id: str) -> UserState | None:
        """Remove the state of ``user_id`` (erasure); return it, or ``None`` if it had none."""
        return self._states.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[UserState]:
        return iter(list(self._states.values()))


class ServingModel(Protocol):
    """What streaming needs from the serving model (``serving.resolve.UserResolver``).

    ``app.py`` passes the serving resolver wherever streaming asks for a ``ServingModel``;
    streaming itself never imports serving.
    """

    @property
    def warm_threshold(self) -> int:
        """Target events after which an online user is WARM."""

    def bundle_prior(self, user_id: str) -> np.ndarray | None:
        """What the bundle alone says about ``user_id`` (float32 ``[d_t]``), or ``None``."""

    def bridge_history(self, source_items: Sequence[int]) -> np.ndarray:
        """Prior of a source history (item indices), float32 ``[d_t]``."""

    def topk(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of the serving model: ``(scores [B, k], indices [B, k])``, best first."""

    def describe(self, user_id: str) -> UserView:
        """How a Recommend call for ``user_id`` would be answered now."""
