"""Trainer half of ``distill``: knowledge distillation into a compact cold-start student.

Teacher (sees both domains): an MLP over ``[s_u, t_u]`` (source and warm target
embedding of an overlapping user) producing a target embedding, trained with BPR on the
user's target items (target item embeddings fixed). Student (sees only the source): a
small MLP over ``s_u``, trained to match the teacher's softmax over *all* target items
(KL divergence at temperature ``temperature``), early-stopped on the valid cold users.
The student is what cold users are served.
"""

from __future__ import annotations

import numpy as np
import torch
from coldbridge_trainer.models import Bridge, bpr_loss
from coldbridge_trainer.strategies.context import TrainContext
from coldbridge_trainer.strategies.torch_helpers import (
    early_stopping,
    overlap_positives,
    sample_pairs,
)
from onnx import ModelProto
from torch import nn

from coldbridge_plugins.base import ColdUsers, StrategyTrainer
from coldbridge_plugins.graph import make_model, mlp_nodes, source_input

__all__ = ["DistillTrainer"]


class DistillTrainer(StrategyTrainer):
    """Teacher/student sizes, distillation temperature and training lengths."""

    name = "distill"

    def __init__(
        self,
        teacher_hidden: int = 128,
        student_hidden: int = 32,
        temperature: float = 1.0,
        teacher_epochs: int = 20,
        epochs: int = 40,
        patience: int = 6,
        lr: float = 0.002,
        batch_size: int = 128,
    ) -> None:
        self.teacher_hidden, self.student_hidden, self.temperature = (
            teacher_hidden,
            student_hidden,
            temperature,
        )
        self.teacher_epochs, self.epochs, self.patience = teacher_epochs, epochs, patience
        self.lr, self.batch_size = lr, batch_size

    def fit(self, ctx: TrainContext) -> None:
        gen, res = ctx.generator(), ctx.result
        s_rows, t_rows = ctx.overlap_rows()
        s, t = (
            torch.from_numpy(res.source_user_emb[s_rows]),
            torch.from_numpy(res.target_user_emb[t_rows]),
        )
        v, b = torch.from_numpy(res.target_item_emb), torch.from_numpy(res.target_item_bias)
        d_s, d_t = s.shape[1], v.shape[1]
        teacher = Bridge(d_s + d_t, d_t, (self.teacher_hidden,), gen)
        items, ptr = overlap_positives(ctx, t_rows)
        x = torch.cat([s, t], 1)
        opt = torch.optim.Adam(teacher.parameters(), lr=self.lr)
        for _ in range(self.teacher_epochs):
            for batch in torch.randperm(len(x), generator=gen).split(self.batch_size):
                out = teacher(x[batch]) + t[batch]  # residual on the warm embedding
                pos, neg = sample_pairs(items, ptr, batch, len(b), 8, gen)
                loss = bpr_loss(
                    (out * v[pos]).sum(-1) + b[pos], (out.unsqueeze(1) * v[neg]).sum(-1) + b[neg]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            soft = torch.softmax(((teacher(x) + t) @ v.T + b) / self.temperature, -1)
        self.student = Bridge(d_s, d_t, (self.student_hidden,), gen)
        opt = torch.optim.Adam(self.student.parameters(), lr=self.lr)

        def step() -> None:
            for batch in torch.randperm(len(x), generator=gen).split(self.batch_size):
                logits = (self.student(s[batch]) @ v.T + b) / self.temperature
                loss = nn.functional.kl_div(
                    torch.log_softmax(logits, -1), soft[batch], reduction="batchmean"
                )
                opt.zero_grad()
                loss.backward()
                opt.step()

        evaluate = lambda: ctx.valid_score(lambda u: ctx.embedding_scores(self.reference(u)))  # noqa: E731
        self.history = early_stopping(self.epochs, self.patience, step, evaluate, self.student)

    def parts(self) -> dict[str, ModelProto | np.ndarray]:
        layers = self.student.layer_weights()
        nodes, inits = mlp_nodes("source_embedding", layers, "", "output")
        return {
            "transfer": make_model(
                nodes,
                "distill",
                [source_input(layers[0][0].shape[0])],
                layers[-1][0].shape[1],
                inits,
            )
        }

    def reference(self, users: ColdUsers) -> np.ndarray:
        with torch.no_grad():
            return self.student(
                torch.as_tensor(users.source_embeddings, dtype=torch.float32)
            ).numpy()

    def config(self) -> dict[str, float]:
        return {
            "best_epoch": int(np.argmax(self.history)) + 1,
            "student_hidden": self.student_hidden,
            "temperature": self.temperature,
        }
