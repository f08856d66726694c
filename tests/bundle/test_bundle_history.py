"""The optional ``history`` section: round trip, refusal of bad parts and fields, absence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import coldbridge_bundle as cb
import numpy as np
import pytest
from coldbridge_server.bundle import load_bundle
from conftest import make_tiny_arrays, tiny_content

N_ITEMS = 50  # make_tiny_arrays' target items


def _model() -> cb.HistoryModel:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, N_ITEMS, size=(N_ITEMS, 4))
    w = rng.normal(size=(N_ITEMS, 4)).astype(np.float32)
    return cb.HistoryModel.from_neighbours(
        idx, w, events=(1, 2, 3, 5, 10), history_weight=(0.3, 0.5, 0.6, 0.8, 0.95)
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    content = tiny_content(
        make_tiny_arrays(), history=_model(), history_config={"lambda": 200.0, "k": 4}
    )
    return cb.write(tmp_path_factory.mktemp("h"), content, version="20260101T000000Z-hist")


def _copy(path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(path, tmp_path / path.name))


def _edit_history(path: Path, **values: Any) -> None:
    manifest = json.loads((path / cb.MANIFEST).read_text())
    manifest["history"].update(values)
    (path / cb.MANIFEST).write_text(json.dumps(manifest))


def _replace_part(path: Path, part: str, array: np.ndarray) -> Path:
    """Overwrite a part file and re-record its sha256, so only the reader's checks can fail."""
    file = path / "history" / f"{part}.npy"
    np.save(file, array, allow_pickle=False)
    manifest = json.loads((path / cb.MANIFEST).read_text())
    manifest["files"][f"history/{part}.npy"] = cb.file_sha256(file)
    (path / cb.MANIFEST).write_text(json.dumps(manifest))
    return file


def test_round_trip(written: Path) -> None:
    model, loaded = _model(), cb.read(written)
    got = loaded.history
    assert got is not None
    for part in ("ptr", "cols", "weights"):
        np.testing.assert_array_equal(getattr(got, part), getattr(model, part))
        assert f"history/{part}.npy" in loaded.spec.files
        assert not getattr(got, part).flags.writeable
    assert (got.ptr.dtype, got.cols.dtype, got.weights.dtype) == (np.int64, np.int32, np.float32)
    assert got.events == (1, 2, 3, 5, 10)
    assert got.history_weight == (0.3, 0.5, 0.6, 0.8, 0.95)
    section = json.loads((written / cb.MANIFEST).read_text())["history"]
    assert section == {
        "ptr": "history/ptr.npy",
        "cols": "history/cols.npy",
        "weights": "history/weights.npy",
        "events": [1, 2, 3, 5, 10],
        "history_weight": [0.3, 0.5, 0.6, 0.8, 0.95],
        "config": {"lambda": 200.0, "k": 4},
    }
    scores, a = got.blend(np.arange(N_ITEMS, dtype=np.float32), [3, 7], 2)
    want, _ = model.blend(np.arange(N_ITEMS, dtype=np.float32), [3, 7], 2)
    np.testing.assert_array_equal(scores, want)
    assert a == 0.5


def test_spec_dict_round_trip(written: Path) -> None:
    manifest = json.loads((written / cb.MANIFEST).read_text())
    assert cb.BundleSpec.from_dict(manifest).to_dict() == manifest


def test_server_bundle_carries_the_same_model(written: Path) -> None:
    bundle = load_bundle(written)
    assert bundle.history is not None and bundle.history.history_weight[-1] == 0.95
    np.testing.assert_array_equal(bundle.history.cols, _model().cols)


def test_absent_section_is_none(tmp_path: Path) -> None:
    path = cb.write(tmp_path, tiny_content(make_tiny_arrays()))
    assert "history" not in json.loads((path / cb.MANIFEST).read_text())
    assert cb.read(path).history is None
    assert load_bundle(path).history is None


def test_tampered_history_file_is_refused(written: Path, tmp_path: Path) -> None:
    path = _copy(written, tmp_path)
    with open(path / "history" / "weights.npy", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(cb.BundleFileError, match="sha256 mismatch") as err:
        cb.read(path)
    assert err.value.path == path / "history" / "weights.npy"


@pytest.mark.parametrize(
    ("part", "array", "message"),
    [
        ("ptr", np.zeros(N_ITEMS, np.int64), "expected N_t \\+ 1 = 51"),
        ("ptr", np.r_[1, np.zeros(N_ITEMS, np.int64)], "start at 0"),
        ("ptr", np.zeros(N_ITEMS + 1, np.float32), "1-D integer"),
        ("cols", np.zeros(3, np.int32), "but ptr ends at"),
        ("weights", np.zeros(3, np.float32), "weights for"),
        ("weights", np.zeros((2, 2), np.float32), "1-D floating"),
    ],
)
def test_inconsistent_part_is_refused_naming_it(
    written: Path, tmp_path: Path, part: str, array: np.ndarray, message: str
) -> None:
    path = _copy(written, tmp_path)
    file = _replace_part(path, part, array)
    with pytest.raises(cb.BundleFileError, match=message) as err:
        cb.read(path)
    assert err.value.path == file


def test_out_of_range_cols_and_nan_weights_are_refused(written: Path, tmp_path: Path) -> None:
    model = _model()
    path = _copy(written, tmp_path)
    _replace_part(path, "cols", np.full_like(model.cols, N_ITEMS))
    with pytest.raises(cb.BundleFileError, match="outside the 50 target items"):
        cb.read(path)
    path = _copy(written, tmp_path / "nan")
    weights = model.weights.copy()
    weights[0] = np.nan
    _replace_part(path, "weights", weights)
    with pytest.raises(cb.BundleFileError, match="weights.npy: contains NaN"):
        cb.read(path)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"events": [2, 1, 3, 5, 10]}, "history.events"),
        ({"events": [0, 1, 2, 3, 4]}, "history.events"),
        ({"events": []}, "history.events"),
        ({"history_weight": [0.1, 0.2]}, "history.history_weight"),
        ({"history_weight": [0.1, 0.2, 0.3, 0.4, 1.0]}, "history.history_weight"),
        ({"history_weight": [0.1, 0.2, 0.3, 0.4, True]}, "history.history_weight"),
        ({"ptr": "elsewhere.npy"}, "history.ptr"),
        ({"config": [1]}, "history.config"),
    ],
)
def test_inconsistent_section_is_refused_naming_the_field(
    written: Path, tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    path = _copy(written, tmp_path)
    _edit_history(path, **values)
    with pytest.raises(cb.BundleFormatError, match=f"field '{field}'"):
        cb.read(path)


def test_writer_refuses_a_model_of_another_catalogue() -> None:
    small = cb.HistoryModel.from_neighbours(np.array([[1], [0]]), np.ones((2, 1), np.float32))
    content = tiny_content(make_tiny_arrays(), history=small)
    with pytest.raises(ValueError, match="history: model over 2 items"):
        content.checked_arrays()


def test_history_scores_equal_the_dense_item_to_item_product() -> None:
    """``scores(items)`` is ``x @ W`` for the binary bag ``x`` and the dense weights ``W``."""
    rng = np.random.default_rng(11)
    n, k = 30, 5
    idx = np.stack([rng.choice(n, size=k, replace=False) for _ in range(n)])
    w = rng.uniform(-0.5, 1.0, size=(n, k)).astype(np.float32)
    model = cb.HistoryModel.from_neighbours(idx, w)
    dense = np.zeros((n, n))
    for j in range(n):  # idx[j, c] predicts j with w[j, c]; self-loops and w <= 0 dropped
        for i, v in zip(idx[j], w[j], strict=True):
            if v > 0 and i != j:
                dense[i, j] += v
    for size in (0, 1, 4, 12):
        bag = rng.choice(n, size=size, replace=False)
        x = np.zeros(n)
        x[bag] = 1.0
        np.testing.assert_allclose(model.scores(bag.tolist()), x @ dense, atol=1e-6)
        support, values = model.sparse_scores(bag.tolist())
        assert np.all(np.diff(support) > 0) and np.all(values != 0)
        np.testing.assert_allclose(values, (x @ dense)[support], atol=1e-6)
