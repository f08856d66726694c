"""The coldbridge bundle: the one contract between trainer and server (torch-free)."""

from __future__ import annotations

__all__: list[str] = []
