"""Torch helpers shared by trainer halves: layers to arrays, pair sampling, early stopping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from coldbridge_trainer.strategies.context import TrainContext

__all__ = ["early_stopping", "overlap_positives", "sample_pairs", "torch_layers"]


def torch_layers(layers: torch.nn.ModuleList) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W [in, out], b [out])]`` float32 of a list of ``nn.Linear``."""
    return [
        (lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in layers
    ]


def overlap_positives(ctx: TrainContext, t_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``(items, ptr)`` of the target items of the given target users (torch int64)."""
    y = ctx.target_matrix(t_rows)
    users, items = np.nonzero(y)
    ptr = np.searchsorted(users, np.arange(len(t_rows) + 1))
    return torch.from_numpy(items.astype(np.int64)), torch.from_numpy(ptr.astype(np.int64))


def sample_pairs(
    items: torch.Tensor,
    ptr: torch.Tensor,
    batch: torch.Tensor,
    n_items: int,
    negatives: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One positive per user of ``batch`` (uniform over their items) and ``negatives`` random "
    "items."""
    start, count = ptr[batch], ptr[batch + 1] - ptr[batch]
    pos = items[start + (torch.rand(len(batch), generator=gen) * count).long()]
    return pos, torch.randint(n_items, (len(batch), negatives), generator=gen)


def early_stopping(
    epochs: int,
    patience: int,
    step: Callable[[], None],
    evaluate: Callable[[], float],
    module: torch.nn.Module,
) -> list[float]:
    """Run ``step`` per epoch, keep the state with the best ``evaluate``; returns the history."""
    best, state, history = -np.inf, None, []
    for epoch in range(epochs):
        module.train()
        step()
        module.eval()
        history.append(evaluate())
        if history[-1] > best:
            best, state = history[-1], {k: v.clone() for k, v in module.state_dict().items()}
        elif epoch - int(np.argmax(history)) >= patience:
            break
    if state is not None:
        module.load_state_dict(state)
    module.eval()
    return history
