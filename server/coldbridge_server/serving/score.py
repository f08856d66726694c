"""ONNX inference for a bundle: one onnxruntime session per model file.

The graphs and their input/output names are the contract of docs/ARCHITECTURE.md; the
constructor checks them so that a bundle with a wrong graph fails at start-up.
``InferenceSession.run`` is thread-safe, so one :class:`OnnxScorer` serves all handler
threads.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from coldbridge_bundle import Session, open_session
from coldbridge_plugins import ColdUsers, pad_histories

from coldbridge_server.bundle import Bundle
from coldbridge_server.errors import ModelLoadError

__all__ = ["OnnxScorer"]

#: model key -> (input names, output names) required by the bundle contract.
_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "source_encoder": (("item_indices", "mask"), ("user_embedding",)),
    "bridge": (("source_embedding",), ("target_embedding",)),
    "target_topk": (("user_embedding", "k"), ("scores", "indices")),
    "target_candidates": (("user_embedding", "item_indices"), ("scores",)),
}


class OnnxScorer:
    """Runs the four bundle models with onnxruntime on CPU.

    Parameters
    ----------
    bundle
        A validated bundle.
    intra_op_threads
        onnxruntime intra-op threads per session; 0 lets onnxruntime decide.
    observe
        Optional ``observe(model_key, seconds)`` called after every session run
        (the server passes its inference-time histogram).

    Raises
    ------
    ModelLoadError
        If a model cannot be loaded or does not have the contract's inputs and outputs.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        intra_op_threads: int = 1,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self._observe = observe
        self.num_items = len(bundle.target_item_ids)
        self.source_dim = bundle.source_dim
        self.target_dim = bundle.target_dim
        self.max_history = bundle.encoder_max_history
        self._sessions = {
            key: _open_session(str(bundle.model_paths[key]), key, intra_op_threads)
            for key in _SIGNATURES
        }

    def encode_source(self, histories: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Encode source-item histories (index lists) into source user embeddings.

        Histories longer than ``encoder_max_history`` keep their most recent (last) items;
        an empty history encodes to the encoder bias.

        Returns
        -------
        numpy.ndarray
            float32 ``[len(histories), d_s]``.
        """
        rows = [np.asarray(h, dtype=np.int64) for h in histories]
        indices, mask = pad_histories(rows, self.max_history or sys.maxsize)
        return self._run("source_encoder", {"item_indices": indices, "mask": mask})[0]

    def cold_user(self, items: Sequence[int] | np.ndarray) -> ColdUsers:
        """A one-user :class:`ColdUsers` of a source history: its encoding and the items."""
        history = np.asarray(items, dtype=np.int64)
        return ColdUsers(self.encode_source([history]), [history])

    def bridge(self, source_embeddings: np.ndarray) -> np.ndarray:
        """Map source embeddings ``[B, d_s]`` to target user embeddings ``[B, d_t]``."""
        x = np.ascontiguousarray(source_embeddings, dtype=np.float32).reshape(-1, self.source_dim)
        return self._run("bridge", {"source_embedding": x})[0]

    def topk(self, user_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``min(k, num_items)`` target items per user, best first.

        Returns
        -------
        tuple of numpy.ndarray
            ``scores`` float32 ``[B, k']`` and ``indices`` int64 ``[B, k']``.
        """
        k = max(0, min(int(k), self.num_items))
        u = self._users(user_vecs)
        if k == 0:
            return np.zeros((len(u), 0), np.float32), np.zeros((len(u), 0), np.int64)
        scores, indices = self._run("target_topk", {"user_embedding": u, "k": np.array([k])})
        return scores, indices

    def score(self, user_vecs: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of candidate items: ``item_idx`` int ``[B, C]`` -> float32 ``[B, C]``."""
        u = self._users(user_vecs)
        idx = np.ascontiguousarray(item_idx, dtype=np.int64).reshape(len(u), -1)
        if idx.shape[1] == 0:
            return np.zeros(idx.shape, dtype=np.float32)
        return self._run("target_candidates", {"user_embedding": u, "item_indices": idx})[0]

    def warmup(self) -> None:
        """Run every session once on dummy input, so the first request is not slow.

        Raises
        ------
        ModelLoadError
            If a model fails to run or returns a wrongly shaped result.
        """
        try:
            src = self.encode_source([[0]])
            tgt = self.bridge(src)
            scores, _ = self.topk(tgt, 1)
            cand = self.score(tgt, np.zeros((1, 1), np.int64))
        except Exception as exc:  # onnxruntime raises its own, undocumented, types
            raise ModelLoadError(f"model warm-up failed: {exc}") from exc
        expected = [
            (src, (1, self.source_dim)),
            (tgt, (1, self.target_dim)),
            (scores, (1, 1)),
            (cand, (1, 1)),
        ]
        for array, shape in expected:
            if array.shape != shape:
                raise ModelLoadError(f"warm-up output shape {array.shape}, expected {shape}")

    def _users(self, user_vecs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(user_vecs, dtype=np.float32).reshape(-1, self.target_dim)

    def _run(self, key: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        start = time.perf_counter()
        outputs: list[np.ndarray] = self._sessions[key].run(list(_SIGNATURES[key][1]), feeds)
        if self._observe is not None:
            self._observe(key, time.perf_counter() - start)
        return outputs


def _open_session(path: str, key: str, threads: int) -> Session:
    try:
        session = open_session(path, threads=threads)
    except Exception as exc:  # onnxruntime raises its own, undocumented, types
        raise ModelLoadError(f"{path}: cannot load {key} model: {exc}") from exc
    inputs = tuple(sorted(i.name for i in session.get_inputs()))
    outputs = {o.name for o in session.get_outputs()}
    want_in, want_out = _SIGNATURES[key]
    if inputs != tuple(sorted(want_in)) or not set(want_out) <= outputs:
        raise ModelLoadError(
            f"{path}: {key} model has inputs {list(inputs)} / outputs {sorted(outputs)}, "
            f"expected inputs {list(want_in)} and outputs {list(want_out)}"
        )
    return session
