"""Load cross-domain interaction data into index arrays.

Two on-disk formats are supported.

Dataset directory (what ``coldbridge datagen`` writes)::

    dataset.json          {"source": "<name>", "target": "<name>", "feedback": "implicit"}
    source/train.csv      user_id,item_id[,value][,timestamp]
    target/train.csv
    target/valid.csv      target rows of held-out cold-start users
    target/test.csv

Files may be CSV (``.csv``) or tab-separated (``.tsv``, ``.txt``). A first row naming
``user_id`` or ``item_id`` is a header; without one the columns are, in order,
``user_id, item_id[, value[, timestamp]]`` (the CDRIB ``.txt`` files as shipped). ``valid``
and ``test`` hold the target-domain rows of cold-start users: they have no row in
``target/train`` but do have rows in ``source/train``. Held-out rows naming an item that
never occurs in target training are accepted (the item joins the catalogue with popularity
0) and logged as a warning on the ``coldbridge_trainer.data`` logger.

Other formats: CDRIB benchmark folders for any domain pair
(:func:`coldbridge_trainer.cdrib.load_cdrib`, also importable from here) and RecBole atomic
``.inter`` files (:func:`coldbridge_trainer.recbole.load_recbole`).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "CrossDomainDataset",
    "DomainData",
    "HeldOut",
    "Interactions",
    "load_dataset",
    "read_interactions",
]

logger = logging.getLogger(__name__)

COLUMNS = ("user_id", "item_id", "value", "timestamp")
"""Column names, also the column order of a header-less file."""

_LAZY = {
    "CDRIB_DOMAINS": "cdrib",
    "CDRIB_SHARED_USERS": "cdrib",
    "load_cdrib": "cdrib",
    "load_recbole": "recbole",
}


def __getattr__(name: str) -> Any:
    """``load_cdrib``, ``CDRIB_*`` and ``load_recbole``, kept importable from here.

    They live in :mod:`coldbridge_trainer.cdrib` and :mod:`coldbridge_trainer.recbole`
    (which import this module), so they are resolved lazily and not listed in ``__all__``.
    """
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"coldbridge_trainer.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    raise ValueError(f"{path}: unsupported extension {path.suffix!r} (use .csv, .tsv or .txt)")


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


def _header(path: Path, first: list[str]) -> tuple[list[str], bool]:
    """Column names and whether ``first`` is a header row (it names user_id or item_id)."""
    names = [c.strip() for c in first]
    if {"user_id", "item_id"} & set(names):
        missing = {"user_id", "item_id"} - set(names)
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {sorted(missing)} in header")
        return names, True
    if not 2 <= len(names) <= len(COLUMNS):
        raise ValueError(
            f"{path}:1: header-less file needs 2 to {len(COLUMNS)} columns "
            f"({', '.join(COLUMNS)}), got {len(names)}"
        )
    return list(COLUMNS[: len(names)]), False


def read_interactions(path: Path | str) -> Interactions:
    """Read one interaction file, with or without a header.

    Parameters
    ----------
    path : path-like
        ``.csv`` (comma), ``.tsv`` or ``.txt`` (tab) file with columns ``user_id,item_id``
        and optionally ``value`` (float) and ``timestamp`` (int). Without a header row
        (no column named ``user_id`` or ``item_id``) the columns are taken in that order.

    Raises
    ------
    ValueError
        On a missing column or a bad row; the message names the file and line.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        first = next(csv.reader(fh, delimiter=_delimiter(path)), [])
        fh.seek(0)
        if not first:
            return Interactions([], [], np.zeros(0, np.float32))
        names, has_header = _header(path, first)
        reader = csv.DictReader(fh, fieldnames=names, delimiter=_delimiter(path))
        if has_header:
            next(reader)
        cols = set(names)
        rows = [_parse_row(path, reader.line_num, r, cols) for r in reader]
    return _interactions(rows, "timestamp" in cols)


def _interactions(rows: list[tuple[str, str, float, int]], timed: bool) -> Interactions:
    """Rows ``(user, item, value, timestamp)`` as :class:`Interactions`."""
    users, items, values, stamps = (list(x) for x in zip(*rows, strict=True)) if rows else ([],) * 4
    ts = np.asarray(stamps, dtype=np.int64) if timed else None
    return Interactions(users, items, np.asarray(values, dtype=np.float32), ts)


def _domain(
    name: str, rows: Interactions, extra_items: list[str], first: bool = False
) -> DomainData:
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
    _warn_unseen(path, items, tgt)
    return HeldOut(list(rows.users), items)


def _warn_unseen(path: Path, items: np.ndarray, tgt: DomainData) -> None:
    """Log held-out rows whose item never occurs in target training."""
    trained = np.zeros(tgt.n_items, dtype=bool)
    trained[tgt.items] = True
    unseen = np.unique(items[~trained[items]])
    if len(unseen):
        logger.warning(
            "%s: %d held-out row(s) name %d item(s) never seen in target training (e.g. %r); "
            "no trained model can rank them above popularity 0",
            path,
            int((~trained[items]).sum()),
            len(unseen),
            tgt.item_ids[int(unseen[0])],
        )


def _find(root: Path, stem: str) -> Path:
    for ext in (".csv", ".tsv", ".txt"):
        if (root / f"{stem}{ext}").is_file():
            return root / f"{stem}{ext}"
    raise ValueError(f"{root}: missing {stem}.csv, {stem}.tsv or {stem}.txt")


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
