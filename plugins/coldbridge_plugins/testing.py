"""The contract every registered strategy must pass (River's ``yield_checks`` pattern).

:func:`yield_checks` yields check functions ``check(strategy, harness)``; the test suite
(``tests/test_strategies.py``) parametrises over ``(strategy, check)`` for every registered
strategy. The :class:`Harness` supplies what needs the trainer (torch) or a server: the
checks themselves only use numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from coldbridge_plugins.base import ColdUsers, TransferStrategy

__all__ = ["Check", "Fitted", "Harness", "yield_checks"]

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
    np.testing.assert_allclose(fitted.server.transfer(users), fitted.reference(users),
                               rtol=PARITY_TOL, atol=PARITY_TOL)


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
