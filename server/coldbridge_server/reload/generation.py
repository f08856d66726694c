"""One immutable serving generation, and whether two bundles share an embedding space.

A :class:`Generation` bundles everything an answer needs: the bundle, the engine (scorer,
strategy router, resolver, batcher) and the online updater with the user states it writes.
The servicers hold one reference to the current generation's parts; a request reads that
reference once at its start, so it runs on one bundle from beginning to end, and a hot reload
replaces the reference in one assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import coldbridge_bundle

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import UserStates
from coldbridge_server.serving.engine import RecommendationEngine
from coldbridge_server.streaming.update import OnlineUpdater

__all__ = ["Generation", "same_space"]


@dataclass(frozen=True, eq=False)
class Generation:
    """The parts of the server that belong to one bundle (never changed after the swap)."""

    bundle: Bundle
    engine: RecommendationEngine
    updater: OnlineUpdater

    @property
    def states(self) -> UserStates:
        """The user states this generation's updater writes and its resolver reads."""
        return self.updater.states


def same_space(old: Bundle, new: Bundle) -> bool:
    """Whether the users' online states of ``old`` are valid, bit for bit, for ``new``.

    States depend on the item and user id lists, the dimensions, the encoder history length,
    the strategies and every model and array file except the popularity ranking and the
    history part (sha256 from the manifests). Equal in all of these: the states can be kept;
    otherwise they are rebuilt from the event log.
    """
    a, b = coldbridge_bundle.read_spec(old.path), coldbridge_bundle.read_spec(new.path)
    return _state_inputs(a) == _state_inputs(b)


def _state_inputs(spec: coldbridge_bundle.BundleSpec) -> tuple[Any, ...]:
    exempt = {spec.arrays["target_item_popularity"]}
    if spec.history is not None:
        exempt |= {spec.history.ptr, spec.history.cols, spec.history.weights}
    files = {path: digest for path, digest in spec.files.items() if path not in exempt}
    strategies = {name: s.to_dict() for name, s in spec.strategies.items()}
    return (
        spec.items,
        spec.users,
        spec.embedding_dim,
        spec.encoder_max_history,
        spec.strategy,
        strategies,
        files,
    )
