"""Shared fixtures: a clean ``COLDBRIDGE_*`` environment and a tiny random bundle."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Drop every COLDBRIDGE_* variable so the developer's shell cannot leak into tests.

    Also run each test from its own empty directory, so relative defaults such as
    ``state_dir = "var/state"`` never touch the checkout or another test's state.
    """
    for name in list(os.environ):
        if name.startswith("COLDBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@dataclass
class TinyBundle:
    """A written bundle plus the raw arrays it was made from (for numpy reference maths)."""

    path: Path
    arrays: dict[str, Any]

    @property
    def version(self) -> str:
        return self.path.name

    def target_vector(self, user_id: str, history: Sequence[str] = ()) -> np.ndarray | None:
        """Reference resolution (docs/ARCHITECTURE.md) in plain numpy; None = fallback."""
        a = self.arrays
        if user_id in a["target_user_ids"]:
            return a["target_user_emb"][a["target_user_ids"].index(user_id)]
        known = [a["source_item_ids"].index(i) for i in history if i in a["source_item_ids"]]
        if known:
            src = a["source_item_emb"][known].mean(axis=0) @ a["encoder_weight"] + a["encoder_bias"]
        elif user_id in a["source_user_ids"]:
            src = a["source_user_emb"][a["source_user_ids"].index(user_id)]
        else:
            return None
        x = src
        for i, (w, b) in enumerate(a["bridge_layers"]):
            x = x @ w + b
            if i < len(a["bridge_layers"]) - 1:
                x = np.maximum(x, 0)
        return np.asarray(x, dtype=np.float32)

    def all_scores(self, vector: np.ndarray | None) -> np.ndarray:
        """Scores of every target item: model scores, or popularity for the fallback."""
        a = self.arrays
        if vector is None:
            return np.asarray(a["target_item_popularity"], dtype=np.float32)
        return a["target_item_emb"] @ vector + a["target_item_bias"]

    def ranking(self, vector: np.ndarray | None) -> list[str]:
        """Target item ids best first (popularity ties broken by item index)."""
        order = np.argsort(-self.all_scores(vector), kind="stable")
        return [self.arrays["target_item_ids"][i] for i in order]


def make_tiny_arrays(seed: int = 0, d: int = 8) -> dict[str, Any]:
    """3 target users (2 also in the source domain), 4 source-only users, 50/40 items."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    return dict(
        source_domain="game",
        target_domain="video",
        feedback="implicit",
        source_item_ids=[f"g{i}" for i in range(40)],
        target_item_ids=[f"v{i}" for i in range(50)],
        source_user_ids=["u1", "u2", "s0", "s1", "s2", "s3"],
        target_user_ids=["u0", "u1", "u2"],
        source_item_emb=f32(40, d),
        encoder_weight=f32(d, d),
        encoder_bias=f32(d),
        source_user_emb=f32(6, d),
        bridge_layers=[(f32(d, 16), f32(16)), (f32(16, d), f32(d))],
        target_item_emb=f32(50, d),
        target_item_bias=f32(50),
        target_user_emb=f32(3, d),
        target_item_popularity=rng.integers(0, 20, size=50).astype(np.float32),
        encoder_max_history=16,
    )


def tiny_content(arrays: dict[str, Any], **fields: Any) -> Any:
    """The :class:`coldbridge_bundle.BundleContent` of :func:`make_tiny_arrays`' output.

    ``fields`` override the content's optional fields (``strategy``, ``metrics``...).
    """
    from coldbridge_bundle import BundleContent, Sides
    from coldbridge_trainer.export import BaseWeights

    a = arrays
    weights = BaseWeights(
        **{
            k: a[k]
            for k in (
                "source_item_emb",
                "encoder_weight",
                "encoder_bias",
                "source_user_emb",
                "bridge_layers",
                "target_item_emb",
                "target_item_bias",
                "target_user_emb",
                "target_item_popularity",
            )
        }
    )
    return BundleContent(
        domains=Sides(a["source_domain"], a["target_domain"]),
        feedback=a["feedback"],
        items=Sides(a["source_item_ids"], a["target_item_ids"]),
        users=Sides(a["source_user_ids"], a["target_user_ids"]),
        models=weights.models(),
        arrays=weights.arrays(),
        encoder_max_history=a["encoder_max_history"],
        **fields,
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """A small random bundle written by the real ``coldbridge_bundle.write`` (read-only)."""
    from coldbridge_bundle import write

    arrays = make_tiny_arrays()
    content = tiny_content(
        arrays, metrics={"hr@10": 0.25, "cold": {"ndcg@10": 0.125}}, config={"epochs": 1}
    )
    path = write(tmp_path_factory.mktemp("bundles"), content, version="20260101T000000Z-tiny0001")
    return TinyBundle(path=path, arrays=arrays)
