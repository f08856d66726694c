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
computed together, by the serving model's top-K (:meth:`ServingModel.topk
<coldbridge_server.core.ServingModel.topk>`, single-threaded onnxruntime), in
:meth:`OnlineUpdater.flush_prequential` before the group is acknowledged.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from river import metrics

from coldbridge_server.bundle import Bundle
from coldbridge_server.core import ServingModel, Stage, UserState, UserStates, stage_of
from coldbridge_server.streaming.online import ColdStartEmbeddings
from coldbridge_server.streaming.validate import Domain, Event, Kind

__all__ = ["OnlineUpdater", "prequential_sampled"]

_CHUNK = 256  # sampled events per top-K call (bounds its memory)
_accuracy: Callable[[], metrics.Accuracy] = metrics.Accuracy  # River leaves it untyped
_Sample = tuple[str, np.ndarray | None, int]  # (stage value, served vector, item index)


def _cut(rate: float) -> int:
    return int(rate * 2**32)


def _crc(event_id: str) -> int:
    return zlib.crc32(event_id.encode("utf-8"))


def prequential_sampled(event_id: str, rate: float) -> bool:
    """Whether the event ``event_id`` is in the prequential sample at ``rate`` (deterministic)."""
    return _crc(event_id) < _cut(rate)


class _Work:
    """A user's pending state while a run of their target events is learned (see ``_begin``).

    ``served`` is the vector the user was served before the next event (``None``: ask the
    learner); ``seen`` holds the items of this run only.
    """

    __slots__ = (
        "old",
        "prior",
        "target_events",
        "online_updates",
        "seen",
        "bundle_target",
        "served",
        "old_prior",
    )

    def __init__(
        self, old: UserState | None, prior: np.ndarray | None, bundle_target: bool
    ) -> None:
        self.old, self.prior, self.bundle_target = old, prior, bundle_target
        self.target_events = 0 if old is None else old.target_events
        self.online_updates = 0 if old is None else old.online_updates
        self.seen: set[int] = set()
        self.old_prior = None if old is None else old.prior
        self.served = prior if old is None or old.vector is None else old.vector


class OnlineUpdater:
    """Turn events into new :class:`UserState` objects and publish them.

    Parameters
    ----------
    bundle
        The served bundle.
    model
        The serving model (priors, the bridge over a history, top-K): in the server, the
        serving resolver.
    states
        Where user states are published (the serving side reads them).
    learner
        The River learner over the bundle's target item embeddings.
    warm_threshold
        Target events after which an online user is WARM.
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

    def __init__(
        self,
        bundle: Bundle,
        model: ServingModel,
        states: UserStates,
        learner: ColdStartEmbeddings,
        *,
        warm_threshold: int = 10,
        prequential_k: int = 10,
        prequential_sample_rate: float = 1.0,
        observe: Callable[[str, str, bool], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.model = model
        self.states = states
        self.learner = learner
        self.warm_threshold = warm_threshold
        self.k = prequential_k
        self.sample_rate = prequential_sample_rate
        self.observe = observe
        popular = np.argsort(-self.bundle.target_item_popularity, kind="stable")
        self._popular_top = frozenset(popular[:prequential_k].tolist())
        self.prequential: dict[tuple[str, str], metrics.Accuracy] = {}
        self.stages: Counter[str] = Counter()
        self._cut = _cut(prequential_sample_rate)
        self._samples: list[_Sample] = []

    def apply(self, event: Event, now: float, *, evaluate: bool = True) -> UserState:
        """Apply ``event`` (validated) to its user, publish and return the new state."""
        self.apply_many((event,), now, evaluate=evaluate)
        state = self.states.get(event.user_id)
        assert state is not None
        return state

    def apply_many(
        self, events: Iterable[Event], now: float, *, evaluate: bool = True
    ) -> list[int]:
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
            if event.domain is Domain.SOURCE:
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

    def _apply_targets(self, events: list[Event], now: float, cut: int, updates: list[int]) -> None:
        """Learn from target events (in order) with one :meth:`learn_many`, publish each
        user once, append each event's ``online_updates`` to ``updates``."""
        work: dict[str, _Work] = {}
        uids: list[str] = []
        items: list[int] = []
        ys: list[Any] = []
        sampled: list[tuple[str, np.ndarray | None, int, int]] = []
        index = self.bundle.target_item_index
        for event in events:
            item, uid = index[event.item_id], event.user_id
            pending = work.get(uid)
            if pending is None:
                pending = work[uid] = self._begin(uid)
            if cut and _crc(event.event_id) < cut:
                # the vector served right before this event: known for a user's first event
                # here, else captured by learn_many
                sampled.append((self._stage_before(pending, uid), pending.served, item, len(uids)))
            uids.append(uid)
            items.append(item)
            ys.append(True if event.kind is Kind.IMPLICIT else float(event.value))
            pending.target_events += 1
            pending.online_updates += 1
            pending.seen.add(item)
            pending.served = None
            updates.append(pending.online_updates)
        capture = {j for _, served, _, j in sampled if served is None}
        before = self.learner.learn_many(uids, items, ys, capture=capture)
        for stage, served, item, j in sampled:
            if served is None:
                served = before[j].astype(np.float32)
            self._samples.append((stage, served, item))
        for uid, pending in work.items():
            self._publish(uid, pending, now)

    def flush_prequential(self) -> None:
        """Check the pending sampled events and record their hits (in event order).

        The top-K comes from the serving model (``OnnxScorer.topk``, what Recommend serves),
        a batch of vectors per call; users without a vector are checked against popularity.
        """
        samples, self._samples = self._samples, []
        if not samples:
            return
        hits = [item in self._popular_top for _, _, item in samples]
        rows = [(n, vector) for n, (_, vector, _) in enumerate(samples) if vector is not None]
        for lo in range(0, len(rows), _CHUNK):
            chunk = [n for n, _ in rows[lo : lo + _CHUNK]]
            _, top = self.model.topk(np.stack([v for _, v in rows[lo : lo + _CHUNK]]), self.k)
            items = np.array([samples[n][2] for n in chunk])
            in_top = (np.asarray(top) == items[:, None]).any(axis=1).tolist()
            for n, hit in zip(chunk, in_top, strict=True):
                hits[n] = hit
        strategy = self.bundle.strategy
        for (stage, _, _), hit in zip(samples, hits, strict=True):
            key = (strategy, stage)
            accuracy = self.prequential.get(key)
            if accuracy is None:
                accuracy = self.prequential[key] = _accuracy()
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

    def forget(self, user_id: str) -> bool:
        """Erase ``user_id``: unpublish their state and drop their learner state.

        The user is NEW afterwards (or what the bundle alone says). Other users are not
        affected: each user's learning depends only on their own events (item embeddings are
        fixed, the learning rate is constant). Returns whether the user had online state.
        """
        old = self.states.discard(user_id)
        for table in (self.learner.u_priors, self.learner.u_deltas, self.learner.u_updates):
            table.pop(user_id, None)
        if old is not None:
            self.stages[self.stage(old).value] -= 1
        return old is not None

    def stage(self, state: UserState) -> Stage:
        """Lifecycle stage of a user with online state ``state``."""
        uid = state.user_id
        return stage_of(
            state,
            bundle_target=uid in self.bundle.target_user_index,
            has_source=uid in self.bundle.source_user_index,
            warm_threshold=self.warm_threshold,
        )

    def _prior(self, state: UserState) -> np.ndarray | None:
        if state.prior is not None:
            return state.prior
        return self.model.bundle_prior(state.user_id)

    def _apply_source(self, event: Event, now: float) -> UserState:
        old = self.states.get(event.user_id)
        state = old if old is not None else UserState(event.user_id)
        new = self._fold_in(state, event, now)
        self.states.publish(new)
        if old is not None:
            self.stages[self.stage(old).value] -= 1
        self.stages[self.stage(new).value] += 1
        return new

    def _begin(self, uid: str) -> _Work:
        """The pending state of a user's first target event of a run.

        Takes the user out of their stage count (:meth:`_publish` adds them back).
        """
        old = self.states.get(uid)
        if old is not None and old.prior is not None:
            prior: np.ndarray | None = old.prior
        else:
            prior = self.model.bundle_prior(uid)
        pending = _Work(old, prior, uid in self.bundle.target_user_index)
        if old is not None:
            self.stages[self._stage_before(pending, uid)] -= 1
        if prior is not None:
            self.learner.u_priors[uid] = prior
        return pending

    def _stage_before(self, pending: _Work, uid: str) -> str:
        """Stage value of a user with ``pending`` state before their next event."""
        events = pending.target_events
        if pending.bundle_target or events >= self.warm_threshold:
            return Stage.WARM.value
        if events > 0:
            return Stage.WARMING.value
        if pending.old_prior is not None or uid in self.bundle.source_user_index:
            return Stage.TRANSFERRED.value
        return Stage.NEW.value

    def _publish(self, uid: str, pending: _Work, now: float) -> None:
        old, seen, events = pending.old, pending.seen, pending.target_events
        delta = self.learner.u_deltas[uid].copy()
        vector = _vector(pending.prior, delta)
        if old is None:
            new = UserState(
                uid,
                (),
                None,
                delta,
                vector,
                0,
                events,
                pending.online_updates,
                now,
                frozenset(seen),
            )
        else:
            new = UserState(
                uid,
                old.source_history,
                old.prior,
                delta,
                vector,
                old.source_events,
                events,
                pending.online_updates,
                now,
                old.seen | seen,
            )
        self.states.publish(new)
        warm = pending.bundle_target or events >= self.warm_threshold
        self.stages[(Stage.WARM if warm else Stage.WARMING).value] += 1

    def _fold_in(self, state: UserState, event: Event, now: float) -> UserState:
        counted = dataclasses.replace(state, source_events=state.source_events + 1, last_update=now)
        uid, b = state.user_id, self.bundle
        if uid in b.source_user_index or uid in b.target_user_index:
            return counted
        keep = b.encoder_max_history
        history = (*state.source_history, b.source_item_index[event.item_id])[-keep:]
        prior = self.model.bridge_history(history)
        vector = None if state.delta is None else _vector(prior, state.delta)
        return dataclasses.replace(
            counted,
            source_history=history,
            prior=prior,
            vector=vector,
            online_updates=state.online_updates + 1,
        )


def _vector(prior: np.ndarray | None, delta: np.ndarray) -> np.ndarray:
    vector = (delta if prior is None else prior + delta).astype(np.float32)
    vector.setflags(write=False)
    return vector
