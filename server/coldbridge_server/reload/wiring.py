"""Where the served generation is referenced, and how a swap updates those references."""

from __future__ import annotations

from coldbridge_server.reload.generation import Generation
from coldbridge_server.reload.reloader import BundleReloader
from coldbridge_server.server import ColdbridgeServer
from coldbridge_server.serving.servicer import RecommenderServicer
from coldbridge_server.streaming.servicer import EventsServicer

__all__ = ["attach"]


def attach(
    reloader: BundleReloader,
    *,
    recommender: RecommenderServicer,
    events: EventsServicer,
    server: ColdbridgeServer,
) -> None:
    """Point the servicers and the server at every new generation; start the watch if set.

    Each holder's reference is replaced by one assignment; a Recommend or Score call reads
    ``recommender.engine`` once, at its start.
    """

    def swap(generation: Generation) -> None:
        recommender.engine = generation.engine
        events.serve(generation.bundle, generation.engine.resolver, generation.states)
        server.engine = generation.engine

    reloader.on_swap(swap)
    if reloader.settings.bundle_watch_seconds > 0:
        # grpc's wait_for_termination(timeout) returns True when the timeout passed
        reloader.watch(lambda seconds: not server.wait_for_termination(seconds))
