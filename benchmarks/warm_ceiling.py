"""Reference point for issue 5's targets: how good a list is once the cold user is *warm*.

For the test cold users of each cdrib direction, the user's own ``valid.txt`` target items
(about 6.5 per user) are taken as a known target history and scored by EASE (Steck 2019,
lambda = 200, dense, fitted on every target training user), on the test candidate lists
of the evaluation protocol. This reads valid.txt at test time, so it is **not** a cold-start
model and never a strategy: it only says what "1.5x co-occurrence" means in terms of a
user who has already given ~6 target interactions.

Usage::

    .venv/bin/python benchmarks/warm_ceiling.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("bundle", "plugins", "trainer"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge_trainer.config import TrainConfig  # noqa: E402
from coldbridge_trainer.data import load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import cooccurrence_scorer, score_split  # noqa: E402
from coldbridge_trainer.harness import test_split  # noqa: E402

CDRIB = ROOT.parent / "shared" / "data" / "cdrib"


def ease(users: np.ndarray, items: np.ndarray, n_items: int, lam: float) -> np.ndarray:
    pairs = np.unique(np.stack([users, items], 1), axis=0)
    x = np.zeros((pairs[:, 0].max() + 1, n_items), dtype=np.float32)
    x[pairs[:, 0], pairs[:, 1]] = 1.0
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices(n_items)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def main() -> None:
    for source, target in (("game", "video"), ("video", "game")):
        ds = load_cdrib(CDRIB, source, target)
        ev = test_split(ds, TrainConfig())
        known: dict[str, list[int]] = {}
        for user, item in zip(ds.valid.user_ids, ds.valid.items, strict=True):
            known.setdefault(user, []).append(int(item))
        h = np.zeros((len(ev.users), ds.target.n_items), dtype=np.float32)
        for row, user in enumerate(ev.users):
            h[row, known.get(user, [])] = 1.0
        pop = ds.target.popularity().astype(np.float32)
        warm = (
            h @ ease(ds.target.users, ds.target.items, ds.target.n_items, 200.0)
            + 1e-6 * pop / pop.max()
        )
        cooc = cooccurrence_scorer(ds)(ev.users)
        for name, scores in (("co-occurrence (cold)", cooc), ("warm EASE on valid items", warm)):
            r = score_split(np.asarray(scores), ev, protocols=("sampled", "full"))
            cells = "  ".join(
                f"{p} HR@10 {r.protocols[p].line.hr(10):.4f} MRR {r.protocols[p].line.mrr:.4f}"
                for p in ("sampled", "full")
            )
            print(f"{source} -> {target}  {name:26s} {cells}")
        print(
            f"{source} -> {target}  test users with valid items: "
            f"{int((h.sum(1) > 0).sum())}/{len(ev.users)}, "
            f"mean known items {h.sum(1).mean():.2f}"
        )


if __name__ == "__main__":
    main()
