"""A small client for callers of the coldbridge gRPC API (grpcio + protobuf only)."""

from __future__ import annotations

__all__: list[str] = []
