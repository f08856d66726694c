"""Loading interaction files, dataset directories and the CDRIB folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from coldbridge_trainer.cdrib import cdrib_pairs
from coldbridge_trainer.data import load_cdrib, load_dataset, read_interactions
from coldbridge_trainer.recbole import load_recbole, read_inter

CDRIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdrib"


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


def test_headerless_tsv_and_cdrib_txt(tmp_path: Path) -> None:
    rows = read_interactions(_write(tmp_path / "train.txt", "2179\t0\n2179\t5\n7\t1\n"))
    assert rows.users == ["2179", "2179", "7"] and rows.items == ["0", "5", "1"]
    assert rows.values.tolist() == [1.0] * 3 and rows.timestamps is None
    rows = read_interactions(_write(tmp_path / "a.tsv", "u1\ti1\t4\t10\n"))
    assert rows.values.tolist() == [4.0] and rows.timestamps is not None
    with pytest.raises(ValueError, match=r"b\.tsv:1: header-less file needs 2 to 4"):
        read_interactions(_write(tmp_path / "b.tsv", "u1\ti1\t4\t10\textra\n"))


def test_dataset_directory_of_txt_files(tmp_path: Path) -> None:
    _write(tmp_path / "dataset.json", json.dumps({"source": "s", "target": "t"}))
    _write(tmp_path / "source/train.txt", "a\ts1\nc\ts2\n")
    _write(tmp_path / "target/train.txt", "a\tt1\n")
    _write(tmp_path / "target/valid.txt", "c\tt1\n")
    _write(tmp_path / "target/test.txt", "c\tt1\n")
    ds = load_dataset(tmp_path)
    assert ds.cold_users() == ["c"] and ds.test.items.tolist() == [0]


def test_empty_id_and_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"e\.csv:2: empty"):
        read_interactions(_write(tmp_path / "e.csv", "user_id,item_id\n,i1\n"))
    with pytest.raises(ValueError, match="unsupported extension"):
        read_interactions(_write(tmp_path / "e.json", "user_id,item_id\n"))


def _dataset(root: Path, valid_user: str = "c1") -> Path:
    meta = {"source": "s", "target": "t", "feedback": "implicit"}
    _write(root / "dataset.json", json.dumps(meta))
    _write(root / "source/train.csv", "user_id,item_id\na,s1\nb,s2\nc1,s1\nc1,s2\n")
    _write(root / "target/train.tsv", "user_id\titem_id\na\tt1\nb\tt2\nd\tt1\n")
    _write(root / "target/valid.csv", f"user_id,item_id\n{valid_user},t3\n")
    _write(root / "target/test.csv", "user_id,item_id\nc1,t2\n")
    return root


def test_load_dataset_structure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="coldbridge_trainer.data"):
        ds = load_dataset(_dataset(tmp_path))
    (record,) = caplog.records  # t3 (valid only) is warned about; t2 (test) is trained
    assert "valid.csv: 1 held-out row(s) name 1 item(s) never seen" in record.getMessage()
    assert "'t3'" in record.getMessage()
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
    _write(
        root / "source/train.csv", "user_id,item_id,timestamp\nc1,s1,5\nc1,s2,1\nc1,s3,3\na,s1,0\n"
    )
    ds = load_dataset(root)
    hist = ds.source.user_histories(max_len=2)
    assert [ds.source.item_ids[i] for i in hist[ds.source.user_index["c1"]]] == ["s3", "s1"]


@pytest.mark.cdrib
@pytest.mark.parametrize(
    ("source", "target", "n_src", "n_tgt", "tgt_items", "tgt_rows", "valid", "test", "cold"),
    [
        ("game", "video", 24_799, 19_240, 8_751, 156_091, 1_435, 1_458, 216),
        ("video", "game", 19_240, 24_799, 12_319, 155_036, 1_381, 1_304, 212),
    ],
)
def test_cdrib_counts(
    source: str,
    target: str,
    n_src: int,
    n_tgt: int,
    tgt_items: int,
    tgt_rows: int,
    valid: int,
    test: int,
    cold: int,
) -> None:
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


def _cdrib_pair(root: Path, x: str, y: str) -> Path:
    """Tiny CDRIB pair: ids < 3 shared; user 2 is cold in y, user 1 is cold in x."""
    files = {
        f"{x}_{y}": ("0\t0\n0\t1\n2\t1\n3\t2\n", "1\t0\n", "1\t2\n"),
        f"{y}_{x}": ("0\t0\n1\t1\n1\t0\n3\t1\n", "2\t1\n", "2\t0\n2\t2\n"),
    }
    for folder, texts in files.items():
        for split, text in zip(("train", "valid", "test"), texts, strict=True):
            _write(root / folder / f"{split}.txt", text)
    return root


def test_cdrib_any_domain_pair(tmp_path: Path) -> None:
    root = _cdrib_pair(tmp_path, "books", "movies")
    assert cdrib_pairs(root) == [("books", "movies")]
    ds = load_cdrib(root, "books", "movies", shared_users=3)
    assert (ds.source.name, ds.target.name) == ("books", "movies")
    assert ds.source.user_ids == ["u0", "u2", "books:3"]
    assert ds.target.user_ids == ["u0", "u1", "movies:3"] and ds.target.item_ids == ["0", "1", "2"]
    assert ds.cold_users() == ["u2"] and ds.test.items.tolist() == [0, 2]
    assert ds.target.popularity().tolist() == [2.0, 2.0, 0.0]
    back = load_cdrib(root, "movies", "books", shared_users=3)
    assert back.cold_users() == ["u1"] and back.target.item_ids == ["0", "1", "2"]


def test_cdrib_missing_pair_lists_the_pairs_found(tmp_path: Path) -> None:
    root = _cdrib_pair(_cdrib_pair(tmp_path, "books", "movies"), "game", "video")
    found = r"no CDRIB pair books/music .*found: books/movies, game/video"
    with pytest.raises(ValueError, match=found):
        load_cdrib(root, "books", "music", shared_users=3)
    with pytest.raises(ValueError, match="pass shared_users"):
        load_cdrib(root, "books", "movies")


def _inter(path: Path, rows: list[str], header: str) -> Path:
    return _write(path, header + "\n" + "".join(r + "\n" for r in rows))


def test_read_inter_typed_header(tmp_path: Path) -> None:
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\treview:token_seq"
    rows = read_inter(_inter(tmp_path / "a.inter", ["u1\ti9\t4.0\t978300760.0\tgood film"], header))
    assert (rows.users, rows.items, rows.values.tolist()) == (["u1"], ["i9"], [4.0])
    assert rows.timestamps is not None and rows.timestamps.tolist() == [978300760]
    with pytest.raises(ValueError, match=r"b\.inter:1: missing field.*item_id"):
        read_inter(_inter(tmp_path / "b.inter", [], "user_id:token\tx:token"))
    with pytest.raises(ValueError, match=r"c\.inter:3: bad"):
        read_inter(
            _inter(
                tmp_path / "c.inter",
                ["u\ti\t1", "u\ti\tx"],
                "user_id:token\titem_id:token\trating:float",
            )
        )


def test_load_recbole_holds_out_cold_users(tmp_path: Path) -> None:
    head = "user_id:token\titem_id:token\ttimestamp:float"
    src = _inter(
        tmp_path / "books.inter",
        [f"u{u}\tb{(u + k) % 7}\t{k}" for u in range(20) for k in range(3)],
        head,
    )
    tgt_rows = [f"u{u}\tm{(u * k) % 9}\t{k}" for u in range(10, 30) for k in range(1, 5)]
    tgt = _inter(tmp_path / "movies.inter", tgt_rows, head)
    ds = load_recbole(src, tgt, cold_fraction=0.3, seed=4)
    cold = ds.cold_users()
    assert (ds.source.name, ds.target.name) == ("books", "movies") and len(cold) == 3
    assert all(u in ds.source.user_index and u not in ds.target.user_index for u in cold)
    # every row of a cold user is held out, split into halves (valid gets the extra one)
    for u in cold:
        assert ds.valid.user_ids.count(u) == 2 and ds.test.user_ids.count(u) == 2
    assert len(ds.target.users) + len(ds.valid) + len(ds.test) == len(tgt_rows)
    assert load_recbole(src, tgt, cold_fraction=0.3, seed=4).cold_users() == cold
    assert load_recbole(src, tgt, cold_fraction=0.3, seed=5).cold_users() != cold
    with pytest.raises(ValueError, match="leaves no cold user"):
        load_recbole(src, tgt, cold_fraction=0.0)
