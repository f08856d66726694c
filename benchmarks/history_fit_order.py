"""Why the history weights are fitted on shuffled streams: file order vs random order on cdrib.

Usage::

    python benchmarks/history_fit_order.py --cdrib ../shared/data/cdrib --source game \\
        --target video --bundle BUNDLE_DIR

``BUNDLE_DIR`` is a bundle of that pair with a history part (``coldbridge train`` or
``benchmarks/online_warmup.py``). Two tables, on the cold users who have valid and test items:

1. *Prefix vs test*: the first ``p`` of a user's valid items (in ``valid.txt`` order, or in a
   random order) as history; the history model's sampled MRR on the rest of their valid items
   and on their test items (999 negatives drawn per line, never an item of the user). If the
   order carries nothing, both columns agree.
2. *Fit and result*: :func:`coldbridge_trainer.history.fit_blend` on the valid users with
   ``order="file"`` and ``order="shuffled"`` (the default), and what each fitted ``a(n)``
   gives on test after all valid events (sampled MRR and HR@10, the blend of
   :meth:`HistoryModel.blend` over the transferred scores of the bundle's default strategy).

The transferred scores come from the server's resolver in process (no event streamed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("server", "plugins", "protos", "trainer", "bundle", "cli"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge_bundle.history import HistoryModel  # noqa: E402
from coldbridge_server import Settings, create_server, load_bundle  # noqa: E402
from coldbridge_server.bundle import Bundle, resolve_bundle_dir  # noqa: E402
from coldbridge_server.server import ColdbridgeServer  # noqa: E402
from coldbridge_server.serving.blend import vector_scores  # noqa: E402
from coldbridge_trainer.data import load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import EvalSplit, make_split, rank_metrics  # noqa: E402
from coldbridge_trainer.history import fit_blend  # noqa: E402

PREFIXES = (1, 3, 5)


def _metrics(cands: np.ndarray) -> tuple[float, float]:
    """Sampled line-averaged (MRR, HR@10) of candidate scores, positive first."""
    pos, neg = cands[:, :1], cands[:, 1:]
    m = rank_metrics((neg > pos).sum(1), (neg == pos).sum(1), ks=(10,))
    return float(m["MRR"].mean()), float(m["HR@10"].mean())


def prefix_vs_test(
    model: HistoryModel, valid: dict[str, list[int]], test: dict[str, list[int]], n_items: int
) -> list[str]:
    """Table 1 (module docstring) as Markdown rows."""
    rows = []
    for order in ("file", "shuffled"):
        for p in PREFIXES:
            rng = np.random.default_rng(1)
            out: dict[str, list[np.ndarray]] = {"valid": [], "test": []}
            for user in sorted(set(valid) & set(test)):
                v, t = np.array(valid[user]), np.array(test[user])
                if len(v) <= p:
                    continue
                if order == "shuffled":
                    v = v[rng.permutation(len(v))]
                scores = model.scores(v[:p].tolist())
                allowed = np.setdiff1d(np.arange(n_items), np.r_[v, t])
                for name, positives in (("valid", v[p:]), ("test", t)):
                    for q in positives:
                        negatives = rng.choice(allowed, 999, replace=False)
                        out[name].append(scores[np.r_[q, negatives]])
            mv, mt = (_metrics(np.stack(out[k]))[0] for k in ("valid", "test"))
            rows.append(f"| {order} | {p} | {len(out['valid'])} | {mv:.4f} | {mt:.4f} |")
    return rows


def transferred(server: ColdbridgeServer, bundle: Bundle, users: list[str]) -> np.ndarray:
    """``[len(users), N_t]`` served scores with no event: the resolver's answer in process."""
    out = []
    for user in users:
        r = server.engine.resolver.resolve(user)
        out.append(r.scores if r.scores is not None else vector_scores(bundle, r.vector))
    return np.stack(out).astype(np.float32)


def all_events(
    model: HistoryModel,
    weights: tuple[float, ...],
    test: EvalSplit,
    transferred: np.ndarray,
    valid: dict[str, list[int]],
) -> tuple[float, float]:
    """Sampled (MRR, HR@10) on test after all valid events, with ``a(n) = weights``."""
    fitted, rows = replace(model, history_weight=weights), []
    for row, user in enumerate(test.users):
        lines = np.flatnonzero(test.line_user == row)
        history = valid.get(user, [])
        served, _ = fitted.blend(transferred[row], history, len(history))
        rows.append(served[test.candidates[lines]])
    return _metrics(np.concatenate(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrib", type=Path, required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--bundle", required=True)
    args = parser.parse_args(argv)
    ds = load_cdrib(args.cdrib, args.source, args.target)
    bundle = load_bundle(resolve_bundle_dir(args.bundle))
    model = bundle.history
    if model is None:
        raise SystemExit("the bundle has no history part")
    valid_split = make_split(ds, ds.valid, exclude="split")
    test_split = make_split(ds, ds.test)
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(port=0, metrics_port=-1, state_dir=state, history_blend=False)
        server, _ = create_server(settings, bundle=bundle)
        try:
            tv, tt = (transferred(server, bundle, s.users) for s in (valid_split, test_split))
        finally:
            server.stop(None).wait()
    valid: dict[str, list[int]] = {}
    test: dict[str, list[int]] = {}
    for split, into in ((ds.valid, valid), (ds.test, test)):
        for user, item in zip(split.user_ids, split.items.tolist(), strict=True):
            into.setdefault(user, []).append(int(item))
    print(f"## {args.source} -> {args.target}\n")
    print("| order | p | valid lines | history MRR on the rest of valid | on test |")
    print("|---|---|---|---|---|")
    print("\n".join(prefix_vs_test(model, valid, test, len(bundle.target_item_index))))
    print("\n| fit order | a(1, 2, 3, 5, 10) | all events: test MRR | test HR@10 |")
    print("|---|---|---|---|")
    for order in ("file", "shuffled"):
        weights, _ = fit_blend(model, valid_split, tv, order=order)
        mrr, hr = all_events(model, weights, test_split, tt, valid)
        print(f"| {order} | {' / '.join(map(str, weights))} | {mrr:.4f} | {hr:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
