"""Write, read and verify bundle directories; pick the newest of a directory of versions.

:func:`write` assembles a bundle in a hidden temporary sibling and renames it into place, so
a reader never sees a half-written bundle. :func:`read` trusts nothing: it validates the
manifest (:class:`~coldbridge_bundle.spec.BundleSpec`), that every listed file is present
with its recorded sha256 (:func:`verify`), and that the arrays agree with the id lists and
embedding dims. Failures raise :class:`~coldbridge_bundle.errors.BundleError` subclasses
naming the file (and the manifest field).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from coldbridge_bundle.content import BundleContent, ModelData, StrategyContent
from coldbridge_bundle.errors import BundleFileError, BundleFormatError
from coldbridge_bundle.history import HistoryModel
from coldbridge_bundle.history_io import read_history, write_history
from coldbridge_bundle.spec import (
    ARRAY_FILES,
    HISTORY_FILES,
    MANIFEST,
    MODEL_FILES,
    STRATEGY_DIR,
    BundleSpec,
    HistoriesSpec,
    HistoryModelSpec,
    Sides,
    StrategySpec,
)

__all__ = ["LoadedBundle", "file_sha256", "read", "read_spec", "resolve", "verify", "write"]


@dataclass(frozen=True, eq=False)
class LoadedBundle:
    """A validated bundle: its manifest, its arrays (float32, read-only) and file paths.

    ``history`` is the target item-to-item model of the optional ``history`` section
    (``None`` for a bundle without one).
    """

    path: Path
    spec: BundleSpec
    arrays: dict[str, np.ndarray]
    source_history_items: np.ndarray | None = None
    source_history_ptr: np.ndarray | None = None
    history: HistoryModel | None = None

    def file(self, name: str) -> Path:
        """Absolute path of the bundle-relative POSIX path ``name``."""
        return self.path / PurePosixPath(name)

    def model_paths(self) -> dict[str, Path]:
        """The base models' files by model key."""
        return {key: self.file(name) for key, name in self.spec.models.items()}

    def strategy_parts(self, name: str) -> dict[str, Path]:
        """The files of strategy ``name``'s parts by part name."""
        return {part: self.file(rel) for part, rel in self.spec.strategies[name].parts.items()}


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file (``hashlib.file_digest``)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def resolve(path: Path | str) -> Path:
    """The bundle directory ``path`` designates: itself, or its newest version.

    ``path`` is either a bundle (it holds ``manifest.json``) or a directory of bundle
    versions; then the subdirectory with the greatest name that holds a ``manifest.json`` is
    returned. Versions start with a UTC timestamp (``20261128T043000Z-...``), so the greatest
    name is the newest. Hidden directories (a bundle still being written) are skipped.

    Raises
    ------
    BundleFileError
        If ``path`` is neither a bundle nor a directory containing one.
    """
    root = Path(path)
    if (root / MANIFEST).is_file():
        return root
    if not root.is_dir():
        raise BundleFileError(root, "bundle directory does not exist")
    versions = sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )
    if not versions:
        raise BundleFileError(
            root / MANIFEST, "missing: neither a bundle nor a directory of bundles"
        )
    return versions[-1]


def read_spec(path: Path | str) -> BundleSpec:
    """Parse and validate the manifest of the bundle directory ``path`` (no file checks).

    Raises
    ------
    BundleError
        If the manifest is missing, unreadable, of an unknown format or version, or has a
        bad field.
    """
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleFileError(file, "missing (is this a bundle directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(file, f"unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleFormatError(file, "manifest must be a JSON object")
    return BundleSpec.from_dict(manifest, file)


def verify(path: Path | str) -> BundleSpec:
    """Check the manifest and that every listed file is present with its sha256.

    Raises
    ------
    BundleError
        For a bad manifest, or naming the first missing or altered file.
    """
    root = Path(path)
    spec = read_spec(root)
    for name, digest in spec.files.items():
        file = root / PurePosixPath(name)
        if not file.is_file():
            raise BundleFileError(file, "listed in manifest 'files' but missing")
        actual = file_sha256(file)
        if actual != digest:
            raise BundleFileError(file, f"sha256 mismatch: manifest {digest}, file {actual}")
    return spec


def read(path: Path | str) -> LoadedBundle:
    """Read and validate the bundle in directory ``path`` (see :func:`verify`).

    Raises
    ------
    BundleError
        If the manifest or any file is bad; the message names the file and field.
    """
    root = Path(path)
    spec = verify(root)
    shapes = spec.array_shapes()
    arrays = {key: _load_array(root / name, shapes[key]) for key, name in spec.arrays.items()}
    histories = None
    if spec.source_histories is not None:
        histories = _load_histories(root, spec.source_histories, spec)
    history = None
    if spec.history is not None:
        history = read_history(root, spec.history, len(spec.items.target))
    items, ptr = histories or (None, None)
    return LoadedBundle(root, spec, arrays, items, ptr, history)


def _load_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleFileError(path, f"not a readable .npy array: {exc}") from exc
    if array.shape != shape:
        raise BundleFileError(
            path, f"shape {array.shape} does not match manifest, expected {shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise BundleFileError(path, f"dtype {array.dtype} is not floating point")
    if not np.all(np.isfinite(array)):
        raise BundleFileError(path, "contains NaN or infinite values")
    result = np.ascontiguousarray(array, dtype=np.float32)
    result.setflags(write=False)
    return result


def _load_histories(
    root: Path, files: HistoriesSpec, spec: BundleSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The CSR (items, ptr) of the source users' histories, checked against the id lists."""
    try:
        items = np.load(root / files.items, allow_pickle=False)
        ptr = np.load(root / files.ptr, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleFileError(root / files.ptr, f"not a readable .npy array: {exc}") from exc
    n_users, n_items = len(spec.users.source), len(spec.items.source)
    ok = (
        np.issubdtype(items.dtype, np.integer)
        and np.issubdtype(ptr.dtype, np.integer)
        and items.ndim == 1
        and ptr.shape == (n_users + 1,)
        and ptr[-1] == len(items)
        and (not len(items) or (items.min() >= 0 and items.max() < n_items))
    )
    if not ok:
        raise BundleFileError(
            root / files.ptr, "source histories do not match the source users/items"
        )
    return items.astype(np.int64), ptr.astype(np.int64)


def _new_version() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def write(out_dir: Path | str, content: BundleContent, *, version: str | None = None) -> Path:
    """Write ``content`` as the bundle ``out_dir/<version>`` and return its path.

    The directory is assembled in a hidden temporary sibling and renamed into place. The
    manifest's ``files`` lists the sha256 of every file written.

    Parameters
    ----------
    out_dir
        The directory of bundle versions (created if missing).
    content
        What to write; checked (:meth:`BundleContent.checked_arrays`) before any file is.
    version
        The bundle version (default: a UTC timestamp plus a random suffix).

    Raises
    ------
    ValueError
        When the content is inconsistent (the message names the field).
    FileExistsError
        When the version directory already exists.
    """
    arrays = content.checked_arrays()
    version = version or _new_version()
    out = Path(out_dir)
    final = out / version
    if final.exists():
        raise FileExistsError(f"bundle version already exists: {final}")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=out))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a server running as another user must read it
        for key, model in content.models.items():
            _save_model(tmp / MODEL_FILES[key], model)
        for key, array in arrays.items():
            np.save(tmp / ARRAY_FILES[key], array, allow_pickle=False)
        strategies = {name: _write_strategy(tmp, name, s) for name, s in content.strategies.items()}
        histories = None
        if content.source_histories is not None:
            histories = _write_histories(tmp, content.source_histories)
        history = None
        if content.history is not None:
            history = write_history(tmp, content.history, content.history_config)
        spec = _spec(content, version, strategies, (histories, history), _hashes(tmp))
        _write_manifest(tmp / MANIFEST, spec)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _spec(
    content: BundleContent,
    version: str,
    strategies: dict[str, StrategySpec],
    histories: tuple[HistoriesSpec | None, HistoryModelSpec | None],
    files: dict[str, str],
) -> BundleSpec:
    return BundleSpec(
        bundle_version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy=content.strategy,
        feedback=content.feedback,
        domains=content.domains,
        embedding_dim=content.dims(),
        encoder_max_history=int(content.encoder_max_history),
        items=Sides(tuple(content.items.source), tuple(content.items.target)),
        users=Sides(tuple(content.users.source), tuple(content.users.target)),
        files=files,
        strategies=strategies,
        source_histories=histories[0],
        history=histories[1],
        metrics=content.metrics,
        config=content.config,
    )


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): file_sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _save_model(path: Path, model: ModelData) -> None:
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())


def _write_strategy(root: Path, name: str, strategy: StrategyContent) -> StrategySpec:
    """Write one strategy's parts under ``strategies/<name>/``; its manifest entry."""
    folder = root / STRATEGY_DIR / name
    folder.mkdir(parents=True)
    parts = {}
    for part, value in strategy.parts.items():
        if isinstance(value, np.ndarray):
            file = folder / f"{part}.npy"
            np.save(file, value, allow_pickle=False)
        else:
            file = folder / f"{part}.onnx"
            _save_model(file, value)
        parts[part] = file.relative_to(root).as_posix()
    return StrategySpec(str(strategy.version), strategy.output, dict(strategy.config), parts)


def _write_histories(root: Path, histories: Sequence[np.ndarray]) -> HistoriesSpec:
    lists = [np.asarray(h, np.int64) for h in histories]
    items = np.concatenate(lists or [np.zeros(0, np.int64)])
    ptr = np.concatenate([[0], np.cumsum([len(h) for h in lists])]).astype(np.int64)
    np.save(root / HISTORY_FILES["items"], items, allow_pickle=False)
    np.save(root / HISTORY_FILES["ptr"], ptr, allow_pickle=False)
    return HistoriesSpec()


def _write_manifest(path: Path, spec: BundleSpec) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(spec.to_dict(), fh, indent=1, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
