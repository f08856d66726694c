"""The ONNX graphs of a coldbridge bundle, built from numpy weights.

The bundle is the only contract between the trainer and the server (see
``docs/ARCHITECTURE.md``); the :mod:`coldbridge_bundle` package owns its layout and
writes it. This module builds the four base graphs directly with :mod:`onnx.helper`
from numpy weights (:class:`BaseWeights`), so it needs neither torch nor the server:
the input/output names and the maths below are the contract, and
``tests/bundle/test_export_parity.py`` checks that onnxruntime reproduces the torch
modules within 1e-4.

Graphs
------
source_encoder
    ``item_indices`` int64 ``[B, L]``, ``mask`` float32 ``[B, L]`` ->
    ``user_embedding`` = masked mean of source item embeddings ``@ W + b``.
bridge
    ``source_embedding`` ``[B, d_s]`` -> ``target_embedding`` ``[B, d_t]``
    (MLP, ReLU between layers, none after the last).
target_topk
    ``user_embedding`` ``[B, d_t]``, ``k`` int64 ``[1]`` -> ``scores``,
    ``indices`` (``u @ V^T + b``, then TopK, largest first).
target_candidates
    ``user_embedding`` ``[B, d_t]``, ``item_indices`` int64 ``[B, C]`` ->
    ``scores`` ``[B, C]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from coldbridge_bundle import OPSET
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "OPSET",
    "BaseWeights",
    "bag_encoder_nodes",
    "bridge_graph",
    "source_encoder_graph",
    "target_candidates_graph",
    "target_topk_graph",
]


_F32 = TensorProto.FLOAT
_I64 = TensorProto.INT64


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def _f32(array: np.ndarray, name: str, ndim: int) -> np.ndarray:
    out = np.asarray(array, dtype=np.float32)
    if out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains non-finite values")
    return out


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="coldbridge",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def bag_encoder_nodes(output: str) -> list[onnx.NodeProto]:
    """Nodes of ``output = masked_mean(E[item_indices], mask) @ W + b``.

    Initialisers the caller supplies: ``E``, ``W``, ``b``, ``one`` (scalar 1.0), ``axis1``
    and ``axis2`` (int64 ``[1]`` and ``[2]``); inputs ``item_indices`` and ``mask``.
    """
    return [
        helper.make_node("Gather", ["E", "item_indices"], ["gathered"], axis=0),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["gathered", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["denom"]),
        helper.make_node("Div", ["summed", "denom"], ["mean"]),
        helper.make_node("MatMul", ["mean", "W"], ["projected"]),
        helper.make_node("Add", ["projected", "b"], [output]),
    ]


def source_encoder_graph(
    item_emb: np.ndarray, weight: np.ndarray, bias: np.ndarray
) -> onnx.ModelProto:
    """Bag-of-items encoder: masked mean of item embeddings, then a linear layer."""
    item_emb = _f32(item_emb, "source_item_emb", 2)
    weight, bias = _f32(weight, "encoder_weight", 2), _f32(bias, "encoder_bias", 1)
    d = item_emb.shape[1]
    nodes = bag_encoder_nodes("user_embedding")
    graph = helper.make_graph(
        nodes,
        "source_encoder",
        [
            helper.make_tensor_value_info("item_indices", _I64, ["batch", "history"]),
            helper.make_tensor_value_info("mask", _F32, ["batch", "history"]),
        ],
        [helper.make_tensor_value_info("user_embedding", _F32, ["batch", weight.shape[1]])],
        [
            _init("E", item_emb),
            _init("W", weight),
            _init("b", bias),
            _init("axis1", np.array([1], dtype=np.int64)),
            _init("axis2", np.array([2], dtype=np.int64)),
            _init("one", np.array([1.0], dtype=np.float32)),
        ],
    )
    if weight.shape[0] != d:
        raise ValueError(f"encoder_weight rows {weight.shape[0]} != source dim {d}")
    return _model(graph)


def bridge_graph(layers: list[tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """MLP bridge from source to target user embeddings (ReLU between layers)."""
    if not layers:
        raise ValueError("bridge_layers must contain at least one layer")
    nodes, inits, current = [], [], "source_embedding"
    for i, (w, b) in enumerate(layers):
        w, b = _f32(w, f"bridge W{i}", 2), _f32(b, f"bridge b{i}", 1)
        inits += [_init(f"W{i}", w), _init(f"b{i}", b)]
        last = i == len(layers) - 1
        out = "target_embedding" if last else f"h{i}"
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out if last else f"pre{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"pre{i}"], [out]))
        current = out
    d_in, d_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    graph = helper.make_graph(
        nodes,
        "bridge",
        [helper.make_tensor_value_info("source_embedding", _F32, ["batch", d_in])],
        [helper.make_tensor_value_info("target_embedding", _F32, ["batch", d_out])],
        inits,
    )
    return _model(graph)


def target_topk_graph(item_emb: np.ndarray, item_bias: np.ndarray) -> onnx.ModelProto:
    """Score all target items (``u @ V^T + b``) and return the top ``k`` inside the graph."""
    item_emb = _f32(item_emb, "target_item_emb", 2)
    item_bias = _f32(item_bias, "target_item_bias", 1)
    nodes = [
        helper.make_node("MatMul", ["user_embedding", "Vt"], ["dots"]),
        helper.make_node("Add", ["dots", "bias"], ["all_scores"]),
        helper.make_node(
            "TopK", ["all_scores", "k"], ["scores", "indices"], axis=-1, largest=1, sorted=1
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "target_topk",
        [
            helper.make_tensor_value_info("user_embedding", _F32, ["batch", item_emb.shape[1]]),
            helper.make_tensor_value_info("k", _I64, [1]),
        ],
        [
            helper.make_tensor_value_info("scores", _F32, ["batch", "k"]),
            helper.make_tensor_value_info("indices", _I64, ["batch", "k"]),
        ],
        [_init("Vt", np.ascontiguousarray(item_emb.T)), _init("bias", item_bias)],
    )
    return _model(graph)


def target_candidates_graph(item_emb: np.ndarray, item_bias: np.ndarray) -> onnx.ModelProto:
    """Score given candidate target items: ``sum(u * V[idx]) + b[idx]``."""
    item_emb = _f32(item_emb, "target_item_emb", 2)
    item_bias = _f32(item_bias, "target_item_bias", 1)
    nodes = [
        helper.make_node("Gather", ["V", "item_indices"], ["cand"], axis=0),
        helper.make_node("Unsqueeze", ["user_embedding", "axis1"], ["u3"]),
        helper.make_node("Mul", ["cand", "u3"], ["prod"]),
        helper.make_node("ReduceSum", ["prod", "axis2"], ["dots"], keepdims=0),
        helper.make_node("Gather", ["bias", "item_indices"], ["cand_bias"], axis=0),
        helper.make_node("Add", ["dots", "cand_bias"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "target_candidates",
        [
            helper.make_tensor_value_info("user_embedding", _F32, ["batch", item_emb.shape[1]]),
            helper.make_tensor_value_info("item_indices", _I64, ["batch", "candidates"]),
        ],
        [helper.make_tensor_value_info("scores", _F32, ["batch", "candidates"])],
        [
            _init("V", item_emb),
            _init("bias", item_bias),
            _init("axis1", np.array([1], dtype=np.int64)),
            _init("axis2", np.array([2], dtype=np.int64)),
        ],
    )
    return _model(graph)


@dataclass(frozen=True)
class BaseWeights:
    """numpy weights of the base pipeline: the four graphs and six arrays of a bundle.

    ``bridge_layers`` are the bridge MLP's ``(W, b)`` pairs, first layer first.
    """

    source_item_emb: np.ndarray
    encoder_weight: np.ndarray
    encoder_bias: np.ndarray
    source_user_emb: np.ndarray
    bridge_layers: Sequence[tuple[np.ndarray, np.ndarray]]
    target_item_emb: np.ndarray
    target_item_bias: np.ndarray
    target_user_emb: np.ndarray
    target_item_popularity: np.ndarray

    def models(self) -> dict[str, onnx.ModelProto]:
        """The four base graphs by model key (``coldbridge_bundle.MODEL_KEYS``).

        Raises
        ------
        ValueError
            When the encoder or bridge widths disagree with the embedding dims.
        """
        layers = list(self.bridge_layers)
        if not layers:
            raise ValueError("bridge_layers must contain at least one layer")
        d_s, d_t = np.shape(self.source_user_emb)[-1], np.shape(self.target_item_emb)[-1]
        if np.shape(layers[-1][0])[1] != d_t:
            raise ValueError(
                f"target dims disagree: items {d_t}, bridge output {np.shape(layers[-1][0])[1]}"
            )
        if np.shape(layers[0][0])[0] != d_s or np.shape(self.encoder_weight)[1] != d_s:
            raise ValueError(f"source dim {d_s} disagrees with bridge input or encoder output")
        return {
            "source_encoder": source_encoder_graph(
                self.source_item_emb, self.encoder_weight, self.encoder_bias
            ),
            "bridge": bridge_graph(layers),
            "target_topk": target_topk_graph(self.target_item_emb, self.target_item_bias),
            "target_candidates": target_candidates_graph(
                self.target_item_emb, self.target_item_bias
            ),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The six base arrays by array key (``coldbridge_bundle.ARRAY_KEYS``)."""
        return {
            "source_user_embeddings": self.source_user_emb,
            "target_user_embeddings": self.target_user_emb,
            "target_item_popularity": self.target_item_popularity,
            "source_item_embeddings": self.source_item_emb,
            "target_item_embeddings": self.target_item_emb,
            "target_item_bias": self.target_item_bias,
        }
