"""Hyperparameter sweep of the cold-start quality issue.

One process, --threads 1, appends JSONL rows.

Usage (the plans, rows and summary of the 2026-11-29 sweep are in results/quality_sweep/)::

    .venv/bin/python benchmarks/quality_sweep.py \
        benchmarks/results/quality_sweep/planA.json OUT.jsonl

PLAN: list of jobs {"direction": "game:video", "train": {TrainConfig overrides},
                    "groups": [{"label": str, "names": [...], "params": {name: {...}}}]}
Selection metric: valid sampled line MRR (the harness's select_metric); test scored once.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "plugins", "trainer"):
    sys.path.insert(0, str(ROOT / sub))

import torch  # noqa: E402
from coldbridge_plugins import get_plugin_manager, load_strategies  # noqa: E402
from coldbridge_trainer.config import TrainConfig  # noqa: E402
from coldbridge_trainer.data import load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import cooccurrence_scorer, score_split  # noqa: E402
from coldbridge_trainer.harness import selection_split, test_split  # noqa: E402
from coldbridge_trainer.strategies import fit_strategies, strategy_scorer  # noqa: E402
from coldbridge_trainer.train import fit  # noqa: E402

CDRIB = ROOT.parent / "shared" / "data" / "cdrib"


def metrics(scores, ev):
    r = score_split(scores, ev, (1, 5, 10), protocols=("sampled",)).sampled.line
    return r.mrr, r.hr(10)


def main(plan_path, out_path):
    plan = json.loads(Path(plan_path).read_text())
    registry = load_strategies(get_plugin_manager())
    cache = {}
    out = open(out_path, "a")
    for job in plan:
        src, tgt = job["direction"].split(":")
        if job["direction"] not in cache:
            ds = load_cdrib(CDRIB, src, tgt)
            base_cfg = TrainConfig(threads=1, progress=False)
            v, t = selection_split(ds, base_cfg), test_split(ds, base_cfg)
            co = cooccurrence_scorer(ds)
            vm, vh = metrics(co(v.users), v)
            tm, th = metrics(co(t.users), t)
            out.write(
                json.dumps(
                    {
                        "direction": job["direction"],
                        "train": {},
                        "label": "cooccurrence",
                        "valid_MRR": vm,
                        "valid_HR10": vh,
                        "test_HR10": th,
                        "test_MRR": tm,
                        "base_s": 0,
                        "strat_s": 0,
                    }
                )
                + "\n"
            )
            out.flush()
            cache = {job["direction"]: (ds, v, t)}
        ds, v, t = cache[job["direction"]]
        cfg = replace(
            TrainConfig(threads=1, progress=False),
            **{k: tuple(x) if isinstance(x, list) else x for k, x in job.get("train", {}).items()},
        )
        t0 = time.perf_counter()
        result = fit(ds, cfg, valid_split=v)
        base_s = round(time.perf_counter() - t0, 1)
        for g in job["groups"]:
            if "bridge" in g:  # refit only the bridge on this base (MF reused), report emcdr
                from coldbridge_trainer.models import Bridge
                from coldbridge_trainer.train import fit_bridge

                bcfg = replace(
                    cfg,
                    **{k: tuple(x) if isinstance(x, list) else x for k, x in g["bridge"].items()},
                )
                gen = torch.Generator().manual_seed(bcfg.seed)
                torch.manual_seed(bcfg.seed)
                copy = replace(
                    result, config=bcfg, bridge=Bridge(bcfg.dim, bcfg.dim, bcfg.bridge_hidden, gen)
                )
                t1 = time.perf_counter()
                hist = fit_bridge(copy, v, gen)
                bs = round(time.perf_counter() - t1, 1)
                vm, vh = metrics(copy.scorer()(v.users), v)
                tm, th = metrics(copy.scorer()(t.users), t)
                row = {
                    "direction": job["direction"],
                    "train": {**job.get("train", {}), **g["bridge"]},
                    "label": f"{g['label']}:emcdr",
                    "valid_MRR": round(vm, 4),
                    "valid_HR10": round(vh, 4),
                    "test_HR10": round(th, 4),
                    "test_MRR": round(tm, 4),
                    "base_s": base_s,
                    "strat_s": bs,
                    "bridge_best_epoch": max(hist, key=lambda h: h["valid_MRR"])["epoch"],
                }
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), flush=True)
                continue
            params = dict(g.get("params", {}))
            params.setdefault("softmap", {})
            params["softmap"] = {"threads": 1, **params["softmap"]}
            t1 = time.perf_counter()
            fitted = fit_strategies(result, v, g["names"], registry=registry, params=params)
            torch.set_num_threads(1)
            for n, f in fitted.items():
                if g.get("report") and n not in g["report"]:
                    continue
                vm, vh = metrics(strategy_scorer(f, result, v)(v.users), v)
                tm, th = metrics(strategy_scorer(f, result, t)(t.users), t)
                row = {
                    "direction": job["direction"],
                    "train": job.get("train", {}),
                    "label": f"{g['label']}:{n}",
                    "params": params.get(n, {}),
                    "chosen": f.config,
                    "valid_MRR": round(vm, 4),
                    "valid_HR10": round(vh, 4),
                    "test_HR10": round(th, 4),
                    "test_MRR": round(tm, 4),
                    "base_s": base_s,
                    "strat_s": f.seconds,
                    "bridge_best_epoch": result.metrics.get("best_epoch"),
                }
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), flush=True)
            del fitted
        del result


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
