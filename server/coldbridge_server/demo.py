"""A tiny client that shows what the server answers for each kind of user.

Used by ``coldbridge serve --demo``; also handy as an example client::

    from coldbridge_server.demo import print_samples
    print_samples("127.0.0.1:50051", load_bundle("bundles/2026..."))
"""

from __future__ import annotations

import sys
from typing import TextIO

import grpc
from coldbridge.v1 import recommender_pb2, recommender_pb2_grpc

from coldbridge_server.bundle import Bundle

__all__ = ["print_samples", "sample_requests"]


def sample_requests(
    bundle: Bundle, k: int = 5
) -> list[tuple[str, recommender_pb2.RecommendRequest]]:
    """One labelled Recommend request per kind of user the bundle allows.

    The kinds are: a warm target user, a user known only in the source domain, a brand-new
    user carrying a source history, and a brand-new user without one.
    """
    requests = []
    if bundle.target_user_ids:
        user = bundle.target_user_ids[0]
        requests.append(("warm target user", recommender_pb2.RecommendRequest(user_id=user, k=k)))
    source_only = [u for u in bundle.source_user_ids if u not in bundle.target_user_index]
    if source_only:
        request = recommender_pb2.RecommendRequest(user_id=source_only[0], k=k)
        requests.append(("user known only in the source domain", request))
    new_user = "demo:new-user"
    while new_user in bundle.target_user_index or new_user in bundle.source_user_index:
        new_user += "'"
    history = list(bundle.source_item_ids[:3])
    requests.append(
        (
            "new user with a source history",
            recommender_pb2.RecommendRequest(user_id=new_user, k=k, source_item_ids=history),
        )
    )
    requests.append(("brand-new user", recommender_pb2.RecommendRequest(user_id=new_user, k=k)))
    return requests


def print_samples(
    address: str,
    bundle: Bundle,
    *,
    k: int = 5,
    file: TextIO | None = None,
    timeout: float = 10.0,
) -> None:
    """Call Recommend on ``address`` for each sample user and print readable answers.

    Parameters
    ----------
    address
        ``host:port`` of a running server.
    bundle
        The bundle the server serves (used to pick the sample users).
    k
        Items per answer.
    file
        Where to print (default ``sys.stdout``).
    timeout
        Per-call deadline in seconds.
    """
    out = file if file is not None else sys.stdout
    with grpc.insecure_channel(address) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        for label, request in sample_requests(bundle, k):
            reply = stub.Recommend(request, timeout=timeout)
            provenance = recommender_pb2.Provenance.Name(reply.provenance)
            history = f" history={list(request.source_item_ids)}" if request.source_item_ids else ""
            reason = f" ({reply.fallback_reason})" if reply.fallback_reason else ""
            print(
                f"{label} {request.user_id!r}{history}: {provenance}{reason}, "
                f"model {reply.model_version} [{reply.strategy}]",
                file=out,
            )
            for rank, item in enumerate(reply.items, start=1):
                print(
                    f"  {rank:>3}. {bundle.target_domain} item {item.item_id:<12} "
                    f"score {item.score:.4f}",
                    file=out,
                )
    out.flush()
