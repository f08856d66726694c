"""Write a coldbridge bundle: ONNX models, numpy arrays and a manifest.

The bundle is the only contract between the trainer and the server (see
``docs/ARCHITECTURE.md``). The graphs are built directly with :mod:`onnx.helper`
from numpy weights, so this module needs neither torch nor the server: the
input/output names and the maths below are the contract, and
``tests/test_export_parity.py`` checks that onnxruntime reproduces the torch
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

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "OPSET",
    "STRATEGY_DIR",
    "bridge_graph",
    "sha256_file",
    "source_encoder_graph",
    "target_candidates_graph",
    "target_topk_graph",
    "write_bundle",
]

BUNDLE_FORMAT = "coldbridge-bundle"
BUNDLE_FORMAT_VERSION = 1
OPSET = 17

MODEL_FILES = {
    "source_encoder": "source_encoder.onnx",
    "bridge": "bridge.onnx",
    "target_topk": "target_topk.onnx",
    "target_candidates": "target_candidates.onnx",
}
ARRAY_FILES = {
    "source_user_embeddings": "source_user_embeddings.npy",
    "target_user_embeddings": "target_user_embeddings.npy",
    "target_item_popularity": "target_item_popularity.npy",
    "source_item_embeddings": "source_item_embeddings.npy",
    "target_item_embeddings": "target_item_embeddings.npy",
    "target_item_bias": "target_item_bias.npy",
}

STRATEGY_DIR = "strategies"
"""Bundle sub-directory holding ``<name>/<part>.onnx|.npy`` of each trained strategy."""

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


def source_encoder_graph(item_emb: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
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
        helper.make_node("TopK", ["all_scores", "k"], ["scores", "indices"], axis=-1, largest=1, sorted=1),
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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_ids(name: str, ids: list[str], rows: int) -> None:
    if len(ids) != rows:
        raise ValueError(f"{name}: {len(ids)} ids for {rows} rows")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: ids are not unique")


def _new_version() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def write_bundle(
    out_dir: Path,
    *,
    source_domain: str,
    target_domain: str,
    feedback: str,
    source_item_ids: list[str],
    target_item_ids: list[str],
    source_user_ids: list[str],
    target_user_ids: list[str],
    source_item_emb: np.ndarray,
    encoder_weight: np.ndarray,
    encoder_bias: np.ndarray,
    source_user_emb: np.ndarray,
    bridge_layers: list[tuple[np.ndarray, np.ndarray]],
    target_item_emb: np.ndarray,
    target_item_bias: np.ndarray,
    target_user_emb: np.ndarray,
    target_item_popularity: np.ndarray,
    encoder_max_history: int = 256,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    strategy: str = "emcdr",
    version: str | None = None,
    strategies: Mapping[str, Mapping[str, Any]] | None = None,
    source_histories: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write a versioned bundle directory ``out_dir/<version>`` and return its path.

    The directory is assembled in a temporary sibling and renamed into place,
    so a reader never sees a half-written bundle.

    ``strategies`` maps a strategy name to ``{"version", "output", "config", "parts":
    {part: onnx.ModelProto | numpy array}}``; each part is written to
    ``strategies/<name>/<part>.onnx|.npy`` and listed in the manifest's ``strategies``
    section. ``source_histories`` (one array of source item indices per source user)
    is written as ``source_history_items.npy`` / ``source_history_ptr.npy`` (CSR).

    Raises
    ------
    ValueError
        When shapes, ids or values are inconsistent (the message names the field).
    FileExistsError
        When the version directory already exists.
    """
    if feedback not in ("implicit", "explicit"):
        raise ValueError(f"feedback must be 'implicit' or 'explicit', got {feedback!r}")
    source_user_emb = _f32(source_user_emb, "source_user_emb", 2)
    target_user_emb = _f32(target_user_emb, "target_user_emb", 2)
    popularity = _f32(target_item_popularity, "target_item_popularity", 1)
    _check_ids("source_item_ids", source_item_ids, len(source_item_emb))
    _check_ids("target_item_ids", target_item_ids, len(target_item_emb))
    _check_ids("source_user_ids", source_user_ids, len(source_user_emb))
    _check_ids("target_user_ids", target_user_ids, len(target_user_emb))
    if len(popularity) != len(target_item_ids):
        raise ValueError("target_item_popularity length != number of target items")
    d_s, d_t = source_user_emb.shape[1], target_item_emb.shape[1]
    if target_user_emb.shape[1] != d_t or bridge_layers[-1][0].shape[1] != d_t:
        raise ValueError(f"target dims disagree: items {d_t}, users {target_user_emb.shape[1]}")
    if bridge_layers[0][0].shape[0] != d_s or np.shape(encoder_weight)[1] != d_s:
        raise ValueError(f"source dim {d_s} disagrees with bridge input or encoder output")

    models = {
        "source_encoder": source_encoder_graph(source_item_emb, encoder_weight, encoder_bias),
        "bridge": bridge_graph(bridge_layers),
        "target_topk": target_topk_graph(target_item_emb, target_item_bias),
        "target_candidates": target_candidates_graph(target_item_emb, target_item_bias),
    }
    arrays = {
        "source_user_embeddings": source_user_emb,
        "target_user_embeddings": target_user_emb,
        "target_item_popularity": popularity,
        "source_item_embeddings": _f32(source_item_emb, "source_item_emb", 2),
        "target_item_embeddings": _f32(target_item_emb, "target_item_emb", 2),
        "target_item_bias": _f32(target_item_bias, "target_item_bias", 1),
    }
    version = version or _new_version()
    out_dir = Path(out_dir)
    final = out_dir / version
    if final.exists():
        raise FileExistsError(f"bundle version already exists: {final}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=out_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a server running as another user must read it
        for key, model in models.items():
            onnx.save_model(model, tmp / MODEL_FILES[key])
        for key, array in arrays.items():
            np.save(tmp / ARRAY_FILES[key], array, allow_pickle=False)
        sections = _write_strategies(tmp, strategies or {})
        if source_histories is not None:
            sections["source_histories"] = _write_histories(tmp, source_histories, len(source_user_ids))
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "bundle_version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "strategy": strategy,
            "feedback": feedback,
            "domains": {"source": source_domain, "target": target_domain},
            "embedding_dim": {"source": int(d_s), "target": int(d_t)},
            "encoder_max_history": int(encoder_max_history),
            "items": {"source": list(source_item_ids), "target": list(target_item_ids)},
            "users": {"source": list(source_user_ids), "target": list(target_user_ids)},
            "models": dict(MODEL_FILES),
            "arrays": dict(ARRAY_FILES),
            **sections,
            "metrics": metrics or {},
            "config": config or {},
            "files": {p.relative_to(tmp).as_posix(): sha256_file(p)
                      for p in sorted(tmp.rglob("*")) if p.is_file()},
        }
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_strategies(root: Path, strategies: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Write every strategy's parts under ``strategies/<name>/``; the manifest section."""
    section: dict[str, Any] = {}
    for name, spec in strategies.items():
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"illegal strategy name {name!r}")
        folder = root / STRATEGY_DIR / name
        folder.mkdir(parents=True)
        parts = {}
        for part, value in spec.get("parts", {}).items():
            if isinstance(value, np.ndarray):
                file = folder / f"{part}.npy"
                np.save(file, value, allow_pickle=False)
            else:
                file = folder / f"{part}.onnx"
                onnx.save_model(value, file)
            parts[part] = file.relative_to(root).as_posix()
        section[name] = {"version": str(spec.get("version", "")), "output": spec.get("output", "embedding"),
                         "config": dict(spec.get("config", {})), "parts": parts}
    return {"strategies": section} if section else {}


def _write_histories(root: Path, histories: Sequence[np.ndarray], n_users: int) -> dict[str, str]:
    if len(histories) != n_users:
        raise ValueError(f"source_histories: {len(histories)} histories for {n_users} source users")
    items = np.concatenate([np.asarray(h, np.int64) for h in histories] or [np.zeros(0, np.int64)])
    ptr = np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(np.int64)
    np.save(root / "source_history_items.npy", items, allow_pickle=False)
    np.save(root / "source_history_ptr.npy", ptr, allow_pickle=False)
    return {"items": "source_history_items.npy", "ptr": "source_history_ptr.npy"}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
