"""Example external coldbridge strategy plugin (``ridge``)."""

from __future__ import annotations

__all__: list[str] = []
