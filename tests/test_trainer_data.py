"""Loading interaction files, dataset directories and the CDRIB folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coldbridge_trainer.data import load_cdrib, load_dataset, read_interactions

CDRIB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdrib"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_optional_columns(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", "user_id,item_id,value,timestamp\nu1,i1,4.5,10\nu2,i1,2,11\n")
    rows = read_interactions(p)
    assert rows.users == ["u1", "u2"] and rows.items == ["i1", "i1"]
    assert rows.values.tolist() == [4.5, 2.0]
    assert rows.timestamps is not None and rows.timestamps.tolist() == [10, 11]


def test_tsv_defaults(tmp_path: Path) -> None:
    rows = read_interactions(_write(tmp_path / "a.tsv", "item_id\tuser_id\nx\ty\nz\ty\n"))
    assert rows.users == ["y", "y"] and rows.items == ["x", "z"]
    assert rows.values.tolist() == [1.0, 1.0] and rows.timestamps is None


def test_missing_column_names_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "bad.csv", "user,item_id\nu1,i1\n")
    with pytest.raises(ValueError, match=r"bad\.csv:1: missing column.*user_id"):
        read_interactions(p)


def test_bad_value_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "bad.csv", "user_id,item_id,value\nu1,i1,1\nu2,i2,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        read_interactions(p)


def test_empty_id_and_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"e\.csv:2: empty"):
        read_interactions(_write(tmp_path / "e.csv", "user_id,item_id\n,i1\n"))
    with pytest.raises(ValueError, match="unsupported extension"):
        read_interactions(_write(tmp_path / "e.json", "user_id,item_id\n"))


def _dataset(root: Path, valid_user: str = "c1") -> Path:
    _write(root / "dataset.json", json.dumps({"source": "s", "target": "t", "feedback": "implicit"}))
    _write(root / "source/train.csv", "user_id,item_id\na,s1\nb,s2\nc1,s1\nc1,s2\n")
    _write(root / "target/train.tsv", "user_id\titem_id\na\tt1\nb\tt2\nd\tt1\n")
    _write(root / "target/valid.csv", f"user_id,item_id\n{valid_user},t3\n")
    _write(root / "target/test.csv", "user_id,item_id\nc1,t2\n")
    return root


def test_load_dataset_structure(tmp_path: Path) -> None:
    ds = load_dataset(_dataset(tmp_path))
    assert ds.source.user_ids == ["a", "b", "c1"] and ds.target.user_ids == ["a", "b", "d"]
    assert ds.target.item_ids == ["t1", "t2", "t3"]  # held-out-only items appended
    assert ds.overlap_users() == ["a", "b"] and ds.cold_users() == ["c1"]
    assert ds.valid.items.tolist() == [2] and ds.test.items.tolist() == [1]
    assert ds.target.popularity().tolist() == [2.0, 1.0, 0.0]
    assert ds.held_out_items() == {"c1": {1, 2}}


def test_cold_user_with_target_rows_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"valid\.csv:2: cold user 'a'"):
        load_dataset(_dataset(tmp_path, valid_user="a"))


def test_cold_user_without_source_rows_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no source training rows"):
        load_dataset(_dataset(tmp_path, valid_user="zz"))


def test_histories_follow_timestamps(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    _write(root / "source/train.csv", "user_id,item_id,timestamp\nc1,s1,5\nc1,s2,1\nc1,s3,3\na,s1,0\n")
    ds = load_dataset(root)
    hist = ds.source.user_histories(max_len=2)
    assert [ds.source.item_ids[i] for i in hist[ds.source.user_index["c1"]]] == ["s3", "s1"]


@pytest.mark.parametrize(
    ("source", "target", "n_src", "n_tgt", "tgt_items", "tgt_rows", "valid", "test", "cold"),
    [("game", "video", 24_799, 19_240, 8_751, 156_091, 1_435, 1_458, 216),
     ("video", "game", 19_240, 24_799, 12_319, 155_036, 1_381, 1_304, 212)],
)
def test_cdrib_counts(source: str, target: str, n_src: int, n_tgt: int, tgt_items: int,
                      tgt_rows: int, valid: int, test: int, cold: int) -> None:
    assert CDRIB.is_dir(), f"CDRIB data missing at {CDRIB} (see shared/data/cdrib/README.md)"
    ds = load_cdrib(CDRIB, source, target)
    assert (ds.source.n_users, ds.target.n_users) == (n_src, n_tgt)
    assert ds.target.n_items == tgt_items and len(ds.target.users) == tgt_rows
    assert (len(ds.valid), len(ds.test), len(set(ds.test.user_ids))) == (valid, test, cold)
    assert ds.target.item_ids[:3] == ["0", "1", "2"]
    assert all(u.startswith("u") for u in ds.cold_users())
    assert not set(ds.cold_users()) & set(ds.target.user_ids)
    assert f"{target}:2179" in ds.target.user_index or f"{target}:2180" in ds.target.user_index
    assert np.all(ds.target.popularity()[ds.test.items] >= 0)


def test_cdrib_rejects_bad_domain() -> None:
    with pytest.raises(ValueError, match="game"):
        load_cdrib(CDRIB, "game", "game")
