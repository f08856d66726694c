"""coldbridge_bundle: write -> read round trip, verify, format refusal, newest wins, sessions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import coldbridge_bundle as cb
import numpy as np
import onnx
import pytest
from conftest import make_tiny_arrays, tiny_content


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A bundle with a strategy (one graph, one array) and source histories."""
    arrays = make_tiny_arrays()
    base = tiny_content(arrays)
    strategy = cb.StrategyContent(
        version="1.0",
        output="scores",
        config={"lambda": 2.0},
        parts={"transfer": base.models["bridge"], "weights": np.arange(6, dtype=np.float32)},
    )
    histories = [
        np.array([0, 3]),
        np.array([5]),
        np.zeros(0),
        np.array([1, 2, 39]),
        np.array([7]),
        np.array([8, 9]),
    ]
    content = tiny_content(
        arrays,
        strategies={"mine": strategy},
        source_histories=histories,
        metrics={"hr@10": np.float32(0.5)},
        config={"epochs": 3},
    )
    path = cb.write(tmp_path_factory.mktemp("b"), content, version="20260101T000000Z-aaaa")
    return path, arrays


def _copy(path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(path, tmp_path / path.name))


def _edit_manifest(path: Path, key: str, value: object) -> None:
    manifest = json.loads((path / cb.MANIFEST).read_text())
    manifest[key] = value
    (path / cb.MANIFEST).write_text(json.dumps(manifest))


def test_round_trip(written: tuple[Path, dict[str, Any]]) -> None:
    path, arrays = written
    loaded = cb.read(path)
    spec = loaded.spec
    assert spec.bundle_version == path.name and spec.feedback == "implicit"
    assert spec.items.target == tuple(arrays["target_item_ids"])
    assert spec.users.source == tuple(arrays["source_user_ids"])
    assert spec.embedding_dim == cb.Sides(8, 8) and spec.encoder_max_history == 16
    assert spec.metrics == {"hr@10": 0.5} and spec.config == {"epochs": 3}
    np.testing.assert_array_equal(loaded.arrays["target_item_bias"], arrays["target_item_bias"])
    assert not loaded.arrays["source_user_embeddings"].flags.writeable
    assert set(loaded.model_paths()) == set(cb.MODEL_KEYS)
    mine = spec.strategies["mine"]
    assert (mine.version, mine.output, dict(mine.config)) == ("1.0", "scores", {"lambda": 2.0})
    parts = loaded.strategy_parts("mine")
    assert parts["transfer"].read_bytes() == (path / "bridge.onnx").read_bytes()
    np.testing.assert_array_equal(np.load(parts["weights"]), np.arange(6))
    assert loaded.source_history_ptr is not None and loaded.source_history_items is not None
    assert loaded.source_history_ptr.tolist() == [0, 2, 3, 3, 6, 7, 9]
    assert loaded.source_history_items[3:6].tolist() == [1, 2, 39]


def test_spec_dict_round_trip(written: tuple[Path, dict[str, Any]]) -> None:
    path, _ = written
    manifest = json.loads((path / cb.MANIFEST).read_text())
    spec = cb.BundleSpec.from_dict(manifest)
    assert spec.to_dict() == manifest
    assert list(spec.to_dict()) == list(manifest), "the key order the writer stores"
    assert cb.verify(path) == spec


def test_tampered_file_is_refused_naming_it(
    written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path = _copy(written[0], tmp_path)
    with open(path / "strategies" / "mine" / "weights.npy", "ab") as fh:
        fh.write(b"\0")
    for check in (cb.verify, cb.read):
        with pytest.raises(cb.BundleFileError, match="sha256 mismatch") as err:
            check(path)
        assert err.value.path == path / "strategies" / "mine" / "weights.npy"


def test_missing_file_is_refused_naming_it(
    written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path = _copy(written[0], tmp_path)
    (path / "source_history_ptr.npy").unlink()
    with pytest.raises(cb.BundleFileError, match="source_history_ptr.npy: listed .* but missing"):
        cb.verify(path)


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_unknown_format_version_is_refused_clearly(
    written: tuple[Path, dict[str, Any]], tmp_path: Path, version: object
) -> None:
    path = _copy(written[0], tmp_path)
    _edit_manifest(path, "format_version", version)
    with pytest.raises(cb.BundleFormatError) as err:
        cb.read(path)
    assert err.value.path == path / cb.MANIFEST
    message = str(err.value)
    assert "manifest.json: field 'format_version': unsupported" in message
    assert f"{version!r}" in message and "supports [1]" in message


def test_unknown_format_is_refused(written: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = _copy(written[0], tmp_path)
    _edit_manifest(path, "format", "zip")
    with pytest.raises(cb.BundleFormatError, match="field 'format': expected 'coldbridge-bundle'"):
        cb.read_spec(path)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("encoder_max_history", "16", "encoder_max_history"),
        ("feedback", "clicks", "feedback"),
        ("domains", {"source": "game"}, "domains.target"),
        ("strategies", {"mine": {"parts": {"transfer": "nope.onnx"}}}, "strategies.mine.parts"),
        ("source_histories", {"items": "x.npy", "ptr": "y.npy"}, "source_histories.items"),
        ("metrics", [1], "metrics"),
        ("files", {"../etc/passwd": "0" * 64}, "files"),
    ],
)
def test_bad_field_is_refused_naming_it(
    written: tuple[Path, dict[str, Any]], tmp_path: Path, key: str, value: object, field: str
) -> None:
    path = _copy(written[0], tmp_path)
    _edit_manifest(path, key, value)
    with pytest.raises(cb.BundleFormatError, match=f"field '{field}"):
        cb.read_spec(path)


def test_newest_version_wins(written: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    content = tiny_content(make_tiny_arrays())
    old = cb.write(tmp_path, content, version="20250101T000000Z-old")
    new = cb.write(tmp_path, content, version="20260101T000000Z-new")
    (tmp_path / ".20270101T000000Z-writing").mkdir()  # a bundle still being written
    shutil.copy(new / cb.MANIFEST, tmp_path / ".20270101T000000Z-writing" / cb.MANIFEST)
    (tmp_path / "20280101T000000Z-empty").mkdir()  # not a bundle
    assert cb.resolve(tmp_path) == new
    assert cb.resolve(old) == old
    with pytest.raises(cb.BundleFileError, match="does not exist"):
        cb.resolve(tmp_path / "nope")
    with pytest.raises(cb.BundleFileError, match="manifest.json: missing"):
        cb.resolve(tmp_path / "20280101T000000Z-empty")


def test_session_factory_opens_path_bytes_and_model_proto(
    written: tuple[Path, dict[str, Any]],
) -> None:
    file = written[0] / "bridge.onnx"
    proto = onnx.load_model(file)
    sources: list[cb.ModelSource] = [file, str(file), file.read_bytes(), proto]
    x = np.ones((2, 8), np.float32)
    outputs = [cb.open_session(s, threads=1).run(None, {"source_embedding": x})[0] for s in sources]
    assert outputs[0].shape == (2, 8) and np.all(np.isfinite(outputs[0]))
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])
    session = cb.open_session(os.fspath(file), threads=0)
    assert [i.name for i in session.get_inputs()] == ["source_embedding"]


def test_session_factory_refuses_garbage() -> None:
    with pytest.raises(Exception, match="(?i)protobuf|parse|invalid|load"):
        cb.open_session(b"not a model")


def test_exported_names_are_sorted_and_present() -> None:
    def kind(name: str) -> tuple[int, str]:  # constants, classes, functions (ruff RUF022)
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert cb.__all__ == sorted(cb.__all__, key=kind)
    assert all(hasattr(cb, name) for name in cb.__all__)
