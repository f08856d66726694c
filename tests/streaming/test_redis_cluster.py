"""The Redis store on a real 3-primary Redis Cluster (``redis+cluster://``): each
partition's keys share one slot (hash tag), so the Lua scripts run; two replicas ingest and
answer Recommend, and agree with the serial replay of the log."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from conftest import TinyBundle
from eventlib import batch, event
from redis.cluster import RedisCluster
from redislib import log_events, redis_cluster, serial_replay, server_processes

USERS = [f"n{i}" for i in range(12)]


def test_two_replicas_over_a_three_primary_cluster(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    with redis_cluster(tmp_path) as nodes:
        url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
        settings = dict(store="redis", redis_url=url, redis_partitions="6", warm_threshold="3")
        with server_processes(tiny_bundle.path, tmp_path, 2, **settings) as (a, b):
            stubs = [events_pb2_grpc.EventsStub(s.channel) for s in (a, b)]
            for n in range(20):  # alternate the replicas, same users on both
                events = [event(f"e{n}-{k}", USERS[(n + k) % 12], f"v{n + k}") for k in range(6)]
                assert stubs[n % 2].IngestEvents(batch(n + 1, *events)).accepted == 6
            client = RedisCluster(host="127.0.0.1", port=nodes[0].port)
            try:
                slots = {client.keyslot(f"cb:{{p{p}}}:log") for p in range(6)}
                owners = {client.get_node_from_key(f"cb:{{p{p}}}:log").name for p in range(6)}
                streams = log_events(client, 6)
            finally:
                client.close()
            assert len(slots) == 6 and len(owners) > 1  # the partitions spread over primaries
            assert sum(len(s) for s in streams) == 120
            replay = serial_replay(tiny_bundle.path, streams, warm_threshold=3)
            for replica in (a, b):
                rec = recommender_pb2_grpc.RecommenderStub(replica.channel)
                events_stub = events_pb2_grpc.EventsStub(replica.channel)
                for user in USERS:
                    expected = replay.get(user)
                    assert expected is not None
                    deadline = time.monotonic() + 30  # the follower polls the cluster
                    while True:
                        state = events_stub.GetUserState(epb.GetUserStateRequest(user_id=user))
                        if state.target_events == expected.target_events:
                            break
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                    reply = rec.Recommend(pb.RecommendRequest(user_id=user, k=5))
                    want = tiny_bundle.ranking(expected.vector)[:5]
                    assert [i.item_id for i in reply.items] == want
                    items = [f"v{i}" for i in range(50)]
                    scores = rec.Score(pb.ScoreRequest(user_id=user, item_ids=items))
                    np.testing.assert_allclose(
                        [i.score for i in scores.items],
                        tiny_bundle.all_scores(expected.vector),
                        rtol=1e-5,
                        atol=1e-5,
                    )
