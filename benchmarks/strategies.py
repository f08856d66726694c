"""Train every registered transfer strategy on both cdrib directions; print one markdown table.

Usage (from the repository root)::

    .venv/bin/python benchmarks/strategies.py --cdrib ../shared/data/cdrib [--json out.json]

For each direction (game -> video, video -> game) the base pipeline (MF of both domains,
source encoder, EMCDR bridge) is trained once with the default :class:`TrainConfig`, then
every strategy is fitted on it (model selection on the valid cold users only; their
candidate lists never depend on test.txt) and scored on the test cold users through its
*exported* ONNX parts (onnxruntime, the served path),
next to random, popularity and the training-free co-occurrence scorer, in the same run
and on the same candidate lists (sampled: 999 negatives, seed 2022; full ranking).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "server", "plugins", "trainer", "protos"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge_trainer.config import TrainConfig  # noqa: E402
from coldbridge_trainer.data import load_cdrib  # noqa: E402
from coldbridge_trainer.harness import BASELINES, run_direction  # noqa: E402

DIRECTIONS = (("game", "video"), ("video", "game"))
METRICS = ("HR@10", "NDCG@10", "MRR")


def run(
    cdrib: Path, names: list[str] | None, config: TrainConfig, partial: Path | None = None
) -> dict:
    """``{direction: {"rows": {scorer: test metrics}, "sha256": ..., "seconds": {...}}}``.

    The training / selection / scoring loop is :func:`coldbridge_trainer.harness.run_direction`
    (the one behind ``coldbridge evaluate report``), with the single seed ``config.seed``.
    """
    from coldbridge_plugins import get_plugin_manager, load_strategies
    from coldbridge_trainer.strategies import ordered_names

    registry = load_strategies(get_plugin_manager())
    names = [n for n in ordered_names(registry) if n in names] if names else ordered_names(registry)
    out = {}
    for source, target in DIRECTIONS:
        t0 = time.perf_counter()
        res = run_direction(
            load_cdrib(cdrib, source, target), names, [config.seed], config, registry=registry
        )
        test = res.averages("test")
        rows = {name: test[name].to_dict() for name in (*BASELINES, *names)}
        out[res.name] = {
            "rows": rows,
            "sha256": res.test_split.digest,
            "best_on_valid": res.best,
            "lines": len(res.test_split.positives),
            "users": len(res.test_split.users),
            "seconds": res.seconds[config.seed],
            "total_seconds": round(time.perf_counter() - t0, 1),
        }
        if partial is not None:
            partial.write_text(json.dumps(out, indent=1), encoding="utf-8")
        print(f"{res.name}: done in {out[res.name]['total_seconds']}s", file=sys.stderr)
    return out


def table(results: dict) -> str:
    """Markdown: one row per scorer, sampled and full columns per direction."""
    head = (
        "| scorer | direction | "
        + " | ".join(f"sampled {m}" for m in METRICS)
        + " | "
        + " | ".join(f"full {m}" for m in METRICS)
        + " |"
    )
    lines = [head, "|" + "---|" * (2 + 2 * len(METRICS))]
    for direction, res in results.items():
        for name, metrics in res["rows"].items():
            cells = [f"{metrics[p]['line'][m]:.4f}" for p in ("sampled", "full") for m in METRICS]
            lines.append(f"| {name} | {direction} | " + " | ".join(cells) + " |")
    notes = [
        f"- {d}: {r['lines']} test lines / {r['users']} users, candidates sha256 "
        f"{r['sha256'][:16]}, "
        f"best on valid {r['best_on_valid']}, fit seconds {r['seconds']}"
        for d, r in results.items()
    ]
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrib", type=Path, default=ROOT.parent / "shared" / "data" / "cdrib")
    parser.add_argument(
        "--strategies", default="", help="comma-separated names (default: all registered)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw metrics here")
    parser.add_argument(
        "--epochs", type=int, default=TrainConfig.epochs, help="MF epochs of the base"
    )
    parser.add_argument("--threads", type=int, default=TrainConfig.threads, help="torch threads")
    args = parser.parse_args(argv)
    config = TrainConfig(epochs=args.epochs, threads=args.threads, progress=False)
    results = run(
        args.cdrib, [n for n in args.strategies.split(",") if n] or None, config, args.json
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
