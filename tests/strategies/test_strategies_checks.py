"""The contract checks can fail: broken strategies on a fake harness are caught."""

from __future__ import annotations

import numpy as np
import pytest
from coldbridge_plugins import ColdUsers, TransferStrategy
from coldbridge_plugins import testing as checks

rng = np.random.default_rng(0)
USERS = ColdUsers(rng.normal(size=(4, 3)).astype(np.float32), [np.arange(i) for i in range(4)])


class _Fitted:
    def __init__(self, server: TransferStrategy, reference: np.ndarray | None = None) -> None:
        self.server, self._ref = server, reference

    def reference(self, users: ColdUsers) -> np.ndarray:
        return self.server.transfer(users) if self._ref is None else self._ref


class _Harness:
    target_dim, n_target_items = 3, 5

    def __init__(self, cls: type[TransferStrategy], reference: np.ndarray | None = None) -> None:
        self.cls, self.ref = cls, reference

    def users(self) -> ColdUsers:
        return USERS

    def fit(self, name: str, seed: int) -> _Fitted:
        return _Fitted(self.cls(), self.ref)

    def round_trip(self, name: str) -> tuple[list[str], list[str], str]:
        return ["a"], ["b"], name


class Good(TransferStrategy):
    name, version = "good", "1"

    def transfer(self, users: ColdUsers) -> np.ndarray:
        return np.asarray(users.source_embeddings, np.float32) * 2


class WrongWidth(Good):
    def transfer(self, users: ColdUsers) -> np.ndarray:
        return np.zeros((len(users), 4), np.float32)


class Float64(Good):
    def transfer(self, users: ColdUsers) -> np.ndarray:
        return np.asarray(users.source_embeddings, np.float64)


class NaNOnEmpty(Good):
    def transfer(self, users: ColdUsers) -> np.ndarray:
        out = super().transfer(users)
        out[[len(h) == 0 for h in users.histories]] = np.nan
        return out


class Random(Good):
    def transfer(self, users: ColdUsers) -> np.ndarray:
        return np.random.default_rng().normal(size=(len(users), 3)).astype(np.float32)


class BatchDependent(Good):
    def transfer(self, users: ColdUsers) -> np.ndarray:
        return super().transfer(users) - super().transfer(users).mean(0)


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (WrongWidth, checks.check_output_shape_and_dtype),
        (Float64, checks.check_output_shape_and_dtype),
        (NaNOnEmpty, checks.check_finite),
        (Random, checks.check_deterministic_with_seed),
        (BatchDependent, checks.check_batch_independent),
        (Good, checks.check_server_round_trip),
    ],
)
def test_broken_strategy_fails_its_check(cls: type[TransferStrategy], check: checks.Check) -> None:
    with pytest.raises(AssertionError):
        check(cls, _Harness(cls))


def test_parity_check_catches_a_drifting_export() -> None:
    harness = _Harness(Good, reference=Good().transfer(USERS) + 1e-3)
    with pytest.raises(AssertionError):
        checks.check_export_parity(Good, harness)
    checks.check_export_parity(Good, _Harness(Good))
    checks.check_batch_independent(Good, _Harness(Good))
