"""Deterministic synthetic cross-domain data with shared user tastes.

Every user has a latent taste vector ``z`` in a shared space. Each domain perturbs it
slightly (``z + domain_noise * eps``) and scores its items ``z_d . a_i + b_i`` (item
factors ``a_i``, popularity bias ``b_i``); a user's items are drawn without replacement
with probabilities ``softmax(temperature * score)`` (Gumbel top-k). Because ``z`` is
shared, a user's source items predict their target items: the signal a bridge must learn.

Groups of users: *overlap* (rows in both training sets), *source-only*, *target-only* and
*cold* (source rows in training; target rows split into ``valid``/``test`` halves).

Examples
--------
>>> from coldbridge_trainer.synth import SynthConfig, generate
>>> splits = generate(SynthConfig(n_overlap=20, n_source_only=5, n_target_only=5, n_cold=6,
...                               n_source_items=40, n_target_items=30))
>>> sorted(splits)
['source/train', 'target/test', 'target/train', 'target/valid']
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coldbridge_trainer.data import Interactions

__all__ = ["SynthConfig", "generate", "split_cold", "write_dataset"]


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and knobs of the synthetic generator (all have defaults).

    Attributes
    ----------
    n_overlap, n_source_only, n_target_only, n_cold : int
        Users per group (cold users are held out of target training).
    n_source_items, n_target_items : int
        Catalogue sizes.
    latent_dim : int
        Dimension of the shared taste space.
    mean_items : float
        Mean number of interactions per user and domain (Poisson, at least ``min_items``).
    min_items : int
        Minimum interactions per user and domain.
    temperature : float
        Sharpness of the item choice (higher = more taste-driven).
    popularity : float
        Standard deviation of the item popularity bias.
    domain_noise : float
        How much a user's taste differs between domains.
    feedback : str
        ``"implicit"`` (value 1) or ``"explicit"`` (ratings 1..5 from the score).
    seed : int
        Random seed; the same config gives the same data.
    """

    n_overlap: int = 1000
    n_source_only: int = 300
    n_target_only: int = 300
    n_cold: int = 400
    n_source_items: int = 500
    n_target_items: int = 500
    latent_dim: int = 8
    mean_items: float = 15.0
    min_items: int = 4
    temperature: float = 1.5
    popularity: float = 1.0
    domain_noise: float = 0.3
    feedback: str = "implicit"
    seed: int = 0
    source_name: str = "books"
    target_name: str = "movies"


def _items(rng: np.random.Generator, n: int, dim: int, pop: float) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(n, dim)) / np.sqrt(dim) * 2.0, rng.normal(scale=pop, size=n)


def _sample_rows(
    rng: np.random.Generator,
    cfg: SynthConfig,
    taste: np.ndarray,
    factors: np.ndarray,
    bias: np.ndarray,
) -> list[list[tuple[int, float]]]:
    """Per user: list of (item index, score), drawn by Gumbel top-k."""
    taste = taste + cfg.domain_noise * rng.normal(size=taste.shape)
    scores = taste @ factors.T + bias
    gumbel = rng.gumbel(size=scores.shape)
    counts = np.maximum(rng.poisson(cfg.mean_items, size=len(taste)), cfg.min_items)
    counts = np.minimum(counts, factors.shape[0])
    order = np.argsort(-(cfg.temperature * scores + gumbel), axis=1, kind="stable")
    return [
        [(int(i), float(scores[u, i])) for i in order[u, : counts[u]]] for u in range(len(taste))
    ]


def _value(score: float, feedback: str) -> float:
    return 1.0 if feedback == "implicit" else float(np.clip(np.round(3.0 + score), 1, 5))


def _rows(
    users: list[str],
    picks: list[list[tuple[int, float]]],
    prefix: str,
    cfg: SynthConfig,
) -> list[tuple[str, str, float, int]]:
    out = []
    for user, items in zip(users, picks, strict=True):
        for t, (i, s) in enumerate(items):
            out.append((user, f"{prefix}{i:05d}", _value(s, cfg.feedback), t))
    return out


def _to_interactions(rows: list[tuple[str, str, float, int]]) -> Interactions:
    return Interactions(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.asarray([r[2] for r in rows], dtype=np.float32),
        np.asarray([r[3] for r in rows], dtype=np.int64),
    )


def split_cold(
    rng: np.random.Generator, rows: list[tuple[str, str, float, int]]
) -> tuple[list, list]:
    """Split each cold user's rows into two random halves (valid gets the extra one).

    Users are taken in first-seen order, each user's rows keep their order; this is the
    hold-out protocol of every dataset directory (also used by
    :func:`coldbridge_trainer.recbole.load_recbole`).
    """
    valid, test, by_user = [], [], {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    for user_rows in by_user.values():
        perm = rng.permutation(len(user_rows))
        half = (len(user_rows) + 1) // 2
        valid += [user_rows[j] for j in sorted(perm[:half])]
        test += [user_rows[j] for j in sorted(perm[half:])]
    return valid, test


def _select(users: list[str], picks: list, keep: list[bool]) -> tuple[list[str], list]:
    return (
        [u for u, k in zip(users, keep, strict=True) if k],
        [p for p, k in zip(picks, keep, strict=True) if k],
    )


def generate(config: SynthConfig | None = None) -> dict[str, Interactions]:
    """Generate the four splits of a synthetic dataset.

    Returns
    -------
    dict
        ``{"source/train", "target/train", "target/valid", "target/test"}`` -> rows.
    """
    cfg = config or SynthConfig()
    if cfg.feedback not in ("implicit", "explicit"):
        raise ValueError(f"feedback must be implicit or explicit, got {cfg.feedback!r}")
    rng = np.random.default_rng(cfg.seed)
    groups = {"o": cfg.n_overlap, "s": cfg.n_source_only, "t": cfg.n_target_only, "c": cfg.n_cold}
    names = {g: [f"{g}{i:05d}" for i in range(n)] for g, n in groups.items()}
    n_users = sum(groups.values())
    taste = rng.normal(size=(n_users, cfg.latent_dim))
    src_f, src_b = _items(rng, cfg.n_source_items, cfg.latent_dim, cfg.popularity)
    tgt_f, tgt_b = _items(rng, cfg.n_target_items, cfg.latent_dim, cfg.popularity)
    users = names["o"] + names["s"] + names["t"] + names["c"]
    src_pick = _sample_rows(rng, cfg, taste, src_f, src_b)
    tgt_pick = _sample_rows(rng, cfg, taste, tgt_f, tgt_b)
    in_src = [not u.startswith("t") for u in users]
    in_tgt = [not u.startswith("s") and not u.startswith("c") for u in users]
    cold = [u.startswith("c") for u in users]
    source = _rows(*_select(users, src_pick, in_src), "s", cfg)
    target = _rows(*_select(users, tgt_pick, in_tgt), "t", cfg)
    valid, test = split_cold(rng, _rows(*_select(users, tgt_pick, cold), "t", cfg))
    return {
        "source/train": _to_interactions(source),
        "target/train": _to_interactions(target),
        "target/valid": _to_interactions(valid),
        "target/test": _to_interactions(test),
    }


def _write_csv(path: Path, rows: Interactions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = rows.timestamps if rows.timestamps is not None else np.zeros(len(rows), np.int64)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "value", "timestamp"])
        columns = (rows.users, rows.items, rows.values.tolist(), stamps.tolist())
        for u, i, v, t in zip(*columns, strict=True):
            writer.writerow([u, i, f"{v:g}", t])


def write_dataset(out_dir: Path | str, config: SynthConfig | None = None) -> Path:
    """Generate a dataset and write it in the dataset-directory layout.

    Returns
    -------
    pathlib.Path
        ``out_dir`` (load it with :func:`coldbridge_trainer.data.load_dataset`).
    """
    cfg = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in generate(cfg).items():
        _write_csv(out / f"{split}.csv", rows)
    meta = {
        "source": cfg.source_name,
        "target": cfg.target_name,
        "feedback": cfg.feedback,
        "generator": {"name": "coldbridge.synth", **asdict(cfg)},
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out
