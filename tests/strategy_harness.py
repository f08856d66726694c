"""Harness of the strategy contract suite: small synthetic data, real fits, a real server."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from coldbridge_plugins import ColdUsers, TransferStrategy

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, load_dataset
from coldbridge_trainer.evaluate import make_split
from coldbridge_trainer.strategies import FittedStrategy, TrainContext, fit_strategies
from coldbridge_trainer.synth import SynthConfig, write_dataset
from coldbridge_trainer.train import TrainResult, export_result, fit

SYNTH = SynthConfig(n_overlap=120, n_source_only=30, n_target_only=20, n_cold=30,
                    n_source_items=60, n_target_items=50, seed=11)
BASE = TrainConfig(dim=8, epochs=3, bridge_epochs=3, bridge_hidden=(16,), progress=False, seed=2,
                   eval_negatives=30)
FAST = {"ptupcdr": {"epochs": 3, "patience": 2}, "distill": {"teacher_epochs": 3, "epochs": 3},
        "cmf": {"epochs": 3},
        # two members and a forced EASE step: the contract checks the whole exported graph
        "softmap": {"epochs": 3, "eval_every": 1, "members": 2, "betas": (1.0,)},
        # both EASE steps forced on, so the contract covers the whole kernelmap graph
        "kernelmap": {"smoothing": (1.0,), "betas": (3.0,)}}
MEMBERS = {"fusion": ("itemmap", "emcdr")}


class _Fitted:
    def __init__(self, fitted: FittedStrategy) -> None:
        self.fitted, self.server = fitted, fitted.server

    def reference(self, users: ColdUsers) -> np.ndarray:
        return self.fitted.trainer.reference(users)


class StrategyHarness:
    """Implements :class:`coldbridge_plugins.checks.Harness` for a given registry."""

    def __init__(self, root: Path, registry: Mapping[str, type[TransferStrategy]],
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.root, self.registry = root, registry
        self.params = {**FAST, **(params or {})}
        self.dataset: CrossDomainDataset = load_dataset(write_dataset(root / "data", SYNTH))
        self.result: TrainResult = fit(self.dataset, BASE)
        self.valid = make_split(self.dataset, self.dataset.valid, 30, 1)
        self.target_dim, self.n_target_items = BASE.dim, self.dataset.target.n_items
        self._cache: dict[str, dict[str, FittedStrategy]] = {}
        cold = list(dict.fromkeys(self.dataset.test.user_ids))[:10]
        self._users = TrainContext(self.result, self.valid).cold_users(cold)

    def users(self) -> ColdUsers:
        return self._users

    def fit_all(self, name: str, fresh: bool = False) -> dict[str, FittedStrategy]:
        if fresh or name not in self._cache:
            names = [*MEMBERS.get(name, ()), name]
            fitted = fit_strategies(self.result, self.valid, names, registry=self.registry,
                                    params=self.params, seed=0)
            if fresh:
                return fitted
            self._cache[name] = fitted
        return self._cache[name]

    def fit(self, name: str, seed: int) -> _Fitted:
        return _Fitted(self.fit_all(name, fresh=seed < 0)[name])

    def round_trip(self, name: str) -> tuple[list[str], list[str], str]:
        from coldbridge.v1 import recommender_pb2 as pb
        from coldbridge.v1 import recommender_pb2_grpc
        import grpc

        from coldbridge_server import Settings, create_server

        fitted = self.fit_all(name)
        result = dataclasses.replace(self.result, strategies=fitted, default_strategy=name)
        bundle = export_result(result, self.root / "bundles", version=f"v-{name}")
        user = self._users
        cold_id = list(dict.fromkeys(self.dataset.test.user_ids))[0]
        scores = fitted[name].server.scores(  # type: ignore[union-attr]
            ColdUsers(user.source_embeddings[:1], [user.histories[0]]))[0]
        expected = [self.dataset.target.item_ids[i] for i in np.argsort(-scores, kind="stable")[:10]]
        server, port = create_server(Settings(bundle_path=str(bundle), host="127.0.0.1", port=0,
                                              metrics_port=-1), strategies=self.registry)
        server.start()
        try:
            assert server.wait_until_ready(timeout=30)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = recommender_pb2_grpc.RecommenderStub(channel).Recommend(
                    pb.RecommendRequest(user_id=cold_id, k=10))
        finally:
            server.stop(None).wait()
        assert reply.provenance == pb.PROVENANCE_TRANSFERRED, reply
        return [i.item_id for i in reply.items], expected, reply.strategy
