"""Trainer half of ``kernelmap``: kernel ridge over the overlapping users, EASE on both sides.

A cold user is compared with every overlapping user (in both training sets) through their
source histories, and the overlapping users' target histories are combined by kernel
ridge regression; the result is then spread along the target domain's item-to-item
structure. Both domains' EASE models (:mod:`.ease`, fitted on *all* users of a domain)
carry the structure the ~1,700 overlapping users alone cannot:

* **source smoothing**: a history ``x`` (item counts over source items) becomes
  ``z = x + g * x B_s`` (``B_s`` the source EASE weights, top-``k`` per item), so a cold
  user whose items no overlapping user took still resembles the users who took related
  items (on cdrib, 12-17% of the cold users' source rows are such items);
* **kernel ridge**: ``k(x, u) = z . z_u / |z_u|`` with the overlapping users' smoothed,
  normalised profiles ``Z``; ``A = (Z Z^T + lambda I)^{-1} Y_eta`` where ``Y_eta`` are the
  overlapping users' binary target rows divided by ``|y_u| ** eta``; ``s = k(x) A``;
* **target smoothing**: ``q = s + beta * s B_t`` (top-``k`` gather, as in ``softmap``).

The cold user's own norm ``|z|`` is left out: it scales a user's scores uniformly, which
changes no ranking (and ``fusion`` standardises per user). ``g``, ``eta``, ``lambda`` and
``beta`` are picked on the valid cold users (sampled MRR); nothing here is random, so
every seed gives the same model.

Exported graph: ``z Z^T`` is linear in the history, so the rows ``G = (I + g B_s) Z^T``
(one per source item, compacted to the non-zero ones) are precomputed; the graph
gathers/sums the history's rows of ``G``, ``MatMul A``, then the target neighbour gather.
"""

from __future__ import annotations

import numpy as np
import torch
from coldbridge_trainer.strategies.context import TrainContext
from coldbridge_trainer.strategies.ease import ease_neighbours, smooth, smooth_nodes
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import (
    history_inputs,
    history_rows,
    history_rows_nodes,
    init,
    make_model,
)

__all__ = ["KernelMapTrainer", "expand"]


def expand(x: np.ndarray, idx: np.ndarray | None, w: np.ndarray | None, g: float) -> np.ndarray:
    """``x + g * x B`` for rows ``x`` over items, ``B`` given as top-k columns ``(idx, w)``."""
    x = np.asarray(x, dtype=np.float32)
    if g == 0 or idx is None or w is None:
        return x
    return x + g * (smooth(x, idx, w) - x)  # smooth() chunks its gather


def _normalise(z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms > 0, norms, 1.0)


class KernelMapTrainer(StrategyTrainer):
    """Closed-form; grid over ``smoothing`` x ``etas`` x ``lambdas`` x ``betas`` on valid."""

    name = "kernelmap"

    def __init__(
        self,
        smoothing: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0),
        etas: tuple[float, ...] = (0.0, 0.5),
        lambdas: tuple[float, ...] = (10.0, 30.0, 100.0),
        betas: tuple[float, ...] = (0.0, 3.0, 10.0, 30.0),
        ease_lambda: float = 200.0,
        neighbours: int = 64,
        threads: int | None = None,
    ) -> None:
        for label, grid in (("smoothing", smoothing), ("etas", etas), ("betas", betas)):
            if not grid or min(grid) < 0:
                raise ValueError(f"{label} must be a non-empty tuple of values >= 0, got {grid}")
        if not lambdas or min(lambdas) <= 0:
            raise ValueError(f"lambdas must be a non-empty tuple of values > 0, got {lambdas}")
        self.smoothing, self.etas, self.lambdas, self.betas = (
            tuple(smoothing),
            tuple(etas),
            tuple(lambdas),
            tuple(betas),
        )
        self.ease_lambda, self.neighbours, self.threads = ease_lambda, neighbours, threads

    def fit(self, ctx: TrainContext) -> None:
        threads = self.threads or ctx.result.config.threads
        ds = ctx.result.dataset
        s_rows, t_rows = ctx.overlap_rows()
        n_src = ds.source.n_items
        src_nbr = tgt_nbr = (None, None)
        if any(g > 0 for g in self.smoothing):
            src_nbr = ease_neighbours(
                ds.source.users, ds.source.items, n_src, self.ease_lambda, self.neighbours, threads
            )
        if any(b > 0 for b in self.betas):
            tgt_nbr = ease_neighbours(
                ds.target.users,
                ds.target.items,
                ds.target.n_items,
                self.ease_lambda,
                self.neighbours,
                threads,
            )
        x = self._bags([ctx.histories[r] for r in s_rows], n_src)
        valid_users = ctx.cold_users(ctx.valid.users)
        xv = self._bags(list(valid_users.histories), n_src)
        y = ctx.target_matrix(t_rows)
        sizes = np.maximum(y.sum(1, keepdims=True), 1.0)
        best, choice, kept = -np.inf, None, None
        for g in self.smoothing:
            z = _normalise(expand(x, *src_nbr, g)).astype(np.float64)
            eig, q = np.linalg.eigh(z @ z.T)
            kq = (expand(xv, *src_nbr, g).astype(np.float64) @ z.T) @ q
            for eta in self.etas:
                qty = q.T @ (y / sizes**eta)
                for lam in self.lambdas:
                    s = ((kq / (eig + lam)) @ qty).astype(np.float32)
                    for beta in self.betas:
                        scores = s if beta == 0 else smooth(s, tgt_nbr[0], beta * tgt_nbr[1])
                        metric = ctx.valid_score(lambda _u, sc=scores: sc)
                        if metric > best:
                            best, choice, kept = metric, (g, eta, lam, beta), (z, eig, q, qty)
        assert choice is not None and kept is not None
        self.g, self.eta, self.lam, self.beta = choice
        self.best = float(best)
        z, eig, q, qty = kept  # the chosen smoothing's profiles and eigenbasis, not recomputed
        self.a = ((q / (eig + self.lam)) @ qty).astype(np.float32)
        self._rows(z, *src_nbr)
        self.nbr_idx = self.nbr_w = None
        if self.beta > 0:
            self.nbr_idx, self.nbr_w = tgt_nbr[0], (self.beta * tgt_nbr[1]).astype(np.float32)

    @staticmethod
    def _bags(histories: list[np.ndarray], n_items: int) -> np.ndarray:
        """Item counts of the last 256 history items (what the exported graph sums over)."""
        x = np.zeros((len(histories), n_items), dtype=np.float32)
        for row, h in enumerate(histories):
            np.add.at(x[row], np.asarray(h, np.int64)[-256:], 1.0)
        return x

    def _rows(self, z: np.ndarray, idx: np.ndarray | None, w: np.ndarray | None) -> None:
        """``G = (I + g B_s) Z^T``, compacted: ``self.xt`` and ``self.remap`` (zero rows -> one)."""
        zt = torch.from_numpy(np.ascontiguousarray(z.T, dtype=np.float32))  # [n_src, U]
        rows = zt.clone()
        if self.g > 0 and idx is not None and w is not None:
            # (B_s Z^T)[i] = sum_j B_s[i, j] Z^T[j]; B_s[idx[j, k], j] = w[j, k]
            for start in range(0, len(idx), 512):
                part_idx = torch.from_numpy(np.array(idx[start : start + 512])).reshape(-1)
                part_w = torch.from_numpy(np.array(w[start : start + 512]))
                contrib = (self.g * part_w[:, :, None] * zt[start : start + 512, None, :]).reshape(
                    -1, zt.shape[1]
                )
                rows.index_add_(0, part_idx, contrib)
        full = rows.numpy()
        used = np.flatnonzero(np.abs(full).sum(1) > 0)
        self.remap = np.full(len(full), len(used), dtype=np.int64)
        self.remap[used] = np.arange(len(used))
        self.xt = np.ascontiguousarray(
            np.vstack([full[used], np.zeros((1, full.shape[1]), np.float32)])
        )

    def _mapped(self, users: ColdUsers) -> np.ndarray:
        return (history_rows(self.xt, self.remap, users) @ self.a).astype(np.float32)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [*history_rows_nodes("kx"), helper.make_node("MatMul", ["kx", "A"], ["mapped"])]
        inits = [
            init("remap", self.remap),
            init("Xt", self.xt),
            init("A", self.a),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
        ]
        if self.nbr_idx is not None:
            nodes += smooth_nodes("mapped", "output")
            inits += [init("nbr_idx", self.nbr_idx), init("nbr_w", self.nbr_w)]
        else:
            nodes.append(helper.make_node("Identity", ["mapped"], ["output"]))
        return {
            "transfer": make_model(nodes, "kernelmap", history_inputs(), self.a.shape[1], inits)
        }

    def reference(self, users: ColdUsers) -> np.ndarray:
        s = self._mapped(users)
        return s if self.nbr_idx is None else smooth(s, self.nbr_idx, self.nbr_w)

    def config(self) -> dict[str, float]:
        return {
            "smoothing": self.g,
            "eta": self.eta,
            "lambda": self.lam,
            "beta": self.beta,
            "ease_lambda": self.ease_lambda,
            "neighbours": self.neighbours,
            "valid_mrr": round(self.best, 5),
        }
