"""Start-up recovery and snapshots: the durable state <-> the published user states.

Recovery loads the store's snapshot (when it belongs to the served bundle) and replays the
log after it through the updater, without prequential evaluation; the updater is
deterministic, so the result equals the state before the restart, bit for bit. A snapshot
of another bundle is ignored and the whole log is replayed (events of items the new bundle
does not know are skipped), then a full snapshot replaces the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import validate

__all__ = ["recover", "snapshot"]

logger = logging.getLogger(__name__)


def recover(
    store: EventStore,
    updater: OnlineUpdater,
    on_snapshot_error: Callable[[Exception, bool], None] | None = None,
) -> int:
    """Load the snapshot and replay the log after it; return the number of replayed events.

    If writing the snapshot after the replay fails and ``on_snapshot_error`` is given, it is
    called with the error and whether the snapshot had to replace all states, instead of
    raising (the recovered states are in memory, the log is intact).
    """
    bundle = updater.bundle
    version, seq = store.snapshot_info()
    same_bundle = version == bundle.version
    if same_bundle:
        for state in store.load_states():
            updater.restore(state)
    else:
        seq = 0  # no snapshot, or one of another bundle: replay everything
    replayed = 0
    for _, event, received_at in store.received_after(seq):
        if validate(event, bundle) is None:  # items of an older bundle are skipped
            updater.apply(event, received_at, evaluate=False)  # the live apply's time
            replayed += 1
    if replayed or not same_bundle:
        try:
            snapshot(store, updater, None, replace=not same_bundle)
        except Exception as exc:
            if on_snapshot_error is None:
                raise
            on_snapshot_error(exc, not same_bundle)
    logger.info(
        "online state: %d users, %d events replayed after log position %d",
        len(updater.states),
        replayed,
        seq,
    )
    return replayed


def snapshot(
    store: EventStore,
    updater: OnlineUpdater,
    user_ids: Iterable[str] | None,
    *,
    replace: bool = False,
) -> None:
    """Store the current states of ``user_ids`` (``None``: all) as covering the whole log.

    ``replace`` drops every other stored state (a full snapshot).
    """
    if user_ids is None:
        states = list(updater.states)
    else:
        states = [s for uid in user_ids if (s := updater.states.get(uid)) is not None]
    store.write_snapshot(states, store.last_seq, updater.bundle.version, replace=replace)
