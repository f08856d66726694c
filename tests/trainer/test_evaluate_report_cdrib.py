"""Real CDRIB data, reduced budget: ``coldbridge evaluate report`` writes the report.

One direction (game -> video), one seed, few epochs, the closed-form and fast strategies
(``itemmap``, ``knn``, ``kernelmap`` with both EASE steps, and their valid-fitted blend
``fusion``) next to random, popularity and the
co-occurrence scorer, through the real console-script entry point. The strategy selected on
valid must beat co-occurrence on test (sampled protocol, HR@10 and MRR). The full run (every
strategy, both directions, three seeds) is in benchmarks/results/evaluation/report.md, the
configuration of record in benchmarks/results/evaluation_fusion_balanced/report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coldbridge_cli import main

pytestmark = [pytest.mark.cdrib, pytest.mark.slow]
CDRIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdrib"
PNG = b"\x89PNG\r\n\x1a\n"


def _warmup_json(path: Path) -> Path:
    """A file in the ``benchmarks/online_warmup.py --json`` layout (plot input only)."""

    def cell(hr: float, mrr: float) -> dict[str, dict[str, dict[str, float]]]:
        return {
            "sampled": {"line": {"HR@10": hr, "MRR": mrr}},
            "full": {"line": {"HR@10": hr / 3, "MRR": mrr / 3}},
        }

    steps = {
        "0": cell(0.12, 0.06),
        "1": cell(0.14, 0.07),
        "2": cell(0.15, 0.08),
        "5": cell(0.17, 0.09),
        "all": cell(0.2, 0.1),
        "popularity": cell(0.07, 0.04),
    }
    path.write_text(json.dumps({"game -> video": steps}), encoding="utf-8")
    return path


@pytest.mark.timeout(900)
def test_evaluate_report_on_real_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (CDRIB / "video_game" / "test.txt").is_file(), f"CDRIB data not found at {CDRIB}"
    out = tmp_path / "report"
    argv = [
        "evaluate",
        "report",
        "--cdrib",
        str(CDRIB),
        "--source",
        "game",
        "--target",
        "video",
        "--strategies",
        "itemmap,knn,kernelmap,fusion",
        "--seeds",
        "1",
        "--report-dir",
        str(out),
        "--epochs",
        "5",
        "--bridge-epochs",
        "6",
        "--patience",
        "3",
        "--threads",
        "1",
        "--bootstrap",
        "300",
        "--warmup-json",
        str(_warmup_json(tmp_path / "warmup.json")),
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out

    for name in ("report.md", "results.json", "bars_game_video.png", "warmup.png"):
        assert (out / name).is_file(), name
    for name in ("bars_game_video.png", "warmup.png"):
        assert (out / name).read_bytes()[:8] == PNG
    (summary,) = json.loads((out / "results.json").read_text(encoding="utf-8"))
    report = (out / "report.md").read_text(encoding="utf-8")
    sha = summary["test"]["candidates_sha256"]
    assert len(sha) == 64 and sha in report and sha in printed
    assert summary["test"]["candidates"] == 1000

    scorers = summary["scorers"]
    assert set(scorers) == {
        "random",
        "popularity",
        "cooccurrence",
        "itemmap",
        "knn",
        "kernelmap",
        "fusion",
    }
    for name, res in scorers.items():
        for proto in ("sampled", "full"):
            for avg in ("line", "user"):
                cell = res[proto][avg]
                assert set(cell) == {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"}
                for metric in ("HR@10", "MRR"):
                    lo, hi = cell[metric]["ci95"]
                    assert lo <= cell[metric]["mean"] <= hi, (name, proto, avg, metric)
    assert scorers["random"]["sampled"]["line"]["HR@10"]["mean"] == pytest.approx(0.01)

    best = summary["best"]  # chosen on valid only
    assert best in ("itemmap", "knn", "kernelmap", "fusion") and f"**{best}**" in report
    for metric in ("HR@10", "MRR"):
        got = scorers[best]["sampled"]["line"][metric]["mean"]
        ref = scorers["cooccurrence"]["sampled"]["line"][metric]["mean"]
        assert got > ref, (best, metric, got, ref)
        diff = scorers[best]["vs_cooccurrence"]["sampled"]["line"][metric]
        assert diff["diff"] == pytest.approx(got - ref)
    profile = summary["profile"]
    assert profile["seconds"] > 0 and profile["peak_rss_mib"] > 0 and best in profile["strategies"]
    assert "Full training of the best strategy" in report and "![warm-up](warmup.png)" in report
