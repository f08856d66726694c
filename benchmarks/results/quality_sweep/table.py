from __future__ import annotations

import json
import sys

rows = [
    json.loads(line)
    for line in open(
        sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/quality_sweep/runs.jsonl"
    )
]
seen = set()
print(
    "| # | direction | base train overrides | run:strategy | strategy params | valid MRR "
    "(selection) | valid HR@10 | test HR@10 | test MRR | base s | strategy s |"
)
print("|---|---|---|---|---|---|---|---|---|---|---|")
i = 0
for r in rows:
    if r["label"] == "cooccurrence":
        key = r["direction"]
        if key in seen:
            continue
        seen.add(key)
    i += 1
    p = {k: v for k, v in r.get("params", {}).items() if k != "threads"}
    print(
        f"| {i} | {r['direction']} | {json.dumps(r['train']) if r['train'] else 'defaults'} | "
        f"{r['label']} | "
        f"{json.dumps(p) if p else '-'} | {r['valid_MRR']:.4f} | {r['valid_HR10']:.4f} | "
        f"{r['test_HR10']:.4f} | "
        f"{r['test_MRR']:.4f} | {r['base_s']} | {r['strat_s']} |"
    )
