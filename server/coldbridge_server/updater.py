"""Apply one validated event to its user's state: source fold-in or River learning.

:class:`OnlineUpdater` is deterministic: the same events in the same (log) order produce the
same states, bit for bit, which is what makes snapshot + log replay exact. It is called by the
single ingest writer (and by start-up recovery), never concurrently.

* **Source event** from a user the bundle does not know: the item joins the user's folded-in
  source history (the last ``encoder_max_history`` items), which the bundle's source encoder
  and bridge turn into the user's new prior, i.e. the same fold-in as a Recommend request
  carrying ``source_item_ids``. A user new everywhere becomes TRANSFERRED. Users the bundle
  knows only have the event counted.
* **Target event**: first the prequential check (was the item in the top-``k`` the user was
  being served?) on a deterministic sample of the events, then
  :meth:`ColdStartEmbeddings.learn_one` with the user's prior (trained target embedding,
  bridged source embedding, folded-in prior, or zeros).

The prequential hit rate is a monitoring signal, and scoring every item for every event costs
more than learning from it; so only events whose ``crc32(event_id)`` falls in the first
``prequential_sample_rate`` of the 32-bit range are evaluated (the same events in every process
and on every replay; 1.0 = all). The check of a sampled event uses the vector the user was
served right before that event (exact); the top-K of all sampled events of a group are
computed together, by the serving model's top-K (:meth:`OnnxScorer.topk`, single-threaded
onnxruntime), in :meth:`OnlineUpdater.flush_prequential` before the group is acknowledged.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
from river import metrics

from coldbridge_server.events import Domain, Event, Kind
from coldbridge_server.lifecycle import Stage, UserState, stage_of
from coldbridge_server.online import ColdStartEmbeddings
from coldbridge_server.resolver import UserResolver

__all__ = ["OnlineUpdater", "prequential_sampled"]

_SOURCE, _IMPLICIT = Domain.SOURCE, Kind.IMPLICIT
_NEW, _TRANSFERRED = Stage.NEW.value, Stage.TRANSFERRED.value
_WARMING, _WARM = Stage.WARMING.value, Stage.WARM.value
_CHUNK = 256  # sampled events per top-K call (bounds its memory)


def _cut(rate: float) -> int:
    return int(rate * 2**32)


def prequential_sampled(event_id: str, rate: float) -> bool:
    """Whether the event ``event_id`` is in the prequential sample at ``rate`` (deterministic)."""
    return zlib.crc32(event_id.encode("utf-8")) < _cut(rate)


class OnlineUpdater:
    """Turn events into new :class:`UserState` objects and publish them.

    Parameters
    ----------
    resolver
        The serving resolver (its bundle, bridge and published states are used).
    learner
        The River learner over the bundle's target item embeddings.
    prequential_k
        K of the prequential hit rate.
    prequential_sample_rate
        Fraction of the target events evaluated prequentially, chosen by ``crc32(event_id)``
        (1.0 = every event, 0 = none).
    observe
        Optional ``observe(strategy, stage, hit)`` per prequentially evaluated event.

    Attributes
    ----------
    prequential : dict
        ``(strategy, stage) -> river.metrics.Accuracy`` of "item was in the top-K" (the
        prequential hit rate), over the sampled events applied by this process (replay
        excluded).
    stages : collections.Counter
        Number of users with online state per stage value.
    """

    def __init__(self, resolver: UserResolver, learner: ColdStartEmbeddings, *,
                 prequential_k: int = 10, prequential_sample_rate: float = 1.0,
                 observe: Callable[[str, str, bool], None] | None = None) -> None:
        self.resolver = resolver
        self.bundle = resolver.bundle
        self.states = resolver.states
        self.learner = learner
        self.k = prequential_k
        self.sample_rate = prequential_sample_rate
        self.observe = observe
        popular = np.argsort(-self.bundle.target_item_popularity, kind="stable")
        self._popular_top = frozenset(popular[:prequential_k].tolist())
        self.prequential: dict[tuple[str, str], metrics.Accuracy] = {}
        self.stages: Counter[str] = Counter()
        self._cut = _cut(prequential_sample_rate)
        self._samples: list[tuple[str, np.ndarray | None, int]] = []

    def apply(self, event: Event, now: float, *, evaluate: bool = True) -> UserState:
        """Apply ``event`` (validated) to its user, publish and return the new state."""
        state = self._apply(event, now, evaluate)
        self.flush_prequential()
        return state

    def apply_many(self, events: Iterable[Event], now: float, *,
                   evaluate: bool = True) -> list[UserState]:
        """Apply ``events`` in order (as :meth:`apply` one by one); return the new states.

        The prequential checks of the sampled events are scored together at the end.
        """
        apply = self._apply
        states = [apply(event, now, evaluate) for event in events]
        self.flush_prequential()
        return states

    def flush_prequential(self) -> None:
        """Check the pending sampled events and record their hits (in event order).

        The top-K comes from the serving model (``OnnxScorer.topk``, what Recommend serves),
        a batch of vectors per call; users without a vector are checked against popularity.
        """
        samples, self._samples = self._samples, []
        if not samples:
            return
        hits = [item in self._popular_top for _, _, item in samples]
        rows = [n for n, (_, vector, _) in enumerate(samples) if vector is not None]
        for lo in range(0, len(rows), _CHUNK):
            chunk = rows[lo:lo + _CHUNK]
            _, top = self.resolver.scorer.topk(np.stack([samples[n][1] for n in chunk]), self.k)
            for n, served in zip(chunk, top.tolist(), strict=True):
                hits[n] = samples[n][2] in served
        strategy = self.bundle.strategy
        for (stage, _, _), hit in zip(samples, hits, strict=True):
            key = (strategy, stage)
            accuracy = self.prequential.get(key)
            if accuracy is None:
                accuracy = self.prequential[key] = metrics.Accuracy()
            accuracy.update(True, hit)
            if self.observe is not None:
                self.observe(strategy, stage, hit)

    def restore(self, state: UserState) -> None:
        """Publish a state loaded from a snapshot (and hand its residual to the learner)."""
        if state.delta is not None:
            self.learner.u_deltas[state.user_id] = state.delta.copy()
            self.learner.u_updates[state.user_id] = state.target_events
            state = dataclasses.replace(state, vector=_vector(self._prior(state), state.delta))
        self.states.publish(state)
        self.stages[self.stage(state).value] += 1

    def stage(self, state: UserState) -> Stage:
        """Lifecycle stage of a user with online state ``state``."""
        uid = state.user_id
        return stage_of(state, bundle_target=uid in self.bundle.target_user_index,
                        has_source=uid in self.bundle.source_user_index,
                        warm_threshold=self.resolver.warm_threshold)

    def _prior(self, state: UserState) -> np.ndarray | None:
        return state.prior if state.prior is not None else self.resolver.bundle_prior(
            state.user_id)

    def _apply(self, event: Event, now: float, evaluate: bool) -> UserState:
        if event.domain is _SOURCE:
            old = self.states.get(event.user_id)
            state = old if old is not None else UserState(event.user_id)
            new = self._fold_in(state, event, now)
            self.states.publish(new)
            if old is not None:
                self.stages[self.stage(old).value] -= 1
            self.stages[self.stage(new).value] += 1
            return new
        return self._learn(event, now, evaluate)

    def _learn(self, event: Event, now: float, evaluate: bool) -> UserState:
        """A target event: the same steps as the stage rules and ``learn_one``, inlined."""
        uid, b = event.user_id, self.bundle
        item = b.target_item_index[event.item_id]
        old = self.states.get(uid)
        bundle_target = uid in b.target_user_index
        warm = self.resolver.warm_threshold
        if old is None:
            prior = self.resolver.bundle_prior(uid)
            served, events, seen = prior, 0, frozenset((item,))
            before = _WARM if bundle_target else (
                _TRANSFERRED if uid in b.source_user_index else _NEW)
        else:
            prior = old.prior if old.prior is not None else self.resolver.bundle_prior(uid)
            served = old.vector if old.vector is not None else prior
            events, seen = old.target_events, old.seen
            if item not in seen:
                seen = seen | {item}
            if bundle_target or events >= warm:
                before = _WARM
            elif events > 0:
                before = _WARMING
            elif old.prior is not None or uid in b.source_user_index:
                before = _TRANSFERRED
            else:
                before = _NEW
            self.stages[before] -= 1
        if evaluate and self._cut and (
                zlib.crc32(event.event_id.encode("utf-8")) < self._cut):
            self._samples.append((before, served, item))
        learner = self.learner
        if prior is not None:
            learner.u_priors[uid] = prior
        learner.learn_one(uid, item, True if event.kind is _IMPLICIT else float(event.value))
        delta = learner.u_deltas[uid].copy()
        vector = (delta if prior is None else prior + delta).astype(np.float32)
        vector.setflags(write=False)
        if old is None:
            new = UserState(uid, (), None, delta, vector, 0, 1, 1, now, seen)
        else:
            new = UserState(uid, old.source_history, old.prior, delta, vector,
                            old.source_events, events + 1, old.online_updates + 1, now, seen)
        self.states.publish(new)
        self.stages[_WARM if bundle_target or events + 1 >= warm else _WARMING] += 1
        return new

    def _fold_in(self, state: UserState, event: Event, now: float) -> UserState:
        counted = dataclasses.replace(state, source_events=state.source_events + 1,
                                      last_update=now)
        uid, b = state.user_id, self.bundle
        if uid in b.source_user_index or uid in b.target_user_index:
            return counted
        keep = b.encoder_max_history
        history = (*state.source_history, b.source_item_index[event.item_id])[-keep:]
        prior = self.resolver.bridge_history(history)
        vector = None if state.delta is None else _vector(prior, state.delta)
        return dataclasses.replace(counted, source_history=history, prior=prior, vector=vector,
                                   online_updates=state.online_updates + 1)


def _vector(prior: np.ndarray | None, delta: np.ndarray) -> np.ndarray:
    vector = (delta if prior is None else prior + delta).astype(np.float32)
    vector.setflags(write=False)
    return vector
