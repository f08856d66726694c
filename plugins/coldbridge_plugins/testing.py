"""The contract every strategy must pass, shipped so that a plugin author can run it.

River's ``yield_checks`` pattern: :func:`yield_checks` yields check functions
``check(strategy, harness)``; a test suite parametrises over ``(strategy, check)``. The
:class:`Harness` supplies what needs the trainer (torch) or a server; the checks themselves
use numpy only. :class:`StrategyHarness` is the real one: small synthetic data, real fits
through ``coldbridge_trainer``, a real gRPC server (it needs the ``server`` and ``trainer``
extras, imported when it is built). :func:`check_strategy` runs everything on one class.

Examples
--------
In a plugin's test suite (pytest)::

    import pytest
    from coldbridge_plugins.testing import StrategyHarness, yield_checks
    from my_pkg import MyStrategy

    @pytest.fixture(scope="module")
    def harness(tmp_path_factory):
        return StrategyHarness.for_strategy(MyStrategy, tmp_path_factory.mktemp("contract"))

    @pytest.mark.parametrize("check", list(yield_checks(MyStrategy)),
                             ids=lambda check: check.__name__)
    def test_contract(check, harness):
        check(MyStrategy, harness)

or in one call: ``check_strategy(MyStrategy)``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coldbridge_plugins.base import ColdUsers, TransferStrategy

if TYPE_CHECKING:
    from coldbridge_trainer.config import TrainConfig
    from coldbridge_trainer.strategies import FittedStrategy
    from coldbridge_trainer.synth import SynthConfig

__all__ = [
    "PARITY_TOL",
    "Check",
    "Fitted",
    "Harness",
    "StrategyHarness",
    "base_config",
    "check_batch_independent",
    "check_deterministic_with_seed",
    "check_export_parity",
    "check_finite",
    "check_output_shape_and_dtype",
    "check_server_round_trip",
    "check_strategy",
    "synth_config",
    "yield_checks",
]

PARITY_TOL = 1e-4


class Fitted(Protocol):
    """A fitted strategy: its server half (over exported parts) and trainer reference."""

    server: TransferStrategy | None

    def reference(self, users: ColdUsers) -> np.ndarray: ...


class Harness(Protocol):
    """Fits strategies on small data and runs them behind a real server."""

    target_dim: int
    n_target_items: int

    def users(self) -> ColdUsers: ...

    def fit(self, name: str, seed: int) -> Fitted: ...

    def round_trip(self, name: str) -> tuple[list[str], list[str], str]:
        """(served top-k item ids, expected top-k from the server half, served strategy)."""
        ...


Check = Callable[[type[TransferStrategy], Harness], None]


def _output(strategy: type[TransferStrategy], harness: Harness, seed: int = 0) -> np.ndarray:
    fitted = harness.fit(strategy.name, seed)
    assert fitted.server is not None, "the server half was not built"
    return fitted.server.transfer(harness.users())


def check_output_shape_and_dtype(strategy: type[TransferStrategy], harness: Harness) -> None:
    """``[B, d_t]`` for embedding strategies, ``[B, N_t]`` for score strategies, float32."""
    out = _output(strategy, harness)
    width = harness.target_dim if strategy.output == "embedding" else harness.n_target_items
    assert out.shape == (len(harness.users()), width), (out.shape, width)
    assert out.dtype == np.float32, out.dtype


def check_finite(strategy: type[TransferStrategy], harness: Harness) -> None:
    """No NaN or infinity, including for a user with an empty source history."""
    users = harness.users()
    empty = ColdUsers(users.source_embeddings[:1], [np.zeros(0, np.int64)])
    fitted = harness.fit(strategy.name, 0)
    assert fitted.server is not None
    assert np.all(np.isfinite(fitted.server.transfer(users)))
    assert np.all(np.isfinite(fitted.server.transfer(empty)))


def check_deterministic_with_seed(strategy: type[TransferStrategy], harness: Harness) -> None:
    """Fitting twice with the same seed gives bit-identical outputs."""
    first = harness.fit(strategy.name, 0)
    again = harness.fit(strategy.name, -1)  # -1: refit with seed 0, bypassing any cache
    assert first.server is not None and again.server is not None
    users = harness.users()
    np.testing.assert_array_equal(first.server.transfer(users), again.server.transfer(users))


def check_batch_independent(strategy: type[TransferStrategy], harness: Harness) -> None:
    """A user's output does not depend on who else is in the batch (padding included)."""
    fitted, users = harness.fit(strategy.name, 0), harness.users()
    assert fitted.server is not None
    batch = fitted.server.transfer(users)
    for i in (0, len(users) - 1):
        one = ColdUsers(users.source_embeddings[i : i + 1], [users.histories[i]])
        np.testing.assert_allclose(fitted.server.transfer(one)[0], batch[i], rtol=1e-5, atol=1e-5)


def check_export_parity(strategy: type[TransferStrategy], harness: Harness) -> None:
    """The exported parts (onnxruntime) reproduce the trainer's torch/numpy reference."""
    fitted, users = harness.fit(strategy.name, 0), harness.users()
    assert fitted.server is not None
    np.testing.assert_allclose(
        fitted.server.transfer(users), fitted.reference(users), rtol=PARITY_TOL, atol=PARITY_TOL
    )


def check_server_round_trip(strategy: type[TransferStrategy], harness: Harness) -> None:
    """Bundle -> real gRPC server -> ``Recommend`` serves this strategy's ranking."""
    served, expected, name = harness.round_trip(strategy.name)
    assert name == strategy.name
    assert served == expected, (served, expected)


def yield_checks(strategy: type[TransferStrategy]) -> Iterator[Check]:
    """The checks ``strategy`` must pass (all of them, for every strategy)."""
    yield check_output_shape_and_dtype
    yield check_finite
    yield check_deterministic_with_seed
    yield check_batch_independent
    yield check_export_parity
    yield check_server_round_trip


def synth_config() -> SynthConfig:
    """The harness's small synthetic cross-domain dataset (seeded)."""
    from coldbridge_trainer.synth import SynthConfig

    return SynthConfig(
        n_overlap=120,
        n_source_only=30,
        n_target_only=20,
        n_cold=30,
        n_source_items=60,
        n_target_items=50,
        seed=11,
    )


def base_config() -> TrainConfig:
    """The harness's base pipeline: a few epochs of an 8-dimensional model."""
    from coldbridge_trainer.config import TrainConfig

    return TrainConfig(
        dim=8,
        epochs=3,
        bridge_epochs=3,
        bridge_hidden=(16,),
        progress=False,
        seed=2,
        eval_negatives=30,
    )


FAST: dict[str, dict[str, Any]] = {
    "ptupcdr": {"epochs": 3, "patience": 2},
    "distill": {"teacher_epochs": 3, "epochs": 3},
    "cmf": {"epochs": 3},
    # two members and a forced EASE step: the contract checks the whole exported graph
    "softmap": {"epochs": 3, "eval_every": 1, "members": 2, "betas": (1.0,)},
    # both EASE steps forced on, so the contract covers the whole kernelmap graph
    "kernelmap": {"smoothing": (1.0,), "betas": (3.0,)},
}
"""Built-ins' trainer parameters that keep the contract suite fast."""

MEMBERS: dict[str, tuple[str, ...]] = {"fusion": ("itemmap", "emcdr")}
"""Strategies fitted before a blend (its members)."""


class _Fitted:
    def __init__(self, fitted: FittedStrategy) -> None:
        self.fitted, self.server = fitted, fitted.server

    def reference(self, users: ColdUsers) -> np.ndarray:
        return self.fitted.trainer.reference(users)


class StrategyHarness:
    """Implements :class:`Harness`: fits on synthetic data, serves from a real gRPC server.

    Parameters
    ----------
    root
        Scratch folder (data, bundles).
    registry
        ``{name: strategy class}``: the strategies to check and their blend members.
    params
        ``{name: trainer constructor kwargs}`` on top of the built-ins' fast settings.
    """

    def __init__(
        self,
        root: Path,
        registry: Mapping[str, type[TransferStrategy]],
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        from coldbridge_trainer.data import load_dataset
        from coldbridge_trainer.evaluate import make_split
        from coldbridge_trainer.strategies import TrainContext
        from coldbridge_trainer.synth import write_dataset
        from coldbridge_trainer.train import fit

        self.root, self.registry = root, registry
        self.params = {**FAST, **(params or {})}
        self.dataset = load_dataset(write_dataset(root / "data", synth_config()))
        self.result = fit(self.dataset, base_config())
        self.valid = make_split(self.dataset, self.dataset.valid, 30, 1)
        self.target_dim, self.n_target_items = base_config().dim, self.dataset.target.n_items
        self._cache: dict[str, dict[str, FittedStrategy]] = {}
        self._cold = list(dict.fromkeys(self.dataset.test.user_ids))
        self._users = TrainContext(self.result, self.valid).cold_users(self._cold[:10])

    @classmethod
    def for_strategy(cls, strategy: type[TransferStrategy], root: Path) -> StrategyHarness:
        """A harness whose registry is the built-ins plus ``strategy``."""
        from coldbridge_plugins.manager import get_plugin_manager, load_strategies

        registry = load_strategies(get_plugin_manager(load_entrypoints=False))
        return cls(root, {**registry, strategy.name: strategy})

    def users(self) -> ColdUsers:
        """Ten cold test users (stored source embedding and history)."""
        return self._users

    def fit_all(self, name: str, fresh: bool = False) -> dict[str, FittedStrategy]:
        """``name`` and its members, fitted with seed 0 (cached unless ``fresh``)."""
        from coldbridge_trainer.strategies import fit_strategies

        if fresh or name not in self._cache:
            fitted = fit_strategies(
                self.result,
                self.valid,
                [*MEMBERS.get(name, ()), name],
                registry=self.registry,
                params=self.params,
                seed=0,
            )
            if fresh:
                return fitted
            self._cache[name] = fitted
        return self._cache[name]

    def fit(self, name: str, seed: int) -> _Fitted:
        """The fitted strategy (``seed < 0``: refit, bypassing the cache)."""
        return _Fitted(self.fit_all(name, fresh=seed < 0)[name])

    def round_trip(self, name: str) -> tuple[list[str], list[str], str]:
        """Export a bundle serving ``name``, ask a real server for the first cold user."""
        from coldbridge_trainer.train import export_result

        fitted = self.fit_all(name)
        result = dataclasses.replace(self.result, strategies=fitted, default_strategy=name)
        bundle = export_result(result, self.root / "bundles", version=f"v-{name}")
        server = fitted[name].server
        assert server is not None
        one = ColdUsers(self._users.source_embeddings[:1], [self._users.histories[0]])
        top = np.argsort(-server.scores(one)[0], kind="stable")[:10]
        expected = [self.dataset.target.item_ids[i] for i in top]
        served, strategy = _recommend(bundle, self.registry, self._cold[0])
        return served, expected, strategy


def _recommend(
    bundle: Path, registry: Mapping[str, type[TransferStrategy]], user: str
) -> tuple[list[str], str]:
    """(item ids, strategy) of ``Recommend(user, k=10)`` from a real server on ``bundle``."""
    import grpc
    from coldbridge.v1 import recommender_pb2 as pb
    from coldbridge.v1 import recommender_pb2_grpc
    from coldbridge_server import Settings, create_server

    server, port = create_server(
        Settings(bundle_path=str(bundle), host="127.0.0.1", port=0, metrics_port=-1),
        strategies=registry,
    )
    server.start()
    try:
        assert server.wait_until_ready(timeout=30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            reply = stub.Recommend(pb.RecommendRequest(user_id=user, k=10))
    finally:
        server.stop(None).wait()
    assert reply.provenance == pb.PROVENANCE_TRANSFERRED, reply
    return [i.item_id for i in reply.items], reply.strategy


def check_strategy(strategy: type[TransferStrategy], root: Path | None = None) -> None:
    """Run every check of :func:`yield_checks` on ``strategy`` (River's ``check_estimator``).

    Parameters
    ----------
    strategy
        The server half; its trainer half is fitted through :meth:`trainer_class`.
    root
        Scratch folder (default: a temporary one, removed afterwards).

    Raises
    ------
    AssertionError
        From the first check the strategy fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        harness = StrategyHarness.for_strategy(strategy, root or Path(tmp))
        for check in yield_checks(strategy):
            check(strategy, harness)
