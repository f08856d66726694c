"""The evaluation report's warm-up plot draws every curve the benchmark measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from coldbridge_trainer.report import WARMUP_CURVES, _warmup

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks/results/online_warmup"


def _drawn(data: dict[str, Any], path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figures: list[Any] = []
    close = plt.close

    def keep(fig: Any = None) -> None:
        figures.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    _warmup(data, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    return [ax for ax in figures[0].axes if ax.axison]


def _labels(ax: Any) -> list[str]:
    """Labels of the plotted curves (matplotlib names unlabelled lines such as the
    popularity reference ``_child<n>``)."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_each_panel_has_the_four_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads((RESULTS / "online_warmup.json").read_text(encoding="utf-8"))
    axes = _drawn(data, tmp_path / "warmup.png", monkeypatch)
    assert len(axes) == 4 * len(data)  # (sampled, full) x (HR@10, MRR) per direction
    for ax in axes:
        assert _labels(ax) == list(WARMUP_CURVES.values())
        online = ax.get_lines()[0].get_ydata()
        assert len(online) == len(data["game -> video"]["steps"])


def test_a_run_without_the_reference_curves_draws_online_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell = {"sampled": {"line": {"HR@10": 0.1, "MRR": 0.05}}}
    axes = _drawn({"0": cell, "all": cell}, tmp_path / "warmup.png", monkeypatch)
    assert [_labels(ax) for ax in axes] == [[WARMUP_CURVES["online"]]] * 2
