"""Torch modules of the EMCDR pipeline (Man et al., IJCAI 2017).

* :class:`MatrixFactorization`: per-domain user/item embeddings plus an item bias,
  trained with BPR (implicit) or squared loss (explicit).
* :class:`SourceEncoder`: masked mean of source item embeddings, then a linear layer.
* :class:`Bridge`: MLP mapping a source user embedding to a target user embedding.
* :class:`TargetScorer`: ``u @ V^T + b`` over target items.

Each module computes exactly the maths of the matching ONNX graph in
:mod:`coldbridge_trainer.export`; ``*_weights`` helpers return numpy arrays in the
layout of :class:`~coldbridge_trainer.export.BaseWeights`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "Bridge",
    "MatrixFactorization",
    "SourceEncoder",
    "TargetScorer",
    "bpr_loss",
    "fit_encoder_ridge",
]


class MatrixFactorization(nn.Module):
    """User and item embeddings plus an item bias: ``score = u . v_i + b_i``.

    Embeddings produce sparse gradients (train with :class:`torch.optim.SparseAdam`).
    """

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim, sparse=True)
        self.item = nn.Embedding(n_items, dim, sparse=True)
        self.bias = nn.Embedding(n_items, 1, sparse=True)
        with torch.no_grad():
            self.user.weight.copy_(torch.randn(n_users, dim, generator=generator) * 0.1)
            self.item.weight.copy_(torch.randn(n_items, dim, generator=generator) * 0.1)
            self.bias.weight.zero_()

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``items`` (``[B]`` or ``[B, K]``) for ``users`` (``[B]``)."""
        u = self.user(users)
        if items.dim() == 2:
            u = u.unsqueeze(1)
        return (u * self.item(items)).sum(-1) + self.bias(items).squeeze(-1)

    def l2(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Squared norm of the parameters touched by a batch, per row."""
        reg = self.user(users).pow(2).sum(-1)
        item = self.item(items).pow(2).sum(-1) + self.bias(items).squeeze(-1).pow(2)
        return reg + (item.sum(-1) if items.dim() == 2 else item)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user_emb, item_emb, item_bias)`` as float32 numpy copies."""
        w = [
            p.detach().numpy().astype(np.float32).copy()
            for p in (self.user.weight, self.item.weight, self.bias.weight)
        ]
        return w[0], w[1], w[2][:, 0].copy()


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(pos - neg)``; ``pos`` ``[B]``, ``neg`` ``[B, K]``."""
    return nn.functional.softplus(neg - pos.unsqueeze(-1)).mean()


class SourceEncoder(nn.Module):
    """Bag-of-items encoder: ``sum(mask * E[idx]) / max(sum(mask), 1) @ W + b``."""

    def __init__(self, item_emb: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("item_emb", torch.as_tensor(item_emb, dtype=torch.float32))
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, item_indices: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``item_indices`` int64 ``[B, L]``, ``mask`` float ``[B, L]`` -> ``[B, d]``."""
        summed = (self.item_emb[item_indices] * mask.unsqueeze(-1)).sum(1)
        mean = summed / mask.sum(1, keepdim=True).clamp_min(1.0)
        return mean @ self.weight + self.bias


def mean_pool(item_emb: np.ndarray, histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """Mean item embedding of each history (zeros for an empty one), float64."""
    out = np.zeros((len(histories), item_emb.shape[1]))
    for row, h in enumerate(histories):
        h = h[-max_len:]
        if len(h):
            out[row] = item_emb[h].astype(np.float64).mean(0)
    return out


def fit_encoder_ridge(
    item_emb: np.ndarray,
    histories: list[np.ndarray],
    user_emb: np.ndarray,
    ridge: float,
    max_len: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge ``W, b`` so that ``mean_pool(history) @ W + b ~ user_emb``.

    Returns
    -------
    tuple of numpy.ndarray
        ``W`` float32 ``[d, d_user]`` and ``b`` float32 ``[d_user]``.
    """
    x = mean_pool(item_emb, histories, max_len)
    y = np.asarray(user_emb, dtype=np.float64)
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xc.T @ yc)
    return w.astype(np.float32), (y_mean - x_mean @ w).astype(np.float32)


class Bridge(nn.Module):
    """EMCDR mapping MLP: ``Linear`` layers with ReLU between, none after the last."""

    def __init__(
        self, d_in: int, d_out: int, hidden: tuple[int, ...], generator: torch.Generator
    ) -> None:
        super().__init__()
        sizes = [d_in, *hidden, d_out]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        with torch.no_grad():
            for layer in self.layers:
                bound = 1.0 / np.sqrt(layer.in_features)
                layer.weight.copy_(
                    (torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound
                )
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, d_in]`` -> ``[B, d_out]``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    def layer_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W [in, out], b [out]), ...]`` float32, the bundle format."""
        return [
            (
                layer.weight.detach().numpy().T.astype(np.float32).copy(),
                layer.bias.detach().numpy().astype(np.float32).copy(),
            )
            for layer in self.layers
        ]


class TargetScorer(nn.Module):
    """Target item scores ``u @ V^T + b``, top-k and candidate scoring."""

    def __init__(self, item_emb: np.ndarray, item_bias: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("item_emb", torch.as_tensor(item_emb, dtype=torch.float32))
        self.register_buffer("item_bias", torch.as_tensor(item_bias, dtype=torch.float32))

    def forward(self, user_embedding: torch.Tensor) -> torch.Tensor:
        """All item scores ``[B, N]``."""
        return user_embedding @ self.item_emb.T + self.item_bias

    def topk(self, user_embedding: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top ``k`` scores and indices, largest first."""
        return torch.topk(self(user_embedding), k, dim=-1, largest=True, sorted=True)

    def candidates(self, user_embedding: torch.Tensor, item_indices: torch.Tensor) -> torch.Tensor:
        """Scores of given candidates ``[B, C]``."""
        dots = (user_embedding.unsqueeze(1) * self.item_emb[item_indices]).sum(-1)
        return dots + self.item_bias[item_indices]
