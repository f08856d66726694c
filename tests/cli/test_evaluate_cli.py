"""``coldbridge evaluate bundle`` and ``evaluate report`` on a small synthetic ``--data`` set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coldbridge_cli import main

SMALL = [
    "--n-overlap",
    "200",
    "--n-source-only",
    "50",
    "--n-target-only",
    "50",
    "--n-cold",
    "60",
    "--n-source-items",
    "120",
    "--n-target-items",
    "120",
]
FAST = [
    "--epochs",
    "2",
    "--bridge-epochs",
    "3",
    "--patience",
    "2",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["datagen", "--out", str(out), "--seed", "3", *SMALL]) == 0
    return out


def test_bundle_mode_still_scores_a_bundle(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "b"), *FAST]) == 0
    (bundle,) = (tmp_path / "b").iterdir()
    capsys.readouterr()
    assert main(["evaluate", "bundle", str(bundle), "--data", str(data), "--split", "both"]) == 0
    out = capsys.readouterr().out
    assert "== valid cold users" in out and "== test cold users" in out and "sha256=" in out
    assert all(name in out for name in ("bundle", "popularity", "cooccurrence", "random"))


def test_report_mode_on_a_dataset_directory(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = [
        "evaluate",
        "report",
        "--data",
        str(data),
        "--strategies",
        "emcdr,fusion,itemmap",
        "--seeds",
        "1,2",
        "--report-dir",
        str(out),
        "--bootstrap",
        "100",
        "--eval-negatives",
        "50",
        "--negatives",
        "3",
        *FAST,
        "--progress",
    ]
    assert main(argv) == 0
    # one bar step per fitted model: baselines + 2 seeds x (base + 3 strategies) + profiling
    assert "10/10" in capsys.readouterr().err
    (summary,) = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(summary["scorers"]) == [
        "random",
        "popularity",
        "cooccurrence",
        "emcdr",
        "itemmap",
        "fusion",
    ]
    assert summary["seeds"] == [1, 2] and summary["best"] in ("emcdr", "itemmap", "fusion")
    cell = summary["scorers"]["itemmap"]["full"]["user"]["MRR"]
    assert len(cell["per_seed"]) == 2 and cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    assert summary["profile"]["peak_rss_mib"] > 0
    assert (out / "bars_books_movies.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "±" in report
    # evaluation negatives and the base MF's training negatives are TrainConfig's own flags
    assert summary["test"]["candidates"] == 51
    assert '"negatives": 3' in report and '"eval_negatives": 50' in report


def test_evaluate_needs_a_mode(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--data", str(data)]) == 2
    assert "give the mode first" in capsys.readouterr().err
    assert main(["evaluate", "report", "--data", str(data), "--report-dir", "r"]) == 2
    assert "--strategies" in capsys.readouterr().err


def _write_inter(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["user_id:token\titem_id:token", *(f"{u}\t{i}" for u, i in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_and_evaluate_from_recbole_inter_files(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from coldbridge_trainer.data import load_dataset

    ds = load_dataset(data)
    src = [
        (ds.source.user_ids[u], ds.source.item_ids[i])
        for u, i in zip(ds.source.users, ds.source.items, strict=True)
    ]
    tgt = [
        (ds.target.user_ids[u], ds.target.item_ids[i])
        for u, i in zip(ds.target.users, ds.target.items, strict=True)
    ]
    toys = _write_inter(tmp_path / "toys.inter", src)
    games = _write_inter(tmp_path / "games.inter", tgt)
    files = f"{toys},{games}"
    assert main(["train", "--recbole", files, "--out", str(tmp_path / "b"), *FAST]) == 0
    (bundle,) = (tmp_path / "b").iterdir()
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["domains"] == {"source": "toys", "target": "games"}
    capsys.readouterr()
    assert main(["evaluate", "bundle", str(bundle), "--recbole", files, "--split", "test"]) == 0
    assert "== test cold users" in capsys.readouterr().out
