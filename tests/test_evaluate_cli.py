"""``coldbridge evaluate`` on a small synthetic dataset: bundle mode and report mode (``--data``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coldbridge_server import cli

SMALL = ["--n-overlap", "200", "--n-source-only", "50", "--n-target-only", "50", "--n-cold", "60",
         "--n-source-items", "120", "--n-target-items", "120"]
FAST = ["--epochs", "2", "--bridge-epochs", "3", "--patience", "2", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert cli.main(["datagen", "--out", str(out), "--seed", "3", *SMALL]) == 0
    return out


def test_bundle_mode_still_scores_a_bundle(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "b"), *FAST]) == 0
    (bundle,) = (tmp_path / "b").iterdir()
    capsys.readouterr()
    assert cli.main(["evaluate", "--bundle", str(bundle), "--data", str(data), "--split", "both"]) == 0
    out = capsys.readouterr().out
    assert "== valid cold users" in out and "== test cold users" in out and "sha256=" in out
    assert all(name in out for name in ("bundle", "popularity", "cooccurrence", "random"))


def test_report_mode_on_a_dataset_directory(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["evaluate", "--data", str(data), "--strategies", "emcdr,fusion,itemmap", "--seeds", "1,2",
            "--report-dir", str(out), "--bootstrap", "100", "--negatives", "50", "--train-negatives", "3", *FAST]
    assert cli.main(argv) == 0
    (summary,) = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(summary["scorers"]) == ["random", "popularity", "cooccurrence", "emcdr", "itemmap", "fusion"]
    assert summary["seeds"] == [1, 2] and summary["best"] in ("emcdr", "itemmap", "fusion")
    cell = summary["scorers"]["itemmap"]["full"]["user"]["MRR"]
    assert len(cell["per_seed"]) == 2 and cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    assert summary["profile"]["peak_rss_mib"] > 0
    assert (out / "bars_books_movies.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "±" in report
    # evaluation negatives and the base MF's training negatives are separate flags
    assert summary["test"]["candidates"] == 51
    assert '"negatives": 3' in report and '"eval_negatives": 50' in report


def test_evaluate_needs_a_bundle_or_strategies(data: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--data", str(data)])
    assert exc.value.code == 2
