"""`coldbridge train --strategies`: per-strategy parts in the bundle, listed with sha256."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from coldbridge_cli import main
from coldbridge_server import load_bundle
from coldbridge_server.errors import BundleError
from coldbridge_trainer.synth import SynthConfig, write_dataset


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    data = write_dataset(
        root / "data",
        SynthConfig(
            n_overlap=80,
            n_source_only=20,
            n_target_only=20,
            n_cold=20,
            n_source_items=40,
            n_target_items=30,
        ),
    )
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(root / "b"),
        "--version",
        "v1",
        "--strategies",
        "knn,itemmap",
        "--default-strategy",
        "itemmap",
        "--epochs",
        "2",
        "--bridge-epochs",
        "2",
        "--dim",
        "8",
        "--no-progress",
        "--eval-negatives",
        "20",
    ]
    assert main(argv) == 0
    return root / "b" / "v1"


def test_manifest_lists_strategy_parts_and_histories(bundle: Path) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["strategy"] == "itemmap" and set(m["strategies"]) == {"knn", "itemmap"}
    assert m["strategies"]["itemmap"]["output"] == "scores"
    assert m["strategies"]["knn"]["parts"] == {"transfer": "strategies/knn/transfer.onnx"}
    assert "lambda" in m["strategies"]["itemmap"]["config"]
    for rel in (
        "strategies/knn/transfer.onnx",
        "strategies/itemmap/transfer.onnx",
        "source_history_items.npy",
        "source_history_ptr.npy",
        "bridge.onnx",
    ):
        assert rel in m["files"] and len(m["files"][rel]) == 64
    for name in ("knn", "itemmap"):
        assert (
            m["metrics"]["strategies"][name]["test"]["scorers"][name]["sampled"]["line"]["HR@10"]
            >= 0
        )
    loaded = load_bundle(bundle)
    assert set(loaded.strategies) == {"knn", "itemmap"}
    row = loaded.source_user_index[loaded.source_user_ids[0]]
    assert loaded.source_history(row).dtype == np.int64 and len(loaded.source_history(row)) > 0


def test_tampered_strategy_part_is_refused_naming_it(bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "copy"))
    with open(copy / "strategies" / "knn" / "transfer.onnx", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match="strategies/knn/transfer.onnx"):
        load_bundle(copy)
