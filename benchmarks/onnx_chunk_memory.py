"""Peak-memory growth of one ONNX strategy session scoring 216 users, for a given chunk size.

onnxruntime's CPU arena keeps the largest intermediates a session has seen; item-to-item
graphs have ``[B, history, width]`` ones, so ``OnnxTransferStrategy.chunk`` bounds ``B``.
Run once per chunk size, each in a fresh process (``ru_maxrss`` only grows)::

    .venv/bin/python benchmarks/onnx_chunk_memory.py BUNDLE/strategies/kernelmap 1000000
    .venv/bin/python benchmarks/onnx_chunk_memory.py BUNDLE/strategies/kernelmap 32
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from coldbridge_plugins import ColdUsers, build_strategies, get_plugin_manager, load_strategies  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    folder, chunk = Path(sys.argv[1]), int(sys.argv[2])
    registry = load_strategies(get_plugin_manager())
    cls = registry[folder.name]
    cls.chunk = chunk
    server = build_strategies(
        {folder.name: {"config": {}, "parts": {"transfer": folder / "transfer.onnx"}}},
        {folder.name: cls},
    )[folder.name]
    loaded = rss_mib()
    rng = np.random.default_rng(0)
    n_src = 8000  # item ids below both cdrib domains' sizes
    users = ColdUsers(
        np.zeros((216, 8), np.float32), [rng.integers(0, n_src, 256) for _ in range(216)]
    )
    out = server.transfer(users)
    print(
        f"{folder.name} chunk={chunk}: RSS after load {loaded:.0f} MiB, after scoring {len(users)} "
        "users "
        f"{rss_mib():.0f} MiB (+{rss_mib() - loaded:.0f} MiB); output {out.shape}"
    )


if __name__ == "__main__":
    main()
