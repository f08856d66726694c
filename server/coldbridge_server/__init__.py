"""coldbridge gRPC server: serves a trained cold-start cross-domain bundle with onnxruntime.

The server never imports torch or the trainer; the bundle directory is its only input.
"""

from __future__ import annotations

from coldbridge_server.app import create_server, serve
from coldbridge_server.bundle import Bundle, load_bundle
from coldbridge_server.config import Settings
from coldbridge_server.errors import (
    BundleError,
    ColdbridgeError,
    ConfigError,
    InvalidRequestError,
    ModelLoadError,
    NotReadyError,
)

__all__ = [
    "Bundle",
    "BundleError",
    "ColdbridgeError",
    "ConfigError",
    "InvalidRequestError",
    "ModelLoadError",
    "NotReadyError",
    "Settings",
    "create_server",
    "load_bundle",
    "serve",
]
