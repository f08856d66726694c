"""Trainer half of ``softmap``: a denoising source-bag -> target-item softmax network.

Trained on the overlapping users only (the pairs that exist): the source history, each
item dropped with probability ``dropout`` and the bag normalised by ``1 / sqrt(n)``, goes
through ``h = tanh(sum_i E_i / sqrt(n) + b_1)`` and the logits ``h D + b`` are fitted with
the multinomial log-likelihood of the user's target items (Mult-DAE, Liang et al. 2018,
across domains). Unlike a ridge map, the softmax learns which target items overlapping
users take (the bias ``b``) and ranks rather than regresses. Early-stopped on the valid
cold users (sampled MRR). Exported graph: gather/mask/sum the rows of ``E``, scale,
``Tanh``, ``MatMul``, ``Add``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from coldbridge_plugins.base import ColdUsers, pad_histories
from onnx import ModelProto, helper

from coldbridge_trainer.strategies.base import (
    StrategyTrainer,
    TrainContext,
    history_inputs,
    init,
    make_model,
)

__all__ = ["SoftMapTrainer"]


class SoftMapNet(torch.nn.Module):
    def __init__(self, n_src: int, n_tgt: int, hidden: int) -> None:
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(n_src, hidden) * 0.01)
        self.b1 = torch.nn.Parameter(torch.zeros(hidden))
        self.out = torch.nn.Linear(hidden, n_tgt)
        torch.nn.init.normal_(self.out.weight, std=0.01)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        bag = (self.emb[idx] * weights[..., None]).sum(1)
        return self.out(torch.tanh(bag + self.b1))


class SoftMapTrainer(StrategyTrainer):
    """Cross-domain Mult-DAE on the overlapping users, early-stopped on valid."""

    name = "softmap"

    def __init__(self, hidden: int = 64, dropout: float = 0.5, lr: float = 3e-3, weight_decay: float = 0.0,
                 epochs: int = 30, patience: int = 3, batch: int = 128, eval_every: int = 3,
                 threads: int | None = None) -> None:
        self.hidden, self.dropout, self.lr, self.wd = hidden, dropout, lr, weight_decay
        self.epochs, self.patience, self.batch = epochs, patience, batch
        self.eval_every, self.threads = eval_every, threads

    @staticmethod
    def _pad(histories: list[np.ndarray], max_len: int = 256) -> tuple[np.ndarray, np.ndarray]:
        return pad_histories(histories, max_len)

    def fit(self, ctx: TrainContext) -> None:
        # the run's TrainConfig.threads unless given (2 torch threads fight on a busy 2-core box)
        torch.set_num_threads(self.threads or ctx.result.config.threads)
        gen = ctx.generator()
        s_rows, t_rows = ctx.overlap_rows()
        ds = ctx.result.dataset
        idx, mask = (torch.from_numpy(a) for a in self._pad([ctx.histories[r] for r in s_rows]))
        y = torch.from_numpy(ctx.target_matrix(t_rows).astype(np.float32))
        self.net = SoftMapNet(ds.source.n_items, ds.target.n_items, self.hidden)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.wd)
        n = len(s_rows)
        best, state, since = -np.inf, None, 0
        for epoch in range(self.epochs):
            self.net.train()
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch):
                b = perm[start:start + self.batch]
                m = mask[b]
                keep = (torch.rand(m.shape, generator=gen) >= self.dropout).float() * m
                w = keep / (1.0 - self.dropout) / m.sum(1, keepdim=True).clamp(min=1).sqrt()
                logits = self.net(idx[b], w)
                loss = -(F.log_softmax(logits, 1) * y[b]).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if (epoch + 1) % self.eval_every and epoch + 1 < self.epochs:
                continue
            self.net.eval()
            metric = ctx.valid_score(self.reference)
            if metric > best:
                best, since = metric, 0
                state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                since += 1
                if since >= self.patience:
                    break
        if state is not None:
            self.net.load_state_dict(state)
        self.net.eval()
        self.best = float(best)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        net = self.net
        nodes = [
            helper.make_node("Gather", ["E", "item_indices"], ["e3"], axis=0),
            helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
            helper.make_node("Mul", ["e3", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["bag"], keepdims=0),
            helper.make_node("ReduceSum", ["mask", "axis1"], ["n"], keepdims=1),
            helper.make_node("Max", ["n", "one"], ["n1"]),
            helper.make_node("Sqrt", ["n1"], ["root"]),
            helper.make_node("Div", ["bag", "root"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b1"], ["pre"]),
            helper.make_node("Tanh", ["pre"], ["h"]),
            helper.make_node("MatMul", ["h", "D"], ["logits"]),
            helper.make_node("Add", ["logits", "b"], ["output"]),
        ]
        arr = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
        inits = [init("E", arr(net.emb)), init("b1", arr(net.b1)), init("D", arr(net.out.weight).T.copy()),
                 init("b", arr(net.out.bias)), init("one", np.array(1.0, np.float32)),
                 init("axis1", np.array([1], np.int64)), init("axis2", np.array([2], np.int64))]
        return {"transfer": make_model(nodes, "softmap", history_inputs(), net.out.out_features, inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        idx, mask = (torch.from_numpy(a) for a in self._pad(list(users.histories)))
        w = mask / mask.sum(1, keepdim=True).clamp(min=1).sqrt()
        with torch.no_grad():
            return self.net(idx, w).numpy().astype(np.float32)

    def config(self) -> dict[str, float]:
        return {"hidden": self.hidden, "dropout": self.dropout, "valid_mrr": round(self.best, 5)}
