"""Trainer half of ``peers``: source items -> overlapping users -> target items (a graph walk).

A cold user's source history reaches the overlapping users (in both training sets) who
share items with it: ``c_u`` = number of shared source items with peer ``u``. Each peer
gets the weight ``s_u = c_u ** p`` (``p = 0``: every sharing peer counts once, which is the
training-free co-occurrence scorer; ``p = 1``: weighted by the overlap) and passes on its
target items, optionally smoothed by one step of the target domain's item -> user -> item
walk over *all* target users (``M = Y + g * Y P_iu P_ui``). Scores are normalised by the
total target mass reached, then a prior ``w * m_y`` (how often overlapping users took each
target item; cold users look like overlapping users, not like the target population) and a
tiny global-popularity tie-breaker are added:

    scores = (s @ M) / max(s @ n_y, 1) + w * m_y / sum(m_y) + eps * log1p(pop_t) / max.

``p``, ``g`` and ``w`` are chosen on the valid cold users (sampled MRR). Exported graph:
gather/sum the rows of the compacted binary ``X^T`` for the history, ``Pow`` masked to the
positive counts, two ``MatMul``, ``Div``, ``Add``.
"""

from __future__ import annotations

import numpy as np
import torch
from coldbridge_trainer.strategies.context import TrainContext
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.builtin.itemmap.train import tie_breaker
from coldbridge_plugins.graph import (
    history_inputs,
    history_rows,
    history_rows_nodes,
    init,
    make_model,
)

__all__ = ["PeersTrainer"]


def target_walk(ctx: TrainContext, y: np.ndarray) -> np.ndarray:
    """``Y P_iu P_ui``: one item -> user -> item step over all target users (row-stochastic)."""
    ds = ctx.result.dataset.target
    pairs = np.unique(np.stack([ds.users, ds.items], 1), axis=0)
    n_u, n_i = ds.n_users, ds.n_items
    u_deg = np.maximum(np.bincount(pairs[:, 0], minlength=n_u), 1).astype(np.float32)
    i_deg = np.maximum(np.bincount(pairs[:, 1], minlength=n_i), 1).astype(np.float32)
    idx = torch.from_numpy(pairs.T.copy())
    ones = torch.ones(len(pairs))
    ui = torch.sparse_coo_tensor(
        idx, ones, (n_u, n_i), check_invariants=True
    ).coalesce()  # user x item
    step1 = torch.sparse.mm(ui, torch.from_numpy((y / i_deg).T.astype(np.float32)))  # [U_t, B]
    step2 = torch.sparse.mm(ui.t().coalesce(), step1 / torch.from_numpy(u_deg)[:, None])  # [N_t, B]
    return step2.T.numpy().astype(np.float64)


class PeersTrainer(StrategyTrainer):
    """Valid-selected co-occurrence walk (peer weight power, target smoothing, prior)."""

    name = "peers"

    def __init__(
        self,
        powers: tuple[float, ...] = (0.0, 0.5, 1.0),
        smoothing: tuple[float, ...] = (0.0, 0.5),
        prior_weights: tuple[float, ...] = (0.0, 0.03),
    ) -> None:
        self.powers, self.smoothing, self.prior_weights = powers, smoothing, prior_weights

    def fit(self, ctx: TrainContext) -> None:
        torch.set_num_threads(min(torch.get_num_threads(), 2))
        s_rows, t_rows = ctx.overlap_rows()
        n_src = ctx.result.dataset.source.n_items
        used = np.unique(
            np.concatenate([ctx.histories[r] for r in s_rows] or [np.zeros(0, np.int64)])
        )
        self.remap = np.full(n_src, len(used), dtype=np.int64)  # unused items -> the zero row
        self.remap[used] = np.arange(len(used))
        xt = np.zeros((len(used) + 1, len(s_rows)), dtype=np.float32)
        for row, r in enumerate(s_rows):
            xt[self.remap[ctx.histories[r]], row] = 1.0
        xt[-1] = 0.0
        self.xt = xt
        y = ctx.target_matrix(t_rows)
        walk = target_walk(ctx, y) if any(g > 0 for g in self.smoothing) else np.zeros_like(y)
        ny = y.sum(1, keepdims=True)  # [U, 1] target mass of each peer
        my = y.mean(0) if len(y) else np.zeros(y.shape[1])
        prior = my / max(float(my.sum()), 1e-12)
        tie = tie_breaker(ctx)
        best, choice = -np.inf, None
        for g in self.smoothing:
            # the walk keeps each row's mass |y_u|, so M's rows have mass (1 + g) |y_u|
            self.m, self.ny = (y + g * walk).astype(np.float32), (ny * (1.0 + g)).astype(np.float32)
            for p in self.powers:
                for w in self.prior_weights:
                    self.power, self.smooth, self.prior = p, g, w
                    self.bias = (w * prior + tie).astype(np.float32)
                    metric = ctx.valid_score(self.reference)
                    if metric > best:
                        best, choice = metric, (p, g, w, self.m, self.ny, self.bias)
        assert choice is not None
        self.power, self.smooth, self.prior, self.m, self.ny, self.bias = choice

    def _weights(self, counts: np.ndarray) -> np.ndarray:
        pos = counts > 0
        return np.where(pos, np.power(np.where(pos, counts, 1.0), self.power), 0.0).astype(
            np.float32
        )

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [
            *history_rows_nodes("counts"),
            helper.make_node("Greater", ["counts", "zero"], ["pos"]),
            helper.make_node("Where", ["pos", "counts", "one"], ["safe"]),
            helper.make_node("Pow", ["safe", "power"], ["powed"]),
            helper.make_node("Where", ["pos", "powed", "zero"], ["weights"]),
            helper.make_node("MatMul", ["weights", "M"], ["num"]),
            helper.make_node("MatMul", ["weights", "ny"], ["mass"]),
            helper.make_node("Max", ["mass", "one"], ["den"]),
            helper.make_node("Div", ["num", "den"], ["walked"]),
            helper.make_node("Add", ["walked", "bias"], ["output"]),
        ]
        inits = [
            init("remap", self.remap),
            init("Xt", self.xt),
            init("M", self.m),
            init("ny", self.ny),
            init("bias", self.bias),
            init("power", np.array(self.power, np.float32)),
            init("zero", np.array(0.0, np.float32)),
            init("one", np.array(1.0, np.float32)),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
        ]
        return {"transfer": make_model(nodes, "peers", history_inputs(), self.m.shape[1], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        counts = history_rows(self.xt, self.remap, users)
        s = self._weights(counts)
        mass = s @ self.ny
        return ((s @ self.m) / np.maximum(mass, 1.0) + self.bias).astype(np.float32)

    def config(self) -> dict[str, float]:
        return {"power": self.power, "smoothing": self.smooth, "prior_weight": self.prior}
