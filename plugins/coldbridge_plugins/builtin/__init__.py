"""Strategies shipped with coldbridge, registered through the plugin hook."""

from __future__ import annotations
