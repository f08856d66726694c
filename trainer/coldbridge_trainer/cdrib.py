"""CDRIB benchmark folders for any pair of domains (``shared/data/cdrib/README.md``).

A pair of domains ``X`` and ``Y`` is two folders under one root::

    X_Y/train.txt  valid.txt  test.txt     domain X (valid/test: users cold in X)
    Y_X/train.txt  valid.txt  test.txt     domain Y

Lines are ``user<TAB>item`` (0-based ints, no header), item ids local to the folder's domain.
User ids below the pair's shared-user count ``C`` are the same person in both folders; ids
``>= C`` are local to one folder. Domain names must not contain ``_``.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> files = {"books_movies": "0\\t0\\n1\\t1\\n", "movies_books": "1\\t0\\n"}
>>> for folder, rows in files.items():
...     (root / folder).mkdir()
...     for split in ("train", "valid", "test"):
...         text = rows if split == "train" else "0\\t0\\n"
...         _ = (root / folder / f"{split}.txt").write_text(text)
>>> cdrib_pairs(root)
[('books', 'movies')]
>>> ds = load_cdrib(root, "books", "movies", shared_users=2)
>>> ds.cold_users(), ds.target.user_ids
(['u0'], ['u1'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coldbridge_trainer.data import (
    CrossDomainDataset,
    Interactions,
    _domain,
    _held_out,
)

__all__ = [
    "CDRIB_DOMAINS",
    "CDRIB_SHARED_USERS",
    "KNOWN_SHARED_USERS",
    "cdrib_pairs",
    "load_cdrib",
]

CDRIB_SHARED_USERS = 2179
"""User ids below this are the same person in both game/video CDRIB folders."""

CDRIB_DOMAINS = {"game": "game_video", "video": "video_game"}
"""CDRIB game/video domain name -> folder holding that domain's interactions."""

KNOWN_SHARED_USERS = {frozenset(("game", "video")): CDRIB_SHARED_USERS}
"""Shared-user count ``C`` of the published pairs (other pairs pass ``shared_users``)."""

_SPLITS = ("train", "valid", "test")


def cdrib_pairs(root: Path | str) -> list[tuple[str, str]]:
    """Domain pairs ``(X, Y)``, ``X < Y``, with both ``X_Y/`` and ``Y_X/`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = {p.name for p in root.iterdir() if (p / "train.txt").is_file()}
    pairs = {tuple(sorted(f.split("_"))) for f in folders if f.count("_") == 1}
    return sorted((a, b) for a, b in pairs if f"{a}_{b}" in folders and f"{b}_{a}" in folders)


def _read_pairs(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"missing CDRIB file {path}")
    pairs = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if pairs.size and pairs.shape[1] != 2:
        raise ValueError(f"{path}: expected 2 tab-separated columns, got {pairs.shape[1]}")
    return pairs.reshape(-1, 2)


def _rows(pairs: np.ndarray, domain: str, shared: int) -> Interactions:
    users = [f"u{u}" if u < shared else f"{domain}:{u}" for u in pairs[:, 0].tolist()]
    items = [str(i) for i in pairs[:, 1].tolist()]
    return Interactions(users, items, np.ones(len(pairs), dtype=np.float32))


def _check_pair(root: Path, source: str, target: str, shared_users: int | None) -> int:
    if source == target or "_" in source + target:
        raise ValueError(
            f"source and target must be two different domain names without '_', "
            f"got {source!r}, {target!r}"
        )
    if (source, target) not in cdrib_pairs(root) and (target, source) not in cdrib_pairs(root):
        found = ", ".join(f"{a}/{b}" for a, b in cdrib_pairs(root)) or "none"
        raise ValueError(
            f"{root}: no CDRIB pair {source}/{target} (needs {source}_{target}/ and "
            f"{target}_{source}/ with train/valid/test.txt); pairs found: {found}"
        )
    shared = (
        shared_users
        if shared_users is not None
        else KNOWN_SHARED_USERS.get(frozenset((source, target)))
    )
    if shared is None:
        raise ValueError(
            f"pass shared_users for the CDRIB pair {source}/{target}: the number of "
            "user ids that are the same person in both folders"
        )
    return shared


def load_cdrib(
    root: Path | str,
    source: str = "game",
    target: str = "video",
    *,
    shared_users: int | None = None,
) -> CrossDomainDataset:
    """Load a CDRIB cross-domain pair.

    Parameters
    ----------
    root : path-like
        Folder holding ``<source>_<target>/`` and ``<target>_<source>/``.
    source, target : str
        Domain names (``"game"``/``"video"`` for ``shared/data/cdrib``).
    shared_users : int, optional
        User ids below this are the same person in both folders; known for game/video
        (2179), required for any other pair.

    Returns
    -------
    CrossDomainDataset
        ``valid``/``test`` are the target folder's ``valid.txt``/``test.txt``; users are
        ``u<id>`` when shared, ``<domain>:<id>`` otherwise; items are the folder's ids as
        strings, ordered by id.

    Raises
    ------
    ValueError
        On an unknown pair (the message lists the pairs found), a missing file or bad row.
    """
    root = Path(root)
    shared = _check_pair(root, source, target, shared_users)
    src_pairs = _read_pairs(root / f"{source}_{target}" / "train.txt")
    tgt_dir = root / f"{target}_{source}"
    tgt = {s: _read_pairs(tgt_dir / f"{s}.txt") for s in _SPLITS}
    all_items = np.unique(np.concatenate([p[:, 1] for p in tgt.values()]))
    src_items = [str(i) for i in np.unique(src_pairs[:, 1]).tolist()]
    src_domain = _domain(source, _rows(src_pairs, source, shared), src_items, first=True)
    tgt_domain = _domain(
        target,
        _rows(tgt["train"], target, shared),
        [str(i) for i in all_items.tolist()],
        first=True,
    )
    valid, test = (
        _held_out(_rows(tgt[s], target, shared), tgt_dir / f"{s}.txt", src_domain, tgt_domain)
        for s in ("valid", "test")
    )
    return CrossDomainDataset(src_domain, tgt_domain, valid, test, "implicit")
