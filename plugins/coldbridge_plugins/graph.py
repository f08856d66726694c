"""ONNX graph-building helpers for trainer halves (needs the ``onnx`` package).

Only trainer halves (``builtin/<name>/train.py``, a plugin's trainer module) import this
module: the server never builds graphs, it runs them. Every helper names its inputs the way
:class:`~coldbridge_plugins.OnnxTransferStrategy` feeds them (``source_embedding``,
``item_indices``, ``mask``) and its single output ``output``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from coldbridge_bundle import OPSET
from onnx import TensorProto, helper, numpy_helper

from coldbridge_plugins.base import ColdUsers

__all__ = [
    "F32",
    "I64",
    "OPSET",
    "history_inputs",
    "history_rows",
    "history_rows_nodes",
    "init",
    "make_model",
    "mlp_nodes",
    "source_input",
    "value_info",
]

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    """An ONNX initializer from a numpy array."""
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def value_info(name: str, elem: int, shape: list[Any]) -> onnx.ValueInfoProto:
    """Shorthand of :func:`onnx.helper.make_tensor_value_info`."""
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(
    nodes: list[onnx.NodeProto],
    name: str,
    inputs: list[onnx.ValueInfoProto],
    width: int | str,
    inits: list[onnx.TensorProto],
) -> onnx.ModelProto:
    """A checked opset-17 model whose single output is ``output`` float32 ``[batch, width]``."""
    outputs = [value_info("output", F32, ["batch", width])]
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="coldbridge"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def history_inputs() -> list[onnx.ValueInfoProto]:
    """``item_indices`` int64 and ``mask`` float32, both ``[batch, history]``."""
    return [
        value_info("item_indices", I64, ["batch", "history"]),
        value_info("mask", F32, ["batch", "history"]),
    ]


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


def history_rows(
    xt: np.ndarray, remap: np.ndarray, users: ColdUsers, max_len: int = 256
) -> np.ndarray:
    """Numpy twin of :func:`history_rows_nodes` (the last ``max_len`` history items)."""
    return np.stack([xt[remap[np.asarray(h, np.int64)[-max_len:]]].sum(0) for h in users.histories])


def source_input(dim: int) -> onnx.ValueInfoProto:
    """``source_embedding`` float32 ``[batch, dim]``."""
    return value_info("source_embedding", F32, ["batch", dim])


def mlp_nodes(
    x: str, layers: list[tuple[np.ndarray, np.ndarray]], prefix: str, out: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``x @ W_i + b_i`` with ReLU between layers (none after the last), into ``out``."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = x
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        inits += [
            init(f"{prefix}W{i}", w.astype(np.float32)),
            init(f"{prefix}b{i}", b.astype(np.float32)),
        ]
        nodes.append(helper.make_node("MatMul", [current, f"{prefix}W{i}"], [f"{prefix}mm{i}"]))
        pre = out if last else f"{prefix}pre{i}"
        nodes.append(helper.make_node("Add", [f"{prefix}mm{i}", f"{prefix}b{i}"], [pre]))
        if not last:
            nodes.append(helper.make_node("Relu", [pre], [f"{prefix}h{i}"]))
            current = f"{prefix}h{i}"
    return nodes, inits
