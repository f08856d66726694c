"""The coldbridge bundle: the one contract between trainer and server (torch-free).

A bundle is a directory ``<bundles>/<version>/`` of ONNX models, ``.npy`` arrays and a
``manifest.json`` (docs/ARCHITECTURE.md). This package owns it: the typed manifest
(:mod:`~coldbridge_bundle.spec`), what a writer provides (:class:`BundleContent`), the
optional target item-to-item model (:class:`HistoryModel`, :mod:`~coldbridge_bundle.history`),
:func:`write`, :func:`read`, :func:`verify`, :func:`resolve` (newest version wins) and the
one onnxruntime session factory (:func:`open_session`). It needs only numpy; onnxruntime is
imported when a session is opened.

Examples
--------
>>> import coldbridge_bundle
>>> coldbridge_bundle.FORMAT, coldbridge_bundle.FORMAT_VERSION
('coldbridge-bundle', 1)
"""

from __future__ import annotations

from coldbridge_bundle.content import BundleContent, ModelData, StrategyContent
from coldbridge_bundle.errors import BundleError, BundleFileError, BundleFormatError
from coldbridge_bundle.history import HistoryModel
from coldbridge_bundle.io import (
    LoadedBundle,
    file_sha256,
    read,
    read_spec,
    resolve,
    verify,
    write,
)
from coldbridge_bundle.sessions import ModelSource, Session, SupportsSerialize, open_session
from coldbridge_bundle.spec import (
    ARRAY_KEYS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_KEYS,
    OPSET,
    SUPPORTED_FORMAT_VERSIONS,
    BundleSpec,
    HistoriesSpec,
    HistoryModelSpec,
    Sides,
    StrategySpec,
)

__all__ = [
    "ARRAY_KEYS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODEL_KEYS",
    "OPSET",
    "SUPPORTED_FORMAT_VERSIONS",
    "BundleContent",
    "BundleError",
    "BundleFileError",
    "BundleFormatError",
    "BundleSpec",
    "HistoriesSpec",
    "HistoryModel",
    "HistoryModelSpec",
    "LoadedBundle",
    "ModelData",
    "ModelSource",
    "Session",
    "Sides",
    "StrategyContent",
    "StrategySpec",
    "SupportsSerialize",
    "file_sha256",
    "open_session",
    "read",
    "read_spec",
    "resolve",
    "verify",
    "write",
]
