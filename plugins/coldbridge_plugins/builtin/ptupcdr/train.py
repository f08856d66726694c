"""Trainer half of ``ptupcdr`` (Zhu et al., WSDM 2022): personalised transfer by meta network.

A characteristic encoder attends over the user's source items,
``a_j = softmax_j(w_2^T relu(W_1 e_j + b_1) + b_2)``, ``c_u = sum_j a_j e_j``; a meta
network turns ``c_u`` into a personalised bridge ``B_u = reshape(MLP(c_u), [d_s, d_t])``
and ``target(u) = s_u B_u``. Trained task-oriented: BPR on the overlapping users' target
interactions with the target item embeddings fixed, early-stopped on the valid cold users.
Every personal bridge starts at the global least-squares map (a linear EMCDR) through the
meta network's output bias, so the meta network learns per-user deviations from it.
"""

from __future__ import annotations

import numpy as np
import torch
from coldbridge_trainer.models import bpr_loss
from coldbridge_trainer.strategies.context import TrainContext
from coldbridge_trainer.strategies.torch_helpers import (
    early_stopping,
    overlap_positives,
    sample_pairs,
    torch_layers,
)
from onnx import ModelProto, helper
from torch import nn

from coldbridge_plugins.base import ColdUsers, StrategyTrainer, pad_histories
from coldbridge_plugins.graph import history_inputs, init, make_model, mlp_nodes, source_input

__all__ = ["PtupcdrNet", "PtupcdrTrainer"]

MAX_HISTORY = 256


class PtupcdrNet(nn.Module):
    """Attention characteristic encoder + meta network generating ``[d_s, d_t]`` bridges."""

    def __init__(
        self, item_emb: np.ndarray, d_s: int, d_t: int, attn_hidden: int, meta_hidden: int
    ) -> None:
        super().__init__()
        d = item_emb.shape[1]
        self.register_buffer("E", torch.as_tensor(item_emb, dtype=torch.float32))
        self.attn = nn.ModuleList([nn.Linear(d, attn_hidden), nn.Linear(attn_hidden, 1)])
        self.meta = nn.ModuleList([nn.Linear(d, meta_hidden), nn.Linear(meta_hidden, d_s * d_t)])
        self.d_s, self.d_t = d_s, d_t
        with torch.no_grad():  # start near one shared bridge (identity; PtupcdrTrainer sets it)
            self.meta[1].weight.mul_(0.01)
            self.meta[1].bias.copy_(torch.eye(d_s, d_t).flatten())

    def forward(self, s: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, d_s]``, ``[B, L]``, ``[B, L]`` -> ``[B, d_t]``."""
        e = self.E[idx]
        logits = self.attn[1](torch.relu(self.attn[0](e))).squeeze(-1) + (mask - 1.0) * 1e9
        c = (torch.softmax(logits, 1).unsqueeze(-1) * e).sum(1)
        bridge = self.meta[1](torch.relu(self.meta[0](c))).view(-1, self.d_s, self.d_t)
        return (s.unsqueeze(1) @ bridge).squeeze(1)


class PtupcdrTrainer(StrategyTrainer):
    """Hyperparameters of the meta network and its task-oriented training."""

    name = "ptupcdr"

    def __init__(
        self,
        attn_hidden: int = 32,
        meta_hidden: int = 64,
        epochs: int = 60,
        patience: int = 10,
        lr: float = 0.0005,
        batch_size: int = 128,
        negatives: int = 8,
        mse_weight: float = 0.0,
    ) -> None:
        self.attn_hidden, self.meta_hidden, self.epochs, self.patience = (
            attn_hidden,
            meta_hidden,
            epochs,
            patience,
        )
        self.lr, self.batch_size, self.negatives, self.mse_weight = (
            lr,
            batch_size,
            negatives,
            mse_weight,
        )

    def fit(self, ctx: TrainContext) -> None:
        gen, res = ctx.generator(), ctx.result
        s_rows, t_rows = ctx.overlap_rows()
        d_s, d_t = res.source_user_emb.shape[1], res.target_item_emb.shape[1]
        self.net = PtupcdrNet(res.source_item_emb, d_s, d_t, self.attn_hidden, self.meta_hidden)
        with torch.no_grad():  # start every personal bridge at the global least-squares map
            x, y = (
                res.source_user_emb[s_rows].astype(np.float64),
                res.target_user_emb[t_rows].astype(np.float64),
            )
            w = np.linalg.solve(x.T @ x + np.eye(d_s), x.T @ y)
            self.net.meta[1].bias.copy_(torch.as_tensor(w.reshape(-1), dtype=torch.float32))
        items, ptr = overlap_positives(ctx, t_rows)
        s, t = (
            torch.from_numpy(res.source_user_emb[s_rows]),
            torch.from_numpy(res.target_user_emb[t_rows]),
        )
        v, b = torch.from_numpy(res.target_item_emb), torch.from_numpy(res.target_item_bias)
        hist = [ctx.histories[r] for r in s_rows]
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)

        def step() -> None:
            perm = torch.randperm(len(s_rows), generator=gen)
            for start in range(0, len(perm), self.batch_size):
                batch = perm[start : start + self.batch_size]
                idx, mask = pad_histories([hist[i] for i in batch.tolist()], MAX_HISTORY)
                out = self.net(s[batch], torch.from_numpy(idx), torch.from_numpy(mask))
                pos, neg = sample_pairs(items, ptr, batch, len(b), self.negatives, gen)
                s_pos = (out * v[pos]).sum(-1) + b[pos]
                s_neg = (out.unsqueeze(1) * v[neg]).sum(-1) + b[neg]
                loss = bpr_loss(s_pos, s_neg)
                if self.mse_weight > 0:  # optional EMCDR-style mapping term (not in the paper)
                    loss = loss + self.mse_weight * (out - t[batch]).pow(2).sum(-1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

        evaluate = lambda: ctx.valid_score(lambda u: ctx.embedding_scores(self.reference(u)))  # noqa: E731
        self.history = early_stopping(self.epochs, self.patience, step, evaluate, self.net)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        net, d_s, d_t = self.net, self.net.d_s, self.net.d_t
        att_nodes, att_inits = mlp_nodes("e", torch_layers(net.attn), "att", "att_out")
        meta_nodes, meta_inits = mlp_nodes("c", torch_layers(net.meta), "meta", "flat")
        nodes = [
            helper.make_node("Gather", ["E", "item_indices"], ["e"], axis=0),
            *att_nodes,
            helper.make_node("Squeeze", ["att_out", "axis2"], ["raw"]),
            helper.make_node("Sub", ["mask", "one"], ["neg_mask"]),
            helper.make_node("Mul", ["neg_mask", "big"], ["penalty"]),
            helper.make_node("Add", ["raw", "penalty"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["a"], axis=1),
            helper.make_node("Unsqueeze", ["a", "axis2"], ["a3"]),
            helper.make_node("Mul", ["e", "a3"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis1"], ["c"], keepdims=0),
            *meta_nodes,
            helper.make_node("Reshape", ["flat", "bridge_shape"], ["bridge"]),
            helper.make_node("Unsqueeze", ["source_embedding", "axis1"], ["s3"]),
            helper.make_node("MatMul", ["s3", "bridge"], ["t3"]),
            helper.make_node("Squeeze", ["t3", "axis1"], ["output"]),
        ]
        inits = [
            init("E", net.E.numpy()),
            *att_inits,
            *meta_inits,
            init("one", np.array([1.0], np.float32)),
            init("big", np.array([1e9], np.float32)),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
            init("bridge_shape", np.array([-1, d_s, d_t], np.int64)),
        ]
        inputs = [source_input(d_s), *history_inputs()]
        return {"transfer": make_model(nodes, "ptupcdr", inputs, d_t, inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        idx, mask = pad_histories(users.histories, MAX_HISTORY)
        with torch.no_grad():
            s = torch.as_tensor(users.source_embeddings, dtype=torch.float32)
            return self.net(s, torch.from_numpy(idx), torch.from_numpy(mask)).numpy()

    def config(self) -> dict[str, int]:
        return {
            "best_epoch": int(np.argmax(self.history)) + 1,
            "attn_hidden": self.attn_hidden,
            "meta_hidden": self.meta_hidden,
        }
