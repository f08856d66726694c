"""The reference curves, paired bootstrap comparisons, table and plot of ``online_warmup.py``.

Curves (all on the same candidate lists of test.txt):

* ``online``: what the server answers after each step of streamed valid events;
* ``static``: the bundle's default strategy with no event (the server at step 0);
* ``history_only``: the bundle's history model on exactly the events streamed so far
  (training popularity breaks its ties);
* ``warm``: the same history model on all of the user's valid events (the warm reference).

A comparison ``a - b`` of one metric is the line average's point difference and the 95%
percentile interval of its paired bootstrap over test users
(:func:`coldbridge_trainer.summary.bootstrap`: the same resampled users for every curve).
``online - best input`` is ``online - max(static, history_only)`` taken per resample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from coldbridge_bundle.history import HistoryModel
from coldbridge_trainer.report import WARMUP_CURVES, warmup_curve
from coldbridge_trainer.summary import bootstrap

__all__ = [
    "HistoryOnly",
    "METRICS",
    "PROTOCOLS",
    "compare",
    "format_markdown",
    "plot",
    "same_vector",
    "write_report",
]

METRICS = ("HR@10", "NDCG@10", "MRR")
PROTOCOLS = ("sampled", "full")
Lines = dict[str, dict[str, np.ndarray]]
"""``{protocol: {metric: per-line values}}`` of one curve at one step."""


class HistoryOnly:
    """History-only scores of the test users: the bundle's history model, popularity ties.

    Scores are an integer key over the target items the bundle knows (``-inf`` elsewhere):
    the dense rank of the history score, then the dense rank of the training popularity.
    """

    def __init__(
        self, model: HistoryModel, index: dict[str, int], items: list[str], popularity: Any
    ) -> None:
        self.model, self.index, self.n_items = model, index, len(items)
        self.known = np.array([i for i, t in enumerate(items) if t in index], dtype=np.int64)
        self.rows = np.array([index[items[i]] for i in self.known.tolist()], dtype=np.int64)
        pop = np.unique(np.asarray(popularity)[self.known], return_inverse=True)[1]
        self.pop, self.width = pop.astype(np.float64), float(pop.max(initial=0) + 1)

    def scores(self, streams: list[list[str]]) -> np.ndarray:
        """``[len(streams), N_t]`` for each user's streamed target item ids."""
        out = np.full((len(streams), self.n_items), -np.inf)
        for row, stream in enumerate(streams):
            bag = [self.index[t] for t in stream if t in self.index]
            history = self.model.scores(bag)[self.rows]
            dense = np.unique(history, return_inverse=True)[1].astype(np.float64)
            out[row, self.known] = dense * self.width + self.pop
        return out


def same_vector(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every user gets the mean of the users' score vectors over the known items."""
    out = np.full(scores.shape, -np.inf)
    out[:, known] = scores[:, known].astype(np.float64).mean(axis=0)
    return out


def _cell(point: float, samples: np.ndarray) -> dict[str, Any]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return {"diff": point, "ci95": [float(lo), float(hi)]}


def compare(curves: dict[str, Lines], line_user: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
    """Paired bootstrap differences of ``online`` at one step (module docstring).

    ``idx`` int ``[n_boot, n_users]`` are the resampled users. Returns
    ``{"vs_best_input"|"vs_static"|"vs_history_only"|"vs_warm": {protocol: {metric: {"diff",
    "ci95"}}}}``; ``vs_warm`` also holds ``ratio`` (online / warm, line averages).
    """
    n_users = idx.shape[1]
    out: dict[str, Any] = {}
    for proto in curves["online"]:
        for m in METRICS:
            boot = {
                c: bootstrap(v[proto][m], line_user, n_users, idx, "line")
                for c, v in curves.items()
            }
            mean = {c: float(v[proto][m].mean()) for c, v in curves.items()}
            best = max(mean["static"], mean["history_only"])
            pairs = {
                "vs_best_input": (
                    mean["online"] - best,
                    boot["online"] - np.maximum(boot["static"], boot["history_only"]),
                ),
                **{
                    "vs_" + c: (mean["online"] - mean[c], boot["online"] - boot[c])
                    for c in ("static", "history_only", "warm")
                },
            }
            for key, (point, samples) in pairs.items():
                out.setdefault(key, {}).setdefault(proto, {})[m] = _cell(point, samples)
            ratio = mean["online"] / mean["warm"] if mean["warm"] > 0 else float("nan")
            out["vs_warm"][proto][m]["ratio"] = ratio
    return out


def _diff(cell: dict[str, Any]) -> str:
    lo, hi = cell["ci95"]
    return f"{cell['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def format_markdown(results: dict[str, Any], direction: str) -> str:
    """One direction's table: four curves per step, then online - max(static, history-only)."""
    protos = [p for p in PROTOCOLS if p in results["static"]]
    cols = [(p, m) for p in protos for m in METRICS]
    head = " | ".join(f"{p} {m}" for p, m in cols)
    lines = [
        f"### {direction}",
        "",
        f"{results['meta']['users']} test users, {results['meta']['lines']} test lines; "
        "line-averaged; sampled = 999 negatives, full = every target item. "
        "Δ = online − max(static, history-only) with its 95 % paired bootstrap interval over "
        f"users ({results['meta']['n_boot']} resamples).",
        "",
        f"| events/user | curve | {head} |",
        "|---|---|" + "---|" * len(cols),
    ]
    for step in results["steps"]:
        for curve, name in WARMUP_CURVES.items():
            row = warmup_curve(results, curve, step)
            cells = " | ".join(f"{row[p]['line'][m]:.4f}" for p, m in cols)
            lines.append(f"| {step} | {name} | {cells} |")
        best = results["compare"][step]["vs_best_input"]
        cells = " | ".join(_diff(best[p][m]) for p, m in cols)
        lines.append(f"| {step} | **Δ vs best input** | {cells} |")
    warm = results["compare"]["all"]["vs_warm"]
    ratios = ", ".join(f"{p} {m} {warm[p][m]['ratio']:.3f}×" for p, m in cols)
    lines += ["", f"All valid events, online / warm reference: {ratios}."]
    if "same_vector" in results:
        sv = results["same_vector"]["sampled"]["line"]
        st = results["static"]["sampled"]["line"]
        lines.append(
            "Same-list-for-everyone baseline (mean of the users' static score vectors), sampled "
            f"HR@10 / MRR: {sv['HR@10']:.4f} / {sv['MRR']:.4f} (static "
            f"{st['HR@10']:.4f} / {st['MRR']:.4f})."
        )
    return "\n".join(lines)


def plot(merged: dict[str, dict[str, Any]], path: Path) -> None:
    """HR@10 against events streamed, the four curves, one column per direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protos = [p for p in PROTOCOLS if all(p in r["static"] for r in merged.values())]
    fig, axes = plt.subplots(
        len(protos), len(merged), figsize=(5 * len(merged), 3.4 * len(protos)), squeeze=False
    )
    for col, (direction, r) in enumerate(merged.items()):
        steps = r["steps"]
        for row, proto in enumerate(protos):
            ax = axes[row][col]
            for curve, name in WARMUP_CURVES.items():
                ys = [warmup_curve(r, curve, s)[proto]["line"]["HR@10"] for s in steps]
                ax.plot(range(len(steps)), ys, marker="o", label=name)
            ax.set_xticks(range(len(steps)), steps)
            ax.set_xlabel("streamed valid events per user")
            ax.set_title(f"{direction}: {proto} HR@10 (test)", fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report_dir: Path, direction: str, results: dict[str, Any]) -> str:
    """Merge ``results`` into ``online_warmup.json`` and rewrite the ``.md`` and ``.png``.

    Returns this direction's Markdown table.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "online_warmup.json"
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged[direction] = results
    path.write_text(json.dumps(merged, indent=1), encoding="utf-8")
    tables = [format_markdown(r, d) for d, r in sorted(merged.items())]
    text = "## Online warm-up (cdrib, test)\n\n" + "\n\n".join(tables) + "\n"
    (report_dir / "online_warmup.md").write_text(text, encoding="utf-8")
    plot(dict(sorted(merged.items())), report_dir / "online_warmup.png")
    return format_markdown(results, direction)
