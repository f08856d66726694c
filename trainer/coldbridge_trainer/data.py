"""Load cross-domain interaction data into index arrays.

Two on-disk formats are supported.

Dataset directory (what ``coldbridge datagen`` writes)::

    dataset.json          {"source": "<name>", "target": "<name>", "feedback": "implicit"}
    source/train.csv      user_id,item_id[,value][,timestamp]
    target/train.csv
    target/valid.csv      target rows of held-out cold-start users
    target/test.csv

Files may be CSV or TSV (chosen by extension) and must have a header. ``valid`` and
``test`` hold the target-domain rows of cold-start users: they have no row in
``target/train`` but do have rows in ``source/train``.

CDRIB benchmark folders (see ``shared/data/cdrib/README.md``) are read by
:func:`load_cdrib`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CDRIB_DOMAINS",
    "CDRIB_SHARED_USERS",
    "CrossDomainDataset",
    "DomainData",
    "HeldOut",
    "Interactions",
    "load_cdrib",
    "load_dataset",
    "read_interactions",
]

CDRIB_SHARED_USERS = 2179
"""User ids below this are the same person in both CDRIB folders."""

CDRIB_DOMAINS = {"game": "game_video", "video": "video_game"}
"""CDRIB domain name -> folder holding that domain's interactions."""

_SPLITS = ("source/train", "target/train", "target/valid", "target/test")


@dataclass(frozen=True)
class Interactions:
    """Raw rows of one interaction file (string ids).

    Attributes
    ----------
    users, items : list of str
        One entry per row.
    values : numpy.ndarray
        float32 ``[n]`` (1.0 when the file has no ``value`` column).
    timestamps : numpy.ndarray or None
        int64 ``[n]`` when the file has a ``timestamp`` column.
    """

    users: list[str]
    items: list[str]
    values: np.ndarray
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class DomainData:
    """Training interactions of one domain, indexed.

    Attributes
    ----------
    name : str
        Domain name.
    user_ids, item_ids : list of str
        Ids in index order.
    users, items : numpy.ndarray
        int64 ``[n]`` row-wise indices into ``user_ids`` / ``item_ids``.
    values : numpy.ndarray
        float32 ``[n]``.
    timestamps : numpy.ndarray or None
        int64 ``[n]`` if known.
    """

    name: str
    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray | None = None
    user_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    item_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.user_index:
            self.user_index.update({u: i for i, u in enumerate(self.user_ids)})
        if not self.item_index:
            self.item_index.update({t: i for i, t in enumerate(self.item_ids)})

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items."""
        return len(self.item_ids)

    def popularity(self) -> np.ndarray:
        """Training interaction count per item, float32 ``[n_items]``."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.float32)

    def user_histories(self, max_len: int | None = None) -> list[np.ndarray]:
        """Item indices of each user, in time order if timestamps are known.

        Parameters
        ----------
        max_len : int, optional
            Keep only the most recent ``max_len`` items.
        """
        key = self.timestamps if self.timestamps is not None else np.arange(len(self.users))
        order = np.lexsort((key, self.users))
        bounds = np.searchsorted(self.users[order], np.arange(self.n_users + 1))
        hist = [self.items[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return [h[-max_len:] for h in hist] if max_len else hist


@dataclass(frozen=True)
class HeldOut:
    """Held-out target rows of cold-start users.

    Attributes
    ----------
    user_ids : list of str
        User id of each row (present in the source domain, absent from target training).
    items : numpy.ndarray
        int64 ``[n]`` target item index of each row.
    """

    user_ids: list[str]
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class CrossDomainDataset:
    """A source domain, a target domain and cold-start valid/test rows."""

    source: DomainData
    target: DomainData
    valid: HeldOut
    test: HeldOut
    feedback: str = "implicit"

    def overlap_users(self) -> list[str]:
        """Users present in both training sets, in source index order."""
        return [u for u in self.source.user_ids if u in self.target.user_index]

    def cold_users(self) -> list[str]:
        """Distinct users of valid and test, in first-seen order."""
        return list(dict.fromkeys(self.valid.user_ids + self.test.user_ids))

    def held_out_items(self) -> dict[str, set[int]]:
        """All held-out (valid + test) target items of each cold user."""
        out: dict[str, set[int]] = {}
        for split in (self.valid, self.test):
            for u, i in zip(split.user_ids, split.items.tolist(), strict=True):
                out.setdefault(u, set()).add(i)
        return out


def _delimiter(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        return ","
    if path.suffix.lower() in (".tsv", ".txt"):
        return "\t"
    raise ValueError(f"{path}: unsupported extension {path.suffix!r} (use .csv or .tsv)")


def _parse_row(path: Path, line: int, row: dict[str, str | None], cols: set[str]) -> tuple:
    user, item = (row.get("user_id") or "").strip(), (row.get("item_id") or "").strip()
    if not user or not item:
        raise ValueError(f"{path}:{line}: empty user_id or item_id")
    try:
        value = float(row["value"] or "") if "value" in cols else 1.0
        stamp = int(row["timestamp"] or "") if "timestamp" in cols else 0
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}:{line}: bad value or timestamp in {dict(row)}") from exc
    if not np.isfinite(value):
        raise ValueError(f"{path}:{line}: non-finite value {value}")
    return user, item, value, stamp


def read_interactions(path: Path | str) -> Interactions:
    """Read one CSV/TSV interaction file with a header.

    Parameters
    ----------
    path : path-like
        ``.csv`` (comma) or ``.tsv`` (tab) file with columns ``user_id,item_id`` and
        optionally ``value`` (float) and ``timestamp`` (int).

    Raises
    ------
    ValueError
        On a missing column or a bad row; the message names the file and line.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=_delimiter(path))
        cols = {c.strip() for c in reader.fieldnames or []}
        missing = {"user_id", "item_id"} - cols
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {sorted(missing)} in header")
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        rows = [_parse_row(path, reader.line_num, r, cols) for r in reader]
    users, items, values, stamps = (list(x) for x in zip(*rows, strict=True)) if rows else ([],) * 4
    ts = np.asarray(stamps, dtype=np.int64) if "timestamp" in cols else None
    return Interactions(users, items, np.asarray(values, dtype=np.float32), ts)


def _domain(name: str, rows: Interactions, extra_items: list[str], first: bool = False) -> DomainData:
    user_ids = list(dict.fromkeys(rows.users))
    item_ids = list(dict.fromkeys(extra_items + rows.items if first else rows.items + extra_items))
    uidx = {u: i for i, u in enumerate(user_ids)}
    iidx = {t: i for i, t in enumerate(item_ids)}
    return DomainData(
        name=name,
        user_ids=user_ids,
        item_ids=item_ids,
        users=np.fromiter((uidx[u] for u in rows.users), np.int64, len(rows)),
        items=np.fromiter((iidx[t] for t in rows.items), np.int64, len(rows)),
        values=rows.values,
        timestamps=rows.timestamps,
        user_index=uidx,
        item_index=iidx,
    )


def _held_out(rows: Interactions, path: Path, src: DomainData, tgt: DomainData) -> HeldOut:
    for line, u in enumerate(rows.users, start=2):
        if u in tgt.user_index:
            raise ValueError(f"{path}:{line}: cold user {u!r} also has target training rows")
        if u not in src.user_index:
            raise ValueError(f"{path}:{line}: cold user {u!r} has no source training rows")
    items = np.fromiter((tgt.item_index[t] for t in rows.items), np.int64, len(rows))
    return HeldOut(list(rows.users), items)


def _find(root: Path, stem: str) -> Path:
    for ext in (".csv", ".tsv"):
        if (root / f"{stem}{ext}").is_file():
            return root / f"{stem}{ext}"
    raise ValueError(f"{root}: missing {stem}.csv or {stem}.tsv")


def load_dataset(root: Path | str) -> CrossDomainDataset:
    """Load a dataset directory (see the module docstring).

    Raises
    ------
    ValueError
        On a missing/invalid ``dataset.json`` or file, or a bad row.
    """
    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise ValueError(f"{root}: missing dataset.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    feedback = meta.get("feedback", "implicit")
    if feedback not in ("implicit", "explicit") or "source" not in meta or "target" not in meta:
        raise ValueError(f"{meta_path}: need 'source', 'target' and feedback implicit|explicit")
    paths = {s: _find(root, s) for s in _SPLITS}
    rows = {s: read_interactions(p) for s, p in paths.items()}
    held_items = rows["target/valid"].items + rows["target/test"].items
    src = _domain(meta["source"], rows["source/train"], [])
    tgt = _domain(meta["target"], rows["target/train"], held_items)
    valid = _held_out(rows["target/valid"], paths["target/valid"], src, tgt)
    test = _held_out(rows["target/test"], paths["target/test"], src, tgt)
    return CrossDomainDataset(src, tgt, valid, test, feedback)


def _read_pairs(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"missing CDRIB file {path}")
    pairs = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if pairs.shape[1] != 2:
        raise ValueError(f"{path}: expected 2 tab-separated columns, got {pairs.shape[1]}")
    return pairs


def _cdrib_user(uid: int, domain: str) -> str:
    return f"u{uid}" if uid < CDRIB_SHARED_USERS else f"{domain}:{uid}"


def _cdrib_rows(pairs: np.ndarray, domain: str) -> Interactions:
    users = [_cdrib_user(u, domain) for u in pairs[:, 0].tolist()]
    items = [str(i) for i in pairs[:, 1].tolist()]
    return Interactions(users, items, np.ones(len(pairs), dtype=np.float32))


def load_cdrib(root: Path | str, source: str = "game", target: str = "video") -> CrossDomainDataset:
    """Load a CDRIB cross-domain pair (``shared/data/cdrib``).

    Parameters
    ----------
    root : path-like
        Folder holding ``game_video/`` and ``video_game/``.
    source, target : str
        Domain names, ``"game"`` or ``"video"``, different from each other.

    Returns
    -------
    CrossDomainDataset
        ``valid``/``test`` are the target folder's ``valid.txt``/``test.txt``.
    """
    if {source, target} != set(CDRIB_DOMAINS):
        raise ValueError(f"source/target must be 'game' and 'video', got {source!r}, {target!r}")
    root = Path(root)
    src_pairs = _read_pairs(root / CDRIB_DOMAINS[source] / "train.txt")
    tgt_dir = root / CDRIB_DOMAINS[target]
    tgt = {s: _read_pairs(tgt_dir / f"{s}.txt") for s in ("train", "valid", "test")}
    all_items = np.unique(np.concatenate([p[:, 1] for p in tgt.values()]))
    tgt_train = _cdrib_rows(tgt["train"], target)
    src_items = [str(i) for i in np.unique(src_pairs[:, 1]).tolist()]
    src_domain = _domain(source, _cdrib_rows(src_pairs, source), src_items, first=True)
    tgt_domain = _domain(target, tgt_train, [str(i) for i in all_items.tolist()], first=True)
    valid = _held_out(_cdrib_rows(tgt["valid"], target), tgt_dir / "valid.txt", src_domain, tgt_domain)
    test = _held_out(_cdrib_rows(tgt["test"], target), tgt_dir / "test.txt", src_domain, tgt_domain)
    return CrossDomainDataset(src_domain, tgt_domain, valid, test, "implicit")
