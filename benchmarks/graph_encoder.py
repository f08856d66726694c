"""Issue 5's last untried idea: a joint-graph encoder in the style of CDRIB/VBGE (LightGCN).

One bipartite graph holds both domains: every source and target training user (an
overlapping user is one node, so it links its source and target items), every source item
and every target item. LightGCN (He et al. 2020: symmetric-normalised propagation, no
weights, the mean of the layer outputs) is trained with BPR on all training edges, each
negative drawn from the positive's own domain; target-domain edges can be up-weighted.
A cold user is a node with source edges only; its propagated embedding is scored against
the propagated target items. This is a measurement, not a strategy: it keeps the epoch
with the best valid MRR (sampled protocol) and reports test once, for that epoch.

Usage::

    .venv/bin/python benchmarks/graph_encoder.py --source game --target video
    .venv/bin/python benchmarks/graph_encoder.py --source video --target game
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "plugins", "trainer"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge_trainer.config import TrainConfig  # noqa: E402
from coldbridge_trainer.data import load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import score_split  # noqa: E402
from coldbridge_trainer.harness import selection_split, test_split  # noqa: E402

CDRIB = ROOT.parent / "shared" / "data" / "cdrib"
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def graph(ds) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, int, int]:  # type: ignore[no-untyped-def]
    """Normalised adjacency; edge arrays (user node, item node offset from the first item, "
    "domain)."""
    src, tgt = ds.source, ds.target
    node = np.full(tgt.n_users, -1, dtype=np.int64)
    for row, user in enumerate(tgt.user_ids):
        node[row] = src.user_index.get(user, -1)
    rest = np.flatnonzero(node < 0)
    node[rest] = src.n_users + np.arange(len(rest))
    n_users = src.n_users + len(rest)
    pairs_s = np.unique(np.stack([src.users, src.items], 1), axis=0)
    pairs_t = np.unique(np.stack([node[tgt.users], src.n_items + tgt.items], 1), axis=0)
    eu = np.concatenate([pairs_s[:, 0], pairs_t[:, 0]])
    ei = np.concatenate([pairs_s[:, 1], pairs_t[:, 1]])
    dom = np.concatenate([np.zeros(len(pairs_s), np.int64), np.ones(len(pairs_t), np.int64)])
    n = n_users + src.n_items + tgt.n_items
    r, c = np.concatenate([eu, n_users + ei]), np.concatenate([n_users + ei, eu])
    deg = np.bincount(r, minlength=n).astype(np.float64)
    w = (1.0 / np.sqrt(deg[r] * deg[c])).astype(np.float32)
    adj = (
        torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([r, c])), torch.from_numpy(w), (n, n), check_invariants=True
        )
        .coalesce()
        .to_sparse_csr()
    )
    return adj, eu, ei, dom, n_users, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="game")
    p.add_argument("--target", default="video")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--reg", type=float, default=1e-4)
    p.add_argument(
        "--target-weight", type=float, default=3.0, help="loss weight of target-domain edges"
    )
    p.add_argument("--every", type=int, default=3, help="evaluate on valid every N epochs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    ds = load_cdrib(CDRIB, a.source, a.target)
    cfg = TrainConfig()
    valid, test = selection_split(ds, cfg), test_split(ds, cfg)
    ns, nt = ds.source.n_items, ds.target.n_items
    adj, eu, ei, dom, n_users, n = graph(ds)
    print(
        f"{a.source} -> {a.target}: {n_users} user nodes, {ns} + {nt} items, {len(eu)} edges; "
        f"{vars(a)}"
    )
    emb = torch.nn.Parameter(torch.randn(n, a.dim) * 0.1)
    opt = torch.optim.Adam([emb], lr=a.lr)

    def propagate() -> torch.Tensor:
        h, acc = emb, emb
        for _ in range(a.layers):
            h = adj @ h
            acc = acc + h
        return acc / (a.layers + 1)

    def metrics(out: torch.Tensor, ev) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        rows = [ds.source.user_index[u] for u in ev.users]
        scores = (out[rows] @ out[n_users + ns :].T).numpy()
        r = score_split(scores, ev, protocols=("sampled",)).sampled.line
        return r.hr(10), r.mrr

    eu_t, ei_t, dom_t = map(torch.from_numpy, (eu, ei, dom))
    weight = torch.where(dom_t == 1, a.target_weight, 1.0)
    lo, width = torch.tensor([0, ns]), torch.tensor([ns, nt])
    best: tuple[float, int, tuple[float, float]] = (-1.0, 0, (0.0, 0.0))
    start = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(eu))
        for b in range(0, len(perm), a.batch):
            idx = perm[b : b + a.batch]
            u, i, d = eu_t[idx], ei_t[idx], dom_t[idx]
            j = lo[d] + (torch.rand(len(idx)) * width[d]).long()
            out = propagate()
            fu, fi, fj = out[u], out[n_users + i], out[n_users + j]
            loss = (
                torch.nn.functional.softplus((fu * fj).sum(-1) - (fu * fi).sum(-1)) * weight[idx]
            ).mean()
            loss = loss + a.reg * (
                emb[u].square().sum()
                + emb[n_users + i].square().sum()
                + emb[n_users + j].square().sum()
            ) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % a.every == 0 or epoch == a.epochs:
            with torch.no_grad():
                out = propagate()
                hr, mrr = metrics(out, valid)
                if mrr > best[0]:
                    best = (mrr, epoch, metrics(out, test))
            print(
                f"epoch {epoch:3d}  valid HR@10 {hr:.4f} MRR {mrr:.4f}  "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    mrr, epoch, (thr, tmrr) = best
    print(
        f"{a.source} -> {a.target}  best valid MRR {mrr:.4f} at epoch {epoch}: "
        f"test sampled HR@10 {thr:.4f} MRR {tmrr:.4f}"
    )


if __name__ == "__main__":
    main()
