"""The one onnxruntime session factory of coldbridge (server, plugins and evaluation).

onnxruntime is imported inside :func:`open_session`, so importing this package stays light;
``onnx`` and torch are never imported (an ``onnx.ModelProto`` is accepted by duck typing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ModelSource", "Session", "SupportsSerialize", "open_session"]


@runtime_checkable
class SupportsSerialize(Protocol):
    """An in-memory model such as ``onnx.ModelProto``."""

    def SerializeToString(self) -> bytes:  # noqa: N802 (protobuf's name)
        """The serialized model."""
        ...


ModelSource = str | os.PathLike[str] | bytes | SupportsSerialize
"""A model file path, serialized model bytes, or an in-memory model."""


class Session(Protocol):
    """What coldbridge uses of ``onnxruntime.InferenceSession``."""

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[Any]:
        """Run the graph; one array per requested output."""
        ...

    def get_inputs(self) -> list[Any]:
        """The graph inputs (``.name``, ``.shape``, ``.type``)."""
        ...

    def get_outputs(self) -> list[Any]:
        """The graph outputs (``.name``, ``.shape``, ``.type``)."""
        ...


def open_session(model: ModelSource, *, threads: int = 1, log_severity_level: int = 3) -> Session:
    """An onnxruntime CPU session for a model file, serialized bytes or an ``onnx.ModelProto``.

    Parameters
    ----------
    model
        Path of an ``.onnx`` file, the serialized model, or an object with
        ``SerializeToString()`` (``onnx.ModelProto``).
    threads
        Intra-op threads; 0 lets onnxruntime decide. Inter-op threads are always 1.
    log_severity_level
        onnxruntime's log level (3: errors only).

    Returns
    -------
    Session
        An ``onnxruntime.InferenceSession`` on the CPU execution provider.

    Raises
    ------
    Exception
        Whatever onnxruntime raises for an unreadable or invalid model (its types are not
        documented); callers wrap it with the model's name.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = log_severity_level
    source: str | bytes
    if isinstance(model, SupportsSerialize):
        source = model.SerializeToString()
    elif isinstance(model, bytes):
        source = model
    else:
        source = os.fspath(model)
    session: Session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session
