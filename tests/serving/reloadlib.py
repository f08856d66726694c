"""Helpers of tests/serving/test_reload*.py: bundle versions in one directory, a server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from coldbridge_bundle import write
from coldbridge_client import Client
from coldbridge_server import Settings, create_server
from coldbridge_server.app import ColdbridgeServer
from conftest import TinyBundle, make_tiny_arrays, tiny_content
from prometheus_client import CollectorRegistry


def write_version(root: Path, version: str, arrays: dict[str, Any], **fields: Any) -> TinyBundle:
    """Write ``arrays`` as bundle ``root/version`` (the real writer)."""
    return TinyBundle(write(root, tiny_content(arrays, **fields), version=version), arrays)


def version(root: Path, name: str, seed: int) -> TinyBundle:
    """A tiny bundle of random weights ``seed`` written as ``root/name``."""
    return write_version(root, name, make_tiny_arrays(seed))


def without_target_items(arrays: dict[str, Any], n: int) -> dict[str, Any]:
    """``arrays`` restricted to the first ``n`` target items."""
    cut = dict(arrays)
    cut["target_item_ids"] = arrays["target_item_ids"][:n]
    for key in ("target_item_emb", "target_item_bias", "target_item_popularity"):
        cut[key] = arrays[key][:n]
    return cut


def edit_manifest(bundle: Path, **fields: Any) -> None:
    """Change manifest fields (the manifest is not hashed)."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(fields)
    path.write_text(json.dumps(manifest))


def rehash(bundle: Path, name: str) -> None:
    """Record the current sha256 of ``name`` in the manifest (a consistent, bad bundle)."""
    import hashlib

    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))


@dataclass
class Served:
    server: ColdbridgeServer
    client: Client
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def vectors(self) -> dict[str, np.ndarray | None]:
        assert self.server.ingestor is not None
        return {s.user_id: s.vector for s in self.server.ingestor.updater.states}


@contextlib.contextmanager
def serving(bundle_path: Path, state_dir: Path, **settings: Any) -> Iterator[Served]:
    """A real server on 127.0.0.1:0 serving ``bundle_path`` (a bundle or versions)."""
    registry = CollectorRegistry()
    config = Settings(
        bundle_path=str(bundle_path),
        host="127.0.0.1",
        port=0,
        state_dir=str(state_dir),
        metrics_port=-1,
        state_sync="NORMAL",
        **settings,
    )
    server, port = create_server(config, registry=registry)
    server.start()
    try:
        assert server.wait_until_ready(timeout=60)
        with Client(f"127.0.0.1:{port}", retry=None) as client:
            yield Served(server, client, registry)
    finally:
        server.stop(None).wait()
