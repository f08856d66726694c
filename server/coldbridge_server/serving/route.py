"""Strategy selection and isolation: which transfer strategy serves a user, safely.

* **Selection.** A request may name a strategy (``RecommendRequest.strategy``); otherwise,
  when ``strategy_weights`` are configured, a sticky A/B split assigns the user by the
  sha256 of their id (the same user always lands in the same arm); otherwise the default
  (``Settings.strategy``, else the bundle's ``strategy``).
* **Isolation.** A strategy that raises, or returns the wrong shape or non-finite values,
  does not fail the request: :meth:`StrategyRouter.run` returns ``None`` (the caller serves
  the popularity fallback with reason ``strategy_error``), the error is counted in
  ``coldbridge_strategy_errors_total{strategy}`` and logged, and the server keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from coldbridge_plugins import ColdUsers, StrategyParts, TransferStrategy, build_strategies

from coldbridge_server.bundle import Bundle
from coldbridge_server.errors import ConfigError, InvalidRequestError
from coldbridge_server.limits import shorten
from coldbridge_server.observability.metrics import Metrics

__all__ = ["StrategyRouter", "parse_weights"]

logger = logging.getLogger(__name__)


def parse_weights(raw: str) -> dict[str, float]:
    """``"itemmap=0.7,emcdr=0.3"`` -> ``{"itemmap": 0.7, "emcdr": 0.3}`` (empty -> ``{}``).

    Raises
    ------
    ConfigError
        On a malformed entry or a negative / all-zero weight.
    """
    weights: dict[str, float] = {}
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        name, sep, value = entry.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ConfigError("strategy_weights", f"expected name=weight, got {entry!r}") from None
        if not sep or not name.strip() or not weights[name.strip()] >= 0:
            raise ConfigError("strategy_weights", f"expected name=weight >= 0, got {entry!r}")
    if weights and sum(weights.values()) <= 0:
        raise ConfigError("strategy_weights", "weights must not all be zero")
    return weights


class StrategyRouter:
    """The bundle's strategies (server halves), selection and isolation.

    Parameters
    ----------
    bundle
        The loaded bundle (its ``strategies`` section and its default ``strategy``).
    registry
        ``{name: strategy class}`` of the registered plugins.
    bridge
        The bundle's top-level bridge (the legacy EMCDR path of bundles without parts).
    default
        Default strategy name ("" = the bundle's).
    weights
        A/B weights ``{name: weight}`` (empty = no split).

    Raises
    ------
    ConfigError
        If the default or a weighted strategy is neither in the bundle nor servable.
    """

    def __init__(
        self,
        bundle: Bundle,
        registry: Mapping[str, type[TransferStrategy]],
        bridge: Callable[[np.ndarray], np.ndarray],
        *,
        default: str = "",
        weights: Mapping[str, float] | None = None,
        metrics: Metrics | None = None,
        threads: int = 1,
    ) -> None:
        self.bundle, self.metrics = bundle, metrics
        specs = {n: s for n, s in bundle.strategies.items() if n in registry}
        common: dict[str, Any] = dict(
            bridge=bridge,
            target_item_embeddings=bundle.target_item_embeddings,
            target_item_bias=bundle.target_item_bias,
        )
        self.instances: dict[str, TransferStrategy] = build_strategies(
            specs, registry, threads=threads, **common
        )
        if bundle.strategy in registry and bundle.strategy not in self.instances:
            parts = StrategyParts(peers=self.instances, **common)
            self.instances[bundle.strategy] = registry[bundle.strategy](parts)
        self.default = default or bundle.strategy
        self.weights = dict(weights or {})
        for name in (self.default, *self.weights):
            if name not in self.instances:
                raise ConfigError(
                    "strategy",
                    f"bundle {bundle.version} cannot serve strategy {name!r}; "
                    f"servable: {sorted(self.instances)}, registered: {sorted(registry)}",
                )
        self._arms = [(n, w) for n, w in self.weights.items() if w > 0]
        self._total = sum(w for _, w in self._arms)

    def choose(self, user_id: str, requested: str = "") -> str:
        """The strategy serving ``user_id``: requested, else sticky A/B arm, else default.

        Raises
        ------
        InvalidRequestError
            If ``requested`` is not servable by this bundle.
        """
        if requested:
            if requested not in self.instances:
                raise InvalidRequestError(
                    "strategy",
                    f"unknown strategy {shorten(requested)}; available: {sorted(self.instances)}",
                )
            return requested
        if not self._arms:
            return self.default
        digest = hashlib.sha256(user_id.encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * self._total
        for name, weight in self._arms:
            if point < weight:
                return name
            point -= weight
        return self._arms[-1][0]

    def output(self, name: str) -> str:
        """``"embedding"`` or ``"scores"``."""
        return self.instances[name].output

    def run(self, name: str, users: ColdUsers) -> np.ndarray | None:
        """``transfer`` of strategy ``name`` (float32), or None if it failed (counted, logged)."""
        strategy = self.instances[name]
        embedding = strategy.output == "embedding"
        width = self.bundle.target_dim if embedding else len(self.bundle.target_item_ids)
        try:
            out = np.asarray(strategy.transfer(users), dtype=np.float32)
            if out.shape != (len(users), width):
                raise ValueError(f"returned shape {out.shape}, expected {(len(users), width)}")
            if not np.all(np.isfinite(out)):
                raise ValueError("returned non-finite values")
        except Exception:  # noqa: BLE001 - isolation: any plugin failure -> fallback
            logger.exception("strategy %r failed; serving the fallback", name)
            if self.metrics is not None:
                self.metrics.count_strategy_error(name)
            return None
        out.setflags(write=False)
        return out
