"""RecBole atomic ``.inter`` files as a cross-domain dataset.

A ``.inter`` file is tab-separated with a typed header, e.g.::

    user_id:token	item_id:token	rating:float	timestamp:float

Only ``user_id`` and ``item_id`` are required; ``rating`` becomes the row value and
``timestamp`` the (integer) row time; other columns are ignored. As in RecBole-CDR, each
domain has its own file and the same ``user_id`` in both files is the same person.

Cold-start hold-out (the protocol of the project's dataset directories, see
:mod:`coldbridge_trainer.synth`): among the users with rows in both files and at least two
target rows, ``cold_fraction`` of them (chosen with ``seed``) become cold users. All their
target rows leave target training and are split, per user, into two random halves: ``valid``
(which gets the extra row) and ``test``. Their source rows stay in source training.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from coldbridge_trainer.data import (
    CrossDomainDataset,
    Interactions,
    _domain,
    _held_out,
    _interactions,
)
from coldbridge_trainer.synth import split_cold

__all__ = ["load_recbole", "read_inter"]

_FIELDS = {"user_id": "user_id", "item_id": "item_id", "rating": "value", "timestamp": "timestamp"}


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    names = [h.split(":", 1)[0].strip() for h in header]
    cols = {_FIELDS[n]: i for i, n in enumerate(names) if n in _FIELDS}
    missing = {"user_id", "item_id"} - set(cols)
    if missing:
        raise ValueError(f"{path}:1: missing field(s) {sorted(missing)} in .inter header {header}")
    return cols


def _row(path: Path, line: int, fields: list[str], cols: dict[str, int]) -> tuple:
    try:
        user, item = fields[cols["user_id"]].strip(), fields[cols["item_id"]].strip()
        value = float(fields[cols["value"]]) if "value" in cols else 1.0
        stamp = int(float(fields[cols["timestamp"]])) if "timestamp" in cols else 0
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}:{line}: bad .inter row {fields}") from exc
    if not user or not item or not np.isfinite(value):
        raise ValueError(f"{path}:{line}: empty id or non-finite rating in {fields}")
    return user, item, value, stamp


def read_inter(path: Path | str) -> Interactions:
    """Read one RecBole atomic ``.inter`` file.

    Raises
    ------
    ValueError
        On a header without ``user_id``/``item_id`` or a bad row (file and line named).
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        cols = _columns(path, next(reader, []))
        rows = [_row(path, n, f, cols) for n, f in enumerate(reader, start=2) if f]
    return _interactions(rows, "timestamp" in cols)


def _take(rows: Interactions, keep: np.ndarray) -> Interactions:
    idx = np.flatnonzero(keep)
    return Interactions(
        [rows.users[i] for i in idx],
        [rows.items[i] for i in idx],
        rows.values[idx],
        None if rows.timestamps is None else rows.timestamps[idx],
    )


def _tuples(rows: Interactions) -> list[tuple[str, str, float, int]]:
    stamps = rows.timestamps if rows.timestamps is not None else np.zeros(len(rows), np.int64)
    return list(zip(rows.users, rows.items, rows.values.tolist(), stamps.tolist(), strict=True))


def _cold_users(src: Interactions, tgt: Interactions, fraction: float, seed: int) -> set[str]:
    in_src = set(src.users)
    counts: dict[str, int] = {}
    for u in tgt.users:
        counts[u] = counts.get(u, 0) + 1
    eligible = [u for u, n in counts.items() if u in in_src and n >= 2]
    n_cold = int(round(fraction * len(eligible)))
    if not 0 < n_cold < len(eligible):
        raise ValueError(
            f"cold_fraction={fraction} of {len(eligible)} overlapping users with "
            "2+ target rows leaves no cold user or no overlapping training user"
        )
    pick = np.random.default_rng(seed).choice(len(eligible), size=n_cold, replace=False)
    return {eligible[i] for i in sorted(pick.tolist())}


def load_recbole(
    source_inter: Path | str,
    target_inter: Path | str,
    *,
    source: str | None = None,
    target: str | None = None,
    cold_fraction: float = 0.2,
    seed: int = 0,
    feedback: str = "implicit",
) -> CrossDomainDataset:
    """Build a cross-domain dataset from a source and a target ``.inter`` file.

    Parameters
    ----------
    source_inter, target_inter : path-like
        One RecBole atomic ``.inter`` file per domain.
    source, target : str, optional
        Domain names (default: the file stems, ``books.inter`` -> ``"books"``).
    cold_fraction : float
        Share of the eligible overlapping users held out as cold users (module docstring).
    seed : int
        Seed of the cold-user choice and of the valid/test halves.
    feedback : str
        ``"implicit"`` or ``"explicit"`` (then ``rating`` is the training target).

    Returns
    -------
    CrossDomainDataset
        Cold users' target rows in ``valid``/``test``; everything else in training.
    """
    if feedback not in ("implicit", "explicit"):
        raise ValueError(f"feedback must be implicit or explicit, got {feedback!r}")
    src_path, tgt_path = Path(source_inter), Path(target_inter)
    src, tgt = read_inter(src_path), read_inter(tgt_path)
    cold = _cold_users(src, tgt, cold_fraction, seed)
    is_cold = np.fromiter((u in cold for u in tgt.users), bool, len(tgt))
    held = _tuples(_take(tgt, is_cold))
    valid, test = split_cold(np.random.default_rng(seed), held)
    timed = tgt.timestamps is not None
    valid_rows, test_rows = _interactions(valid, timed), _interactions(test, timed)
    src_domain = _domain(source or src_path.stem, src, [])
    tgt_domain = _domain(
        target or tgt_path.stem, _take(tgt, ~is_cold), valid_rows.items + test_rows.items
    )
    return CrossDomainDataset(
        src_domain,
        tgt_domain,
        _held_out(valid_rows, tgt_path, src_domain, tgt_domain),
        _held_out(test_rows, tgt_path, src_domain, tgt_domain),
        feedback,
    )
