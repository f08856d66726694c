"""Trainer halves of transfer strategies: the contract, the training context, ONNX helpers.

A trainer half (:class:`StrategyTrainer`) is fitted on a :class:`TrainContext` (the data,
the base pipeline of :func:`coldbridge_trainer.train.fit` and the valid cold users), then
returns its bundle ``parts`` (ONNX models and arrays, written under
``strategies/<name>/``), its manifest ``config`` and a torch/numpy ``reference`` output
that the exported graphs must reproduce (export parity).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
from coldbridge_plugins.base import ColdUsers, TransferStrategy
from onnx import TensorProto, helper, numpy_helper

from coldbridge_trainer.evaluate import EvalSplit, score_split
from coldbridge_trainer.export import OPSET
from coldbridge_trainer.train import TrainResult

__all__ = [
    "FittedStrategy",
    "StrategyTrainer",
    "TrainContext",
    "init",
    "make_model",
    "value_info",
]

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


@dataclass
class FittedStrategy:
    """A fitted trainer half plus the server half built from its exported parts."""

    cls: type[TransferStrategy]
    trainer: StrategyTrainer
    parts: dict[str, Any]
    config: dict[str, Any]
    server: TransferStrategy | None = None
    seconds: float = 0.0


@dataclass
class TrainContext:
    """Everything a trainer half may read.

    Attributes
    ----------
    result
        The base pipeline: MF of both domains, source encoder, EMCDR bridge.
    valid
        The valid cold users, prepared for the sampled protocol (model selection only).
    seed
        Seed of this strategy's initialisation and sampling.
    fitted
        Strategies fitted before this one (their server halves), for blends.
    """

    result: TrainResult
    valid: EvalSplit
    seed: int = 0
    fitted: dict[str, FittedStrategy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ds = self.result.dataset
        self.histories = ds.source.user_histories(self.result.config.encoder_max_history)

    def cold_users(self, users: list[str]) -> ColdUsers:
        """:class:`ColdUsers` of source users: stored source embedding and history."""
        rows = [self.result.dataset.source.user_index[u] for u in users]
        return ColdUsers(self.result.source_user_emb[rows], [self.histories[r] for r in rows])

    def overlap_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Source rows and target rows of the overlapping users (same order)."""
        ds = self.result.dataset
        overlap = ds.overlap_users()
        return (np.array([ds.source.user_index[u] for u in overlap], dtype=np.int64),
                np.array([ds.target.user_index[u] for u in overlap], dtype=np.int64))

    def target_matrix(self, target_rows: np.ndarray) -> np.ndarray:
        """Binary ``[len(rows), N_t]`` target interactions of the given target users."""
        ds = self.result.dataset
        local = np.full(ds.target.n_users, -1, dtype=np.int64)
        local[target_rows] = np.arange(len(target_rows))
        y = np.zeros((len(target_rows), ds.target.n_items), dtype=np.float64)
        keep = local[ds.target.users] >= 0
        y[local[ds.target.users[keep]], ds.target.items[keep]] = 1.0
        return y

    def generator(self) -> torch.Generator:
        """A fresh torch generator seeded with :attr:`seed`."""
        torch.manual_seed(self.seed)
        return torch.Generator().manual_seed(self.seed)

    def valid_score(self, scores_fn: Callable[[ColdUsers], np.ndarray], metric: str = "MRR",
                    protocol: str = "sampled") -> float:
        """``metric`` (line-averaged) on the valid cold users of a ``ColdUsers -> scores`` fn.

        ``protocol`` is ``sampled`` (the benchmark's 999 negatives) or ``full`` (every target
        item competes, as in a served list). Either way only the user's valid items are set
        apart: selection never learns which items are in test.txt, so under ``full`` those
        compete like any other item.
        """
        scores = scores_fn(self.cold_users(self.valid.users))
        return float(score_split(scores, self.valid, protocols=(protocol,))[protocol]["line"][metric])

    def embedding_scores(self, emb: np.ndarray) -> np.ndarray:
        """Base target scores ``u @ V_t^T + b_t``."""
        return self.result.target_scores(np.asarray(emb, dtype=np.float32))


class StrategyTrainer(ABC):
    """Trainer half of a strategy (constructor parameters are its hyperparameters)."""

    name: ClassVar[str]

    @abstractmethod
    def fit(self, ctx: TrainContext) -> None:
        """Fit on ``ctx`` (deterministic given ``ctx.seed``)."""

    @abstractmethod
    def parts(self) -> dict[str, onnx.ModelProto | np.ndarray]:
        """Bundle parts: ``{part: ONNX model or array}`` (``transfer`` for one-graph strategies)."""

    @abstractmethod
    def reference(self, users: ColdUsers) -> np.ndarray:
        """Torch/numpy output for ``users``; the exported parts must reproduce it."""

    def config(self) -> dict[str, Any]:
        """Free-form manifest ``config`` of the strategy (chosen hyperparameters...)."""
        return {}


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    """An ONNX initializer from a numpy array."""
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def value_info(name: str, elem: int, shape: list[Any]) -> onnx.ValueInfoProto:
    """Shorthand of :func:`onnx.helper.make_tensor_value_info`."""
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes: list[onnx.NodeProto], name: str, inputs: list[onnx.ValueInfoProto],
               width: int | str, inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    """A checked opset-17 model whose single output is ``output`` float32 ``[batch, width]``."""
    graph = helper.make_graph(nodes, name, inputs, [value_info("output", F32, ["batch", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="coldbridge")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def history_inputs() -> list[onnx.ValueInfoProto]:
    """``item_indices`` int64 and ``mask`` float32, both ``[batch, history]``."""
    return [value_info("item_indices", I64, ["batch", "history"]),
            value_info("mask", F32, ["batch", "history"])]


def history_rows_nodes(output: str) -> list[onnx.NodeProto]:
    """``output[b] = sum over the history of Xt[remap[item]]`` (masked), as ONNX nodes.

    Initialisers the caller supplies: ``remap`` (source item -> row of ``Xt``), ``Xt``,
    ``axis1`` and ``axis2`` (int64 ``[1]``, ``[2]``); inputs ``item_indices`` and ``mask``.
    :func:`history_rows` is the numpy reference.
    """
    return [
        helper.make_node("Gather", ["remap", "item_indices"], ["rows"], axis=0),
        helper.make_node("Gather", ["Xt", "rows"], ["k3"], axis=0),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["k3", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], [output], keepdims=0),
    ]


def history_rows(xt: np.ndarray, remap: np.ndarray, users: ColdUsers, max_len: int = 256) -> np.ndarray:
    """Numpy twin of :func:`history_rows_nodes` (the last ``max_len`` history items)."""
    return np.stack([xt[remap[np.asarray(h, np.int64)[-max_len:]]].sum(0) for h in users.histories])


def source_input(dim: int) -> onnx.ValueInfoProto:
    """``source_embedding`` float32 ``[batch, dim]``."""
    return value_info("source_embedding", F32, ["batch", dim])


def mlp_nodes(x: str, layers: list[tuple[np.ndarray, np.ndarray]], prefix: str,
              out: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``x @ W_i + b_i`` with ReLU between layers (none after the last), into ``out``."""
    nodes, inits, current = [], [], x
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        inits += [init(f"{prefix}W{i}", w.astype(np.float32)), init(f"{prefix}b{i}", b.astype(np.float32))]
        nodes.append(helper.make_node("MatMul", [current, f"{prefix}W{i}"], [f"{prefix}mm{i}"]))
        pre = out if last else f"{prefix}pre{i}"
        nodes.append(helper.make_node("Add", [f"{prefix}mm{i}", f"{prefix}b{i}"], [pre]))
        if not last:
            nodes.append(helper.make_node("Relu", [pre], [f"{prefix}h{i}"]))
            current = f"{prefix}h{i}"
    return nodes, inits


def torch_layers(layers: torch.nn.ModuleList) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W [in, out], b [out])]`` float32 of a list of ``nn.Linear``."""
    return [(lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in layers]


def overlap_positives(ctx: TrainContext, t_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``(items, ptr)`` of the target items of the given target users (torch int64)."""
    y = ctx.target_matrix(t_rows)
    users, items = np.nonzero(y)
    ptr = np.searchsorted(users, np.arange(len(t_rows) + 1))
    return torch.from_numpy(items.astype(np.int64)), torch.from_numpy(ptr.astype(np.int64))


def sample_pairs(items: torch.Tensor, ptr: torch.Tensor, batch: torch.Tensor, n_items: int,
                 negatives: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One positive per user of ``batch`` (uniform over their items) and ``negatives`` random items."""
    start, count = ptr[batch], ptr[batch + 1] - ptr[batch]
    pos = items[start + (torch.rand(len(batch), generator=gen) * count).long()]
    return pos, torch.randint(n_items, (len(batch), negatives), generator=gen)


def early_stopping(epochs: int, patience: int, step: Callable[[], None],
                   evaluate: Callable[[], float], module: torch.nn.Module) -> list[float]:
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
