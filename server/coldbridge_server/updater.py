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
  bridged source embedding, folded-in prior, or zeros). A run of target events is learned
  with one :meth:`ColdStartEmbeddings.learn_many`, which gives the same weights bit for bit
  (each user's events in order, users side by side), so live grouping and replay agree.

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
from typing import Any

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
        self.apply_many((event,), now, evaluate=evaluate)
        state = self.states.get(event.user_id)
        assert state is not None
        return state

    def apply_many(self, events: Iterable[Event], now: float, *,
                   evaluate: bool = True) -> list[int]:
        """Apply ``events`` in order and publish the new states; return each event's
        ``online_updates`` of its user after it.

        The result equals :meth:`apply` one event at a time, but a user's new
        :class:`UserState` is built and published once per call, after their last event of
        a run of consecutive target events of ``events`` (the writer acknowledges a group only
        after this returns); the run is learned with one ``learn_many``. A source event ends
        the run. The prequential checks of the sampled events are scored together at the end.
        """
        updates: list[int] = []
        cut = self._cut if evaluate else 0
        run: list[Event] = []
        for event in events:  # runs of target events are learned together, source events alone
            if event[3] is _SOURCE:
                if run:
                    self._apply_targets(run, now, cut, updates)
                    run = []
                updates.append(self._apply_source(event, now).online_updates)
            else:
                run.append(event)
        if run:
            self._apply_targets(run, now, cut, updates)
        self.flush_prequential()
        return updates

    def _apply_targets(self, events: list[Event], now: float, cut: int,
                       updates: list[int]) -> None:
        """Learn from target events (in order) with one :meth:`learn_many`, publish each
        user once, append each event's ``online_updates`` to ``updates``."""
        # the stage rules, inlined; a user's pending state (see _begin) lives in ``work``
        work: dict[str, list] = {}
        uids: list[str] = []
        items: list[int] = []
        ys: list[Any] = []
        sampled: list[tuple[str, np.ndarray | None, int, int]] = []
        index, crc32, begin = self.bundle.target_item_index, zlib.crc32, self._begin
        record = updates.append
        for event_id, uid, item_id, _, kind, value, _ in events:
            item = index[item_id]
            pending = work.get(uid)
            if pending is None:
                pending = work[uid] = begin(uid)
            if cut and crc32(event_id.encode("utf-8")) < cut:
                # the vector served right before this event: known for a user's first event
                # here, else captured by learn_many
                sampled.append((self._stage_before(pending, uid), pending[6], item, len(uids)))
            uids.append(uid)
            items.append(item)
            ys.append(True if kind is _IMPLICIT else float(value))
            pending[2] += 1
            pending[3] += 1
            pending[4].add(item)
            pending[6] = None
            record(pending[3])
        capture = {j for _, served, _, j in sampled if served is None}
        before = self.learner.learn_many(uids, items, ys, capture=capture)
        for stage, served, item, j in sampled:
            if served is None:
                served = before[j].astype(np.float32)
            self._samples.append((stage, served, item))
        publish = self._publish
        for uid, pending in work.items():
            publish(uid, pending, now)

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
            items = np.array([samples[n][2] for n in chunk])
            in_top = (np.asarray(top) == items[:, None]).any(axis=1).tolist()
            for n, hit in zip(chunk, in_top, strict=True):
                hits[n] = hit
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

    def _apply_source(self, event: Event, now: float) -> UserState:
        old = self.states.get(event.user_id)
        state = old if old is not None else UserState(event.user_id)
        new = self._fold_in(state, event, now)
        self.states.publish(new)
        if old is not None:
            self.stages[self.stage(old).value] -= 1
        self.stages[self.stage(new).value] += 1
        return new

    def _begin(self, uid: str) -> list:
        """The pending work state of a user's first target event of a group::

            [old state, prior, target_events, online_updates, items seen in this group (a set),
             bundle target,
             served vector (None: compute from the learner), old state's prior]

        Takes the user out of their stage count (:meth:`_publish` adds them back).
        """
        b = self.bundle
        old = self.states.get(uid)
        bundle_target = uid in b.target_user_index
        if old is None:
            prior = self.resolver.bundle_prior(uid)
            pending = [old, prior, 0, 0, set(), bundle_target, prior, None]
        else:
            prior = old.prior if old.prior is not None else self.resolver.bundle_prior(uid)
            served = old.vector if old.vector is not None else prior
            pending = [old, prior, old.target_events, old.online_updates, set(),
                       bundle_target, served, old.prior]
            self.stages[self._stage_before(pending, uid)] -= 1
        if prior is not None:
            self.learner.u_priors[uid] = prior
        return pending

    def _stage_before(self, pending: list, uid: str) -> str:
        """Stage value of a user with ``pending`` work state (see ``_begin``) before its next event."""
        events = pending[2]
        if pending[5] or events >= self.resolver.warm_threshold:
            return _WARM
        if events > 0:
            return _WARMING
        if pending[7] is not None or uid in self.bundle.source_user_index:
            return _TRANSFERRED
        return _NEW

    def _publish(self, uid: str, pending: list, now: float) -> None:
        old, prior, events, updates, seen, bundle_target = pending[:6]
        delta = self.learner.u_deltas[uid].copy()
        vector = (delta if prior is None else prior + delta).astype(np.float32)
        vector.setflags(write=False)
        if old is None:
            new = UserState(uid, (), None, delta, vector, 0, events, updates, now,
                            frozenset(seen))
        else:
            new = UserState(uid, old.source_history, old.prior, delta, vector,
                            old.source_events, events, updates, now, old.seen | seen)
        self.states.publish(new)
        warm = bundle_target or events >= self.resolver.warm_threshold
        self.stages[_WARM if warm else _WARMING] += 1

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
