"""Trainer half of ``cmf``: collective matrix factorisation (Singh & Gordon, 2008).

One user embedding per person, shared by both domains, plus per-domain item embeddings
and biases, trained jointly (multi-task BPR on the source and the target interactions).
Cold users get their shared embedding from their source interactions alone. Served
through a ridge fold-in (like the base source encoder: mean CMF source-item embedding of
the history -> shared user embedding), then ``@ V_t^T + b_t`` of the CMF target items.
"""

from __future__ import annotations

import numpy as np
import torch
from coldbridge_trainer.export import bag_encoder_nodes
from coldbridge_trainer.models import bpr_loss, fit_encoder_ridge
from coldbridge_trainer.strategies.context import TrainContext
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer, pad_histories
from coldbridge_plugins.graph import history_inputs, init, make_model

__all__ = ["CmfTrainer"]

MAX_HISTORY = 256


class CmfTrainer(StrategyTrainer):
    """Joint BPR-MF over both domains with shared user embeddings."""

    name = "cmf"

    def __init__(
        self, epochs: int | None = None, target_weight: float = 1.0, ridge: float = 1.0
    ) -> None:
        self.epochs, self.target_weight, self.ridge = epochs, target_weight, ridge

    def fit(self, ctx: TrainContext) -> None:
        gen, cfg, ds = ctx.generator(), ctx.result.config, ctx.result.dataset
        people = list(dict.fromkeys(ds.source.user_ids + ds.target.user_ids))
        row = {u: i for i, u in enumerate(people)}
        s_map = torch.tensor([row[u] for u in ds.source.user_ids])
        t_map = torch.tensor([row[u] for u in ds.target.user_ids])
        emb = lambda n, std: torch.nn.Embedding(n, cfg.dim, sparse=True).requires_grad_()  # noqa: E731
        users, items = emb(len(people), 0.1), [emb(d.n_items, 0.1) for d in (ds.source, ds.target)]
        bias = [torch.nn.Embedding(d.n_items, 1, sparse=True) for d in (ds.source, ds.target)]
        with torch.no_grad():
            for e in (users, *items):
                e.weight.copy_(torch.randn(e.weight.shape, generator=gen) * 0.1)
            for e in bias:
                e.weight.zero_()
        params = [users.weight, *(e.weight for e in items), *(e.weight for e in bias)]
        opt = torch.optim.SparseAdam(params, lr=cfg.lr)
        data = [
            (m[torch.from_numpy(d.users)], torch.from_numpy(d.items), d.n_items)
            for m, d in ((s_map, ds.source), (t_map, ds.target))
        ]
        for _ in range(self.epochs or cfg.epochs):
            for dom, (u_all, i_all, n_items) in enumerate(data):
                perm = torch.randperm(len(u_all), generator=gen)
                for start in range(0, len(perm), cfg.batch_size):
                    b = perm[start : start + cfg.batch_size]
                    u, i = users(u_all[b]), i_all[b]
                    neg = torch.randint(n_items, (len(b), cfg.negatives), generator=gen)
                    s_pos = (u * items[dom](i)).sum(-1) + bias[dom](i).squeeze(-1)
                    s_neg = (u.unsqueeze(1) * items[dom](neg)).sum(-1) + bias[dom](neg).squeeze(-1)
                    reg = u.pow(2).sum(-1).mean() + items[dom](i).pow(2).sum(-1).mean()
                    loss = (self.target_weight if dom else 1.0) * bpr_loss(
                        s_pos, s_neg
                    ) + cfg.weight_decay * reg
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        u_np = users.weight.detach().numpy().astype(np.float32)
        self.src_items = items[0].weight.detach().numpy().astype(np.float32).copy()
        self.tgt_items = items[1].weight.detach().numpy().astype(np.float32).copy()
        self.tgt_bias = bias[1].weight.detach().numpy()[:, 0].astype(np.float32).copy()
        self.w, self.b = fit_encoder_ridge(
            self.src_items, ctx.histories, u_np[s_map.numpy()], self.ridge, MAX_HISTORY
        )

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nodes = [
            *bag_encoder_nodes("user"),
            helper.make_node("MatMul", ["user", "Vt"], ["dots"]),
            helper.make_node("Add", ["dots", "bt"], ["output"]),
        ]
        inits = [
            init("E", self.src_items),
            init("W", self.w),
            init("b", self.b),
            init("Vt", np.ascontiguousarray(self.tgt_items.T)),
            init("bt", self.tgt_bias),
            init("one", np.array([1.0], np.float32)),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
        ]
        return {"transfer": make_model(nodes, "cmf", history_inputs(), len(self.tgt_bias), inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        idx, mask = pad_histories(users.histories, MAX_HISTORY)
        mean = (self.src_items[idx] * mask[..., None]).sum(1) / np.maximum(
            mask.sum(1, keepdims=True), 1.0
        )
        return ((mean @ self.w + self.b) @ self.tgt_items.T + self.tgt_bias).astype(np.float32)
