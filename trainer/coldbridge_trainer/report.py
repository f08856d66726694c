"""Markdown report and plots of :mod:`coldbridge_trainer.harness` runs.

The numbers come from :func:`coldbridge_trainer.summary.summarize` (typed
:class:`~coldbridge_trainer.summary.DirectionSummary`); :func:`write_summaries` renders
summaries, so a saved ``results.json`` can be re-rendered through
:meth:`~coldbridge_trainer.summary.DirectionSummary.from_dict`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coldbridge_trainer.harness import BASELINES, PROTOCOLS, DirectionRun
from coldbridge_trainer.summary import (
    AVERAGES,
    HEADLINE,
    REFERENCE,
    Cell,
    Difference,
    DirectionSummary,
    bootstrap,
    summarize,
)

__all__ = [
    "HEADLINE",
    "WARMUP_CURVES",
    "bootstrap",
    "summarize",
    "warmup_curve",
    "write_report",
    "write_summaries",
]


def _fmt(cell: Cell, ci: bool = True) -> str:
    many = len(cell.per_seed) > 1
    text = f"{cell.mean:.4f} ± {cell.std:.4f}" if many else f"{cell.mean:.4f}"
    if ci and cell.ci95 is not None:
        text += f" [{cell.ci95[0]:.4f}, {cell.ci95[1]:.4f}]"
    return text


def _fmt_diff(d: Difference) -> str:
    return f"{d.diff:+.4f} [{d.ci95[0]:+.4f}, {d.ci95[1]:+.4f}] {'✓' if d.real else '✗'}"


_HEAD4 = [
    "| scorer | sampled HR@10 | sampled MRR | full HR@10 | full MRR |",
    "|---|---|---|---|---|",
]


def _header_md(s: DirectionSummary) -> list[str]:
    t, v = s.test, s.valid
    return [
        f"## {s.direction}",
        "",
        f"- test: {t['lines']} lines / {t['users']} cold users; sampled candidates "
        f"{t['candidates']} per line, sha256 `{t['candidates_sha256']}`",
        f"- valid (selection): {v['lines']} lines / {v['users']} users, candidates sha256 "
        f"`{v['candidates_sha256']}` (negatives never depend on test.txt)",
        f"- seeds {s.seeds}; best strategy **selected on valid** (seed-mean sampled MRR): "
        f"**{s.best}**",
        "",
    ]


def _headline_md(s: DirectionSummary) -> list[str]:
    out = []
    for how in AVERAGES:
        out += [
            f"### Headline, test, {how}-averaged (mean ± std over seeds "
            "[95% bootstrap CI over users])",
            "",
            *_HEAD4,
        ]
        for n, sc in s.scorers.items():
            cells = [_fmt(sc.cell(p, how, m)) for p in PROTOCOLS for m in HEADLINE]
            label = f"**{n}**" if n == s.best else n
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        f"### Difference to {REFERENCE} (paired bootstrap over users, line-averaged)",
        "",
        "`diff [95% CI]`; ✓ = real (interval excludes 0), ✗ = not distinguishable.",
        "",
        *_HEAD4,
    ]
    for n, sc in s.scorers.items():
        if n != REFERENCE:
            cells = [_fmt_diff(sc.difference(p, "line", m)) for p in PROTOCOLS for m in HEADLINE]
            out.append(f"| {n} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _all_metrics_md(s: DirectionSummary) -> list[str]:
    out = []
    metrics = list(next(iter(s.scorers.values())).cells["sampled"]["line"])
    for p in PROTOCOLS:
        for how in AVERAGES:
            out += [
                f"### All metrics, test, {p}, {how}-averaged (mean ± std over seeds)",
                "",
                "| scorer | " + " | ".join(metrics) + " |",
                "|---" * (len(metrics) + 1) + "|",
            ]
            for n, sc in s.scorers.items():
                out.append(
                    f"| {n} | "
                    + " | ".join(_fmt(sc.cell(p, how, m), ci=False) for m in metrics)
                    + " |"
                )
            out.append("")
    return out


def _selection_md(s: DirectionSummary) -> list[str]:
    out = [
        "### Model selection (valid, sampled, line-averaged MRR)",
        "",
        "| strategy | valid MRR (mean ± std) | per seed |",
        "|---|---|---|",
    ]
    for n, c in s.valid_selection.items():
        out.append(
            f"| {n} | {c.mrr_mean:.4f} ± {c.mrr_std:.4f} | "
            + ", ".join(f"{x:.4f}" for x in c.per_seed)
            + " |"
        )
    first = next(iter(s.seconds.values()))
    out += [
        "",
        "### Fit seconds (wall clock, shared machine)",
        "",
        "| seed | " + " | ".join(first) + " |",
        "|---" * (len(first) + 1) + "|",
    ]
    for seed, secs in s.seconds.items():
        out.append(f"| {seed} | " + " | ".join(f"{x:.1f}" for x in secs.values()) + " |")
    if s.profile:
        pr = s.profile
        out += [
            "",
            f"Full training of the best strategy `{s.best}` (base pipeline + "
            f"{', '.join(pr['strategies'])}; seed {pr['seed']}; fresh process): "
            f"**{pr['seconds']} s** wall clock, peak RSS **{pr['peak_rss_mib']} MiB** "
            f"(`ru_maxrss`, data loading included, {pr['load_seconds']} s of loading "
            "excluded from the time).",
        ]
    return out


def _direction_md(s: DirectionSummary, plot: str) -> list[str]:
    return [
        *_header_md(s),
        *_headline_md(s),
        *_all_metrics_md(s),
        *_selection_md(s),
        "",
        f"![test metrics]({plot})",
        "",
    ]


def _bars(s: DirectionSummary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(s.scorers)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    x = np.arange(len(names))
    for ax, (p, m) in zip(axes, [(p, m) for p in PROTOCOLS for m in HEADLINE], strict=True):
        cells = [s.scorers[n].cell(p, "line", m) for n in names]
        means = np.array([c.mean for c in cells])
        lo = means - np.array([c.ci95[0] for c in cells if c.ci95 is not None])
        hi = np.array([c.ci95[1] for c in cells if c.ci95 is not None]) - means
        colors = [
            "#999999" if n in BASELINES else ("#d62728" if n == s.best else "#1f77b4")
            for n in names
        ]
        ax.bar(x, means, yerr=np.clip(np.stack([lo, hi]), 0, None), color=colors, capsize=3)
        ax.axhline(s.scorers[REFERENCE].cell(p, "line", m).mean, color="k", lw=0.8, ls="--")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{p} {m} (test, line-avg)", fontsize=10)
    fig.suptitle(
        f"{s.direction}: mean over seeds {s.seeds}, 95% bootstrap CI over users; "
        f"dashed = {REFERENCE}; red = best on valid",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


WARMUP_STEPS = ("0", "1", "2", "3", "5", "10", "all")
WARMUP_CURVES = {
    "online": "coldbridge online",
    "static": "static best (no event)",
    "history_only": "history-only (streamed)",
    "warm": "warm reference (all valid)",
}
"""The curves of ``benchmarks/online_warmup.py`` output and their labels: the server's
answers, the static strategy with no event, the history model on the events streamed so far,
and on all of them (:func:`warmup_curve` reads one)."""


def warmup_curve(run: dict[str, Any], curve: str, step: str) -> dict[str, Any]:
    """One curve's metrics at ``step`` in a direction's ``benchmarks/online_warmup.py`` output.

    Raises
    ------
    KeyError
        If ``run`` does not have the curve at ``step``.
    """
    cell: dict[str, Any]
    if curve == "online":
        cell = run[step]
    elif curve == "history_only":
        cell = run["history_only"][step]
    else:
        cell = run[curve]
    return cell


def _warmup(data: dict[str, Any], path: Path) -> None:
    """Plot ``benchmarks/online_warmup.py`` output: each curve against streamed events.

    One panel per (direction, protocol, metric); the online curve, and the static,
    history-only and warm-reference curves where the run has them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data if all(isinstance(v, dict) and "0" in v for v in data.values()) else {"": data}
    panels = [(p, m) for p in PROTOCOLS for m in HEADLINE]
    fig, axes = plt.subplots(
        len(runs), len(panels), figsize=(4 * len(panels), 3.4 * len(runs)), squeeze=False
    )
    for row, (d, r) in enumerate(runs.items()):
        steps = [k for k in WARMUP_STEPS if k in r]
        for ax, (p, m) in zip(axes[row], panels, strict=True):
            if p not in r.get("0", {}):
                ax.set_axis_off()
                continue
            for curve, label in WARMUP_CURVES.items():
                try:
                    ys = [warmup_curve(r, curve, k)[p]["line"][m] for k in steps]
                except KeyError:  # a run without this curve
                    continue
                ax.plot(range(len(steps)), ys, marker="o", label=label)
            if "popularity" in r:
                ax.axhline(r["popularity"][p]["line"][m], color="grey", ls=":", lw=0.8)
            ax.set_xticks(range(len(steps)), steps)
            ax.set_xlabel("streamed target events per cold user")
            ax.set_title(f"{d} {p} {m} (test)".strip(), fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Online warm-up: step 0 = static transfer; dotted = popularity", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _intro_md(command: str, config: dict[str, Any], n_boot: int) -> list[str]:
    return [
        "# Cold-start evaluation report",
        "",
        f"Command: `{command}`",
        "",
        "Protocol (`shared/data/cdrib/README.md`): one case per test line; **sampled** = the "
        "positive against 999 distinct negatives from the target training items, never the "
        "user's held-out items, fixed seed (sha256 of the candidate lists below); **full** = "
        "against every target item. Ties broken at random in expectation. Line- and "
        "user-averaged. Model selection (early stopping, strategy hyperparameters, the best "
        "strategy) uses valid.txt only; test.txt is scored once per trained model. Baselines "
        "(random, popularity, training-free co-occurrence) come from the same run on the "
        "same candidate lists. Every headline number carries a 95% percentile bootstrap "
        f"interval over users ({n_boot} resamples); a difference to co-occurrence is *real* "
        "when the paired-bootstrap interval of the difference excludes 0.",
        "",
        "Training config (`seed` replaced by each training seed; baselines are seed-free, "
        "one run, no ± shown): `"
        + json.dumps(
            {k: v for k, v in config.items() if k not in ("seed", "progress")}, sort_keys=True
        )
        + "`",
        "",
    ]


def _summary_md(summaries: Sequence[DirectionSummary]) -> list[str]:
    rows = [
        "| direction | best (on valid) | test sampled HR@10 | test sampled MRR | "
        "Δ HR@10 vs co-occ. | Δ MRR vs co-occ. |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        best = s.scorers[str(s.best)]
        rows.append(
            f"| {s.direction} | {s.best} | {_fmt(best.cell('sampled', 'line', 'HR@10'))} | "
            f"{_fmt(best.cell('sampled', 'line', 'MRR'))} | "
            + " | ".join(_fmt_diff(best.difference("sampled", "line", m)) for m in HEADLINE)
            + " |"
        )
    return ["## Summary", "", *rows, ""]


def write_summaries(
    summaries: Sequence[DirectionSummary],
    out_dir: Path,
    *,
    command: str,
    config: dict[str, Any],
    n_boot: int = 1000,
    warmup: dict[str, Any] | None = None,
) -> Path:
    """Render ``report.md``, ``results.json``, the bar plots (and ``warmup.png``) of summaries.

    ``summaries`` come from :func:`summarize`, or from a saved ``results.json`` through
    :meth:`DirectionSummary.from_dict`.

    Returns
    -------
    pathlib.Path
        ``out_dir / "report.md"``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [*_intro_md(command, config, n_boot), *_summary_md(summaries)]
    for s in summaries:
        plot = f"bars_{s.direction.replace(' -> ', '_')}.png"
        _bars(s, out_dir / plot)
        md += _direction_md(s, plot)
    if warmup is not None:
        _warmup(warmup, out_dir / "warmup.png")
        md += [
            "## Online warm-up",
            "",
            "Metric on test.txt vs the number of the cold users' "
            "valid.txt events streamed through the server "
            "(`benchmarks/online_warmup.py --json`).",
            "",
            "![warm-up](warmup.png)",
            "",
        ]
    data = [s.to_dict() for s in summaries]
    (out_dir / "results.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    path = out_dir / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path


def write_report(
    runs: Sequence[DirectionRun],
    out_dir: Path,
    *,
    command: str,
    config: dict[str, Any],
    n_boot: int = 1000,
    warmup: dict[str, Any] | None = None,
) -> Path:
    """Summarize ``runs`` and write the report (see :func:`write_summaries`)."""
    summaries = [summarize(r, n_boot) for r in runs]
    return write_summaries(
        summaries, out_dir, command=command, config=config, n_boot=n_boot, warmup=warmup
    )
