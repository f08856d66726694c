"""Trainer half of ``softmap``: denoising source-bag -> target-item softmax networks.

Trained on the overlapping users only (the pairs that exist): the source history, each
item dropped with probability ``dropout`` and the bag normalised by ``1 / sqrt(n)``, goes
through ``h = tanh(sum_i E_i / sqrt(n) + b_1)`` and the logits ``h D + b`` are fitted with
the multinomial log-likelihood of the user's target items (Mult-DAE, Liang et al. 2018,
across domains). Unlike a ridge map, the softmax learns which target items overlapping
users take (the bias ``b``) and ranks rather than regresses. Each network is early-stopped
on the valid cold users (sampled MRR).

Two steps on top, both measured on cdrib (benchmarks/README.md, "softmap v2"):

* ``members`` networks from different seeds are averaged in probability space
  (``p = mean_m softmax(h_m D_m + b_m)``): 1,736 overlapping users make one network's
  ranking noisy.
* A target-domain EASE step spreads ``p`` along the target domain's own item-to-item
  structure, learned from every target user (:mod:`.ease`):
  ``q = p + beta * sum_k w[j, k] p[idx[j, k]]``; ``beta`` is picked on valid among
  ``betas`` (0 turns the step off; ``betas=(1.0,)`` forces it). The output is ``log q``
  (a log-probability scale, like the logits before).

Exported graph: gather/mask/sum the rows of the members' stacked ``E``, scale, ``Tanh``,
one batched ``MatMul`` over members, ``Softmax``, ``ReduceMean``, the neighbour gather,
``Log``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from coldbridge_trainer.strategies.context import TrainContext
from coldbridge_trainer.strategies.ease import ease_neighbours, smooth, smooth_nodes
from onnx import ModelProto, helper

from coldbridge_plugins.base import ColdUsers, StrategyTrainer, pad_histories
from coldbridge_plugins.graph import history_inputs, init, make_model

__all__ = ["SoftMapTrainer"]

TINY = 1e-30  # floor under q before the log (q > 0 whenever a softmax is in it)


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
    """Cross-domain Mult-DAE ensemble on the overlapping users, plus a target EASE step."""

    name = "softmap"

    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.5,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        epochs: int = 30,
        patience: int = 3,
        batch: int = 128,
        eval_every: int = 3,
        threads: int | None = None,
        members: int = 3,
        ease_lambda: float = 200.0,
        neighbours: int = 32,
        betas: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0),
    ) -> None:
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        if not betas or min(betas) < 0:
            raise ValueError(f"betas must be a non-empty tuple of values >= 0, got {betas}")
        self.hidden, self.dropout, self.lr, self.wd = hidden, dropout, lr, weight_decay
        self.epochs, self.patience, self.batch = epochs, patience, batch
        self.eval_every, self.threads, self.members = eval_every, threads, members
        self.ease_lambda, self.neighbours, self.betas = ease_lambda, neighbours, tuple(betas)

    @staticmethod
    def _pad(histories: list[np.ndarray], max_len: int = 256) -> tuple[np.ndarray, np.ndarray]:
        return pad_histories(histories, max_len)

    def fit(self, ctx: TrainContext) -> None:
        # the run's TrainConfig.threads unless given (2 torch threads fight on a busy 2-core box)
        threads = self.threads or ctx.result.config.threads
        torch.set_num_threads(threads)
        s_rows, t_rows = ctx.overlap_rows()
        ds = ctx.result.dataset
        idx, mask = (torch.from_numpy(a) for a in self._pad([ctx.histories[r] for r in s_rows]))
        y = torch.from_numpy(ctx.target_matrix(t_rows).astype(np.float32))
        self.nets, self.bests = [], []
        for m in range(self.members):
            net, best = self._fit_one(
                ctx, ctx.seed + 7919 * m, idx, mask, y, ds.source.n_items, ds.target.n_items
            )
            self.nets.append(net)
            self.bests.append(best)
        self.beta, self.nbr_idx, self.nbr_w = 0.0, None, None
        if not any(b > 0 for b in self.betas):
            self.best = ctx.valid_score(self.reference)
            return
        nbr_idx, nbr_w = ease_neighbours(
            ds.target.users,
            ds.target.items,
            ds.target.n_items,
            self.ease_lambda,
            self.neighbours,
            threads,
        )
        probs = self._probs(ctx.cold_users(ctx.valid.users))
        best, choice = -np.inf, 0.0
        for beta in self.betas:
            q = probs if beta == 0 else smooth(probs, nbr_idx, beta * nbr_w)
            metric = ctx.valid_score(lambda _u, q=q: np.log(np.maximum(q, TINY)))
            if metric > best:
                best, choice = metric, beta
        self.best, self.beta = float(best), float(choice)
        if self.beta > 0:
            self.nbr_idx, self.nbr_w = nbr_idx, (self.beta * nbr_w).astype(np.float32)

    def _fit_one(
        self,
        ctx: TrainContext,
        seed: int,
        idx: torch.Tensor,
        mask: torch.Tensor,
        y: torch.Tensor,
        n_src: int,
        n_tgt: int,
    ) -> tuple[SoftMapNet, float]:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = SoftMapNet(n_src, n_tgt, self.hidden)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.wd)
        n = len(idx)
        best, state, since = -np.inf, None, 0
        for epoch in range(self.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch):
                b = perm[start : start + self.batch]
                m = mask[b]
                keep = (torch.rand(m.shape, generator=gen) >= self.dropout).float() * m
                w = keep / (1.0 - self.dropout) / m.sum(1, keepdim=True).clamp(min=1).sqrt()
                loss = -(F.log_softmax(net(idx[b], w), 1) * y[b]).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if (epoch + 1) % self.eval_every and epoch + 1 < self.epochs:
                continue
            net.eval()
            metric = ctx.valid_score(lambda users: self._logits(net, users))
            if metric > best:
                best, since = metric, 0
                state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                since += 1
                if since >= self.patience:
                    break
        if state is not None:
            net.load_state_dict(state)
        net.eval()
        return net, float(best)

    def _inputs(self, users: ColdUsers) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded history and its ``1 / sqrt(n)`` weights, as the exported graph builds them."""
        idx, mask = (torch.from_numpy(a) for a in self._pad(list(users.histories)))
        return idx, mask / mask.sum(1, keepdim=True).clamp(min=1).sqrt()

    def _logits(self, net: SoftMapNet, users: ColdUsers) -> np.ndarray:
        with torch.no_grad():
            return net(*self._inputs(users)).numpy().astype(np.float32)

    def _probs(self, users: ColdUsers) -> np.ndarray:
        idx, w = self._inputs(users)
        with torch.no_grad():
            probs = torch.stack([torch.softmax(net(idx, w), 1) for net in self.nets]).mean(0)
        return probs.numpy().astype(np.float32)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        nets, h = self.nets, self.hidden
        arr = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
        e = np.concatenate([arr(n.emb) for n in nets], axis=1)  # [n_src, M * h]
        b1 = np.concatenate([arr(n.b1) for n in nets])
        d = np.stack([arr(n.out.weight).T for n in nets])  # [M, h, n_tgt]
        b = np.stack([arr(n.out.bias)[None, :] for n in nets])  # [M, 1, n_tgt]
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
            helper.make_node("Tanh", ["pre"], ["h"]),  # [B, M * h]
            helper.make_node("Reshape", ["h", "members_shape"], ["hm"]),  # [B, M, h]
            helper.make_node("Transpose", ["hm"], ["mh"], perm=[1, 0, 2]),  # [M, B, h]
            helper.make_node("MatMul", ["mh", "D"], ["logits"]),  # [M, B, n_tgt]
            helper.make_node("Add", ["logits", "b"], ["biased"]),
            helper.make_node("Softmax", ["biased"], ["probs"], axis=2),
            helper.make_node("ReduceMean", ["probs"], ["p"], axes=[0], keepdims=0),  # [B, n_tgt]
        ]
        inits = [
            init("E", e),
            init("b1", b1),
            init("D", d),
            init("b", b),
            init("members_shape", np.array([0, len(nets), h], np.int64)),
            init("one", np.array(1.0, np.float32)),
            init("axis1", np.array([1], np.int64)),
            init("axis2", np.array([2], np.int64)),
            init("tiny", np.array(TINY, np.float32)),
        ]
        q = "p"
        if self.nbr_idx is not None:
            nodes += smooth_nodes("p", "q")
            inits += [init("nbr_idx", self.nbr_idx), init("nbr_w", self.nbr_w)]
            q = "q"
        nodes += [
            helper.make_node("Max", [q, "tiny"], ["floored"]),
            helper.make_node("Log", ["floored"], ["output"]),
        ]
        return {"transfer": make_model(nodes, "softmap", history_inputs(), d.shape[2], inits)}

    def reference(self, users: ColdUsers) -> np.ndarray:
        p = self._probs(users)
        if self.nbr_idx is not None:
            p = smooth(p, self.nbr_idx, self.nbr_w)
        return np.log(np.maximum(p, TINY)).astype(np.float32)

    def config(self) -> dict[str, float]:
        return {
            "hidden": self.hidden,
            "dropout": self.dropout,
            "members": self.members,
            "member_valid_mrr": [round(b, 5) for b in self.bests],
            "ease_lambda": self.ease_lambda,
            "neighbours": self.neighbours,
            "beta": self.beta,
            "valid_mrr": round(self.best, 5),
        }
