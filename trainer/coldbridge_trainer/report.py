"""Statistics, Markdown report and plots of :mod:`coldbridge_trainer.harness` runs.

Numbers
-------
* every metric: mean ± std over the training seeds (baselines are seed-free: one run);
* headline numbers (HR@10, MRR; both protocols, line- and user-averaged): 95% percentile
  bootstrap interval over **users** (``n_boot`` resamples of the test users with
  replacement; a resampled user brings all of their lines) of the seed-averaged model;
* a difference to the co-occurrence scorer is called *real* only when the 95% interval of
  the **paired** bootstrap of the difference (same resampled users for both scorers)
  excludes 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coldbridge_trainer.harness import BASELINES, PROTOCOLS, DirectionRun

__all__ = ["HEADLINE", "bootstrap", "summarize", "write_report"]

HEADLINE = ("HR@10", "MRR")
AVERAGES = ("line", "user")
REFERENCE = "cooccurrence"


def _seed_mean(runs: list[dict[str, dict[str, np.ndarray]]], proto: str, metric: str) -> np.ndarray:
    return np.mean([r[proto][metric] for r in runs], axis=0)


def _average(values: np.ndarray, line_user: np.ndarray, n_users: int, how: str) -> float:
    if how == "line":
        return float(values.mean())
    counts = np.bincount(line_user, minlength=n_users)
    seen = counts > 0
    return float(np.mean(np.bincount(line_user, values, n_users)[seen] / counts[seen]))


def bootstrap(values: np.ndarray, line_user: np.ndarray, n_users: int, idx: np.ndarray, how: str) -> np.ndarray:
    """Bootstrap distribution ``[n_boot]`` of the line- or user-average of per-line ``values``.

    ``idx`` int ``[n_boot, n_users]`` holds the resampled users (shared between scorers to
    pair them).
    """
    sums = np.bincount(line_user, values, n_users)
    counts = np.bincount(line_user, minlength=n_users).astype(np.float64)
    if how == "line":
        return sums[idx].sum(1) / counts[idx].sum(1)
    per_user = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return per_user[idx].sum(1) / (counts[idx] > 0).sum(1)


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(run: DirectionRun, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """JSON-able summary of one direction: means, stds, intervals, paired differences."""
    ev = run.test_split
    n_users, lu = len(ev.users), ev.line_user
    idx = np.random.default_rng(seed).integers(0, n_users, size=(n_boot, n_users))
    scorers = [*BASELINES, *run.strategies]
    metrics = list(next(iter(run.test.values()))[0]["sampled"])
    out: dict[str, Any] = {
        "direction": run.name, "seeds": run.seeds, "best": run.best, "n_boot": n_boot,
        "test": {"lines": len(ev.positives), "users": n_users, "candidates": int(ev.candidates.shape[1]),
                 "candidates_sha256": ev.digest},
        "valid": {"lines": len(run.valid_split.positives), "users": len(run.valid_split.users),
                  "candidates_sha256": run.valid_split.digest},
        "scorers": {}, "valid_selection": {}, "seconds": run.seconds, "configs": run.configs,
        "profile": run.profile,
    }
    for name in run.strategies:
        vals = [float(r["sampled"]["MRR"].mean()) for r in run.valid[name]]
        out["valid_selection"][name] = {"MRR_mean": float(np.mean(vals)), "MRR_std": float(np.std(vals)),
                                        "per_seed": vals}
    boots: dict[tuple[str, str, str, str], np.ndarray] = {}
    for name in scorers:
        runs = run.test[name]
        entry: dict[str, Any] = {}
        for proto in PROTOCOLS:
            for how in AVERAGES:
                per_seed = {m: [_average(r[proto][m], lu, n_users, how) for r in runs] for m in metrics}
                cell = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v}
                        for m, v in per_seed.items()}
                for m in HEADLINE:
                    b = bootstrap(_seed_mean(runs, proto, m), lu, n_users, idx, how)
                    boots[name, proto, how, m] = b
                    cell[m]["ci95"] = _interval(b)
                entry.setdefault(proto, {})[how] = cell
        out["scorers"][name] = entry
    for name in scorers:
        if name == REFERENCE:
            continue
        diff: dict[str, Any] = {}
        for proto in PROTOCOLS:
            for how in AVERAGES:
                for m in HEADLINE:
                    d = boots[name, proto, how, m] - boots[REFERENCE, proto, how, m]
                    point = (out["scorers"][name][proto][how][m]["mean"]
                             - out["scorers"][REFERENCE][proto][how][m]["mean"])
                    lo, hi = _interval(d)
                    diff.setdefault(proto, {}).setdefault(how, {})[m] = {
                        "diff": point, "ci95": [lo, hi], "real": bool(lo > 0 or hi < 0),
                        "p_not_better": float(np.mean(d <= 0))}
        out["scorers"][name]["vs_" + REFERENCE] = diff
    return out


def _fmt(cell: dict[str, Any], ci: bool = True) -> str:
    many = len(cell.get("per_seed", ())) > 1
    text = f"{cell['mean']:.4f} ± {cell['std']:.4f}" if many else f"{cell['mean']:.4f}"
    if ci and "ci95" in cell:
        text += f" [{cell['ci95'][0]:.4f}, {cell['ci95'][1]:.4f}]"
    return text


def _direction_md(s: dict[str, Any], plot: str) -> list[str]:
    t, v = s["test"], s["valid"]
    names = list(s["scorers"])
    out = [f"## {s['direction']}", "",
           f"- test: {t['lines']} lines / {t['users']} cold users; sampled candidates "
           f"{t['candidates']} per line, sha256 `{t['candidates_sha256']}`",
           f"- valid (selection): {v['lines']} lines / {v['users']} users, candidates sha256 "
           f"`{v['candidates_sha256']}` (negatives never depend on test.txt)",
           f"- seeds {s['seeds']}; best strategy **selected on valid** (seed-mean sampled MRR): "
           f"**{s['best']}**", ""]
    for how in AVERAGES:
        out += [f"### Headline, test, {how}-averaged (mean ± std over seeds [95% bootstrap CI over users])", "",
                "| scorer | sampled HR@10 | sampled MRR | full HR@10 | full MRR |", "|---|---|---|---|---|"]
        for n in names:
            cells = [_fmt(s["scorers"][n][p][how][m]) for p in PROTOCOLS for m in HEADLINE]
            label = f"**{n}**" if n == s["best"] else n
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    out += [f"### Difference to {REFERENCE} (paired bootstrap over users, line-averaged)", "",
            "`diff [95% CI]`; ✓ = real (interval excludes 0), ✗ = not distinguishable.", "",
            "| scorer | sampled HR@10 | sampled MRR | full HR@10 | full MRR |", "|---|---|---|---|---|"]
    for n in names:
        if n == REFERENCE:
            continue
        d = s["scorers"][n]["vs_" + REFERENCE]
        cells = []
        for p in PROTOCOLS:
            for m in HEADLINE:
                c = d[p]["line"][m]
                cells.append(f"{c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] "
                             f"{'✓' if c['real'] else '✗'}")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out.append("")
    metrics = list(next(iter(s["scorers"].values()))["sampled"]["line"])
    for p in PROTOCOLS:
        for how in AVERAGES:
            out += [f"### All metrics, test, {p}, {how}-averaged (mean ± std over seeds)", "",
                    "| scorer | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
            for n in names:
                out.append(f"| {n} | " + " | ".join(_fmt(s["scorers"][n][p][how][m], ci=False)
                                                   for m in metrics) + " |")
            out.append("")
    out += ["### Model selection (valid, sampled, line-averaged MRR)", "",
            "| strategy | valid MRR (mean ± std) | per seed |", "|---|---|---|"]
    for n, c in s["valid_selection"].items():
        out.append(f"| {n} | {c['MRR_mean']:.4f} ± {c['MRR_std']:.4f} | "
                   + ", ".join(f"{x:.4f}" for x in c["per_seed"]) + " |")
    out += ["", "### Fit seconds (wall clock, shared machine)", "",
            "| seed | " + " | ".join(next(iter(s["seconds"].values()))) + " |",
            "|---" * (len(next(iter(s["seconds"].values()))) + 1) + "|"]
    for seed, secs in s["seconds"].items():
        out.append(f"| {seed} | " + " | ".join(f"{x:.1f}" for x in secs.values()) + " |")
    if s.get("profile"):
        pr = s["profile"]
        out += ["", f"Full training of the best strategy `{s['best']}` (base pipeline + "
                f"{', '.join(pr['strategies'])}; seed {pr['seed']}; fresh process): "
                f"**{pr['seconds']} s** wall clock, peak RSS **{pr['peak_rss_mib']} MiB** "
                f"(`ru_maxrss`, data loading included, {pr['load_seconds']} s of loading excluded from the time)."]
    out += ["", f"![test metrics]({plot})", ""]
    return out


def _bars(s: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(s["scorers"])
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    x = np.arange(len(names))
    for ax, (p, m) in zip(axes, [(p, m) for p in PROTOCOLS for m in HEADLINE], strict=True):
        cells = [s["scorers"][n][p]["line"][m] for n in names]
        means = np.array([c["mean"] for c in cells])
        lo = means - np.array([c["ci95"][0] for c in cells])
        hi = np.array([c["ci95"][1] for c in cells]) - means
        colors = ["#999999" if n in BASELINES else ("#d62728" if n == s["best"] else "#1f77b4") for n in names]
        ax.bar(x, means, yerr=np.clip(np.stack([lo, hi]), 0, None), color=colors, capsize=3)
        ax.axhline(s["scorers"][REFERENCE][p]["line"][m]["mean"], color="k", lw=0.8, ls="--")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{p} {m} (test, line-avg)", fontsize=10)
    fig.suptitle(f"{s['direction']}: mean over seeds {s['seeds']}, 95% bootstrap CI over users; "
                 f"dashed = {REFERENCE}; red = best on valid", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


WARMUP_STEPS = ("0", "1", "2", "5", "all")


def _warmup(data: dict[str, Any], path: Path) -> None:
    """Plot ``benchmarks/online_warmup.py --json`` output: metric vs streamed events per user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data if all(isinstance(v, dict) and "0" in v for v in data.values()) else {"": data}
    panels = [(p, m) for p in PROTOCOLS for m in HEADLINE
              if all(p in r.get("0", {}) for r in runs.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, (p, m) in zip(axes[0], panels, strict=True):
        for label, r in runs.items():
            steps = [k for k in WARMUP_STEPS if k in r]
            line = ax.plot(range(len(steps)), [r[k][p]["line"][m] for k in steps], marker="o",
                           label=label or "online")[0]
            if "popularity" in r:
                ax.axhline(r["popularity"][p]["line"][m], color=line.get_color(), ls=":", lw=0.8)
            ax.set_xticks(range(len(steps)), steps)
        ax.set_xlabel("streamed target events per cold user")
        ax.set_title(f"{p} {m} (test)", fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Online warm-up: step 0 = static transfer; dotted = popularity", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    runs: Sequence[DirectionRun], out_dir: Path, *, command: str, config: dict[str, Any],
    n_boot: int = 1000, warmup: dict[str, Any] | None = None,
) -> Path:
    """Write ``report.md``, ``results.json``, ``bars_<source>_<target>.png`` (and ``warmup.png``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(r, n_boot) for r in runs]
    md = ["# Cold-start evaluation report", "",
          f"Command: `{command}`", "",
          "Protocol (`shared/data/cdrib/README.md`): one case per test line; **sampled** = the "
          "positive against 999 distinct negatives from the target training items, never the "
          "user's held-out items, fixed seed (sha256 of the candidate lists below); **full** = "
          "against every target item. Ties broken at random in expectation. Line- and "
          "user-averaged. Model selection (early stopping, strategy hyperparameters, the best "
          "strategy) uses valid.txt only; test.txt is scored once per trained model. Baselines "
          "(random, popularity, training-free co-occurrence) come from the same run on the same "
          "candidate lists. Every headline number carries a 95% percentile bootstrap interval "
          f"over users ({n_boot} resamples); a difference to co-occurrence is *real* when the "
          "paired-bootstrap interval of the difference excludes 0.", "",
          "Training config (`seed` replaced by each training seed; baselines are seed-free, "
          "one run, no ± shown): `"
          + json.dumps({k: v for k, v in config.items() if k not in ("seed", "progress")}, sort_keys=True)
          + "`", ""]
    summary_rows = ["| direction | best (on valid) | test sampled HR@10 | test sampled MRR | "
                    "Δ HR@10 vs co-occ. | Δ MRR vs co-occ. |", "|---|---|---|---|---|---|"]
    for s in summaries:
        b = s["best"]
        cell = s["scorers"][b]["sampled"]["line"]
        d = s["scorers"][b]["vs_" + REFERENCE]["sampled"]["line"]
        summary_rows.append(
            f"| {s['direction']} | {b} | {_fmt(cell['HR@10'])} | {_fmt(cell['MRR'])} | "
            + " | ".join(f"{d[m]['diff']:+.4f} [{d[m]['ci95'][0]:+.4f}, {d[m]['ci95'][1]:+.4f}] "
                         f"{'✓' if d[m]['real'] else '✗'}" for m in HEADLINE) + " |")
    md += ["## Summary", "", *summary_rows, ""]
    for s in summaries:
        plot = f"bars_{s['direction'].replace(' -> ', '_')}.png"
        _bars(s, out_dir / plot)
        md += _direction_md(s, plot)
    if warmup is not None:
        _warmup(warmup, out_dir / "warmup.png")
        md += ["## Online warm-up", "", "Metric on test.txt vs the number of the cold users' "
               "valid.txt events streamed through the server (`benchmarks/online_warmup.py --json`).",
               "", "![warm-up](warmup.png)", ""]
    (out_dir / "results.json").write_text(json.dumps(summaries, indent=1), encoding="utf-8")
    path = out_dir / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
