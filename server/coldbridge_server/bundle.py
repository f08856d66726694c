"""Loading and validating a model bundle (the trainer -> server contract, docs/ARCHITECTURE.md).

:func:`load_bundle` trusts nothing: it checks the manifest format and version, the type of
every field it uses, that every listed file is present with the recorded sha256, and that
the ``.npy`` arrays agree with the id lists and embedding dims. Any violation raises
:class:`~coldbridge_server.errors.BundleError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from coldbridge_server.errors import BundleError

__all__ = [
    "ARRAY_KEYS",
    "BUNDLE_FORMAT",
    "MODEL_KEYS",
    "SUPPORTED_FORMAT_VERSIONS",
    "Bundle",
    "load_bundle",
    "resolve_bundle_dir",
]

BUNDLE_FORMAT = "coldbridge-bundle"
SUPPORTED_FORMAT_VERSIONS = frozenset({1})
MANIFEST = "manifest.json"
MODEL_KEYS = ("source_encoder", "bridge", "target_topk", "target_candidates")
ARRAY_KEYS = (
    "source_user_embeddings",
    "target_user_embeddings",
    "target_item_popularity",
    "source_item_embeddings",
    "target_item_embeddings",
    "target_item_bias",
)


@dataclass(frozen=True, eq=False)
class Bundle:
    """A validated bundle: manifest metadata, id lists, arrays and model file paths.

    Id lists are tuples in index order; ``*_index`` map an id to its row/index.
    """

    path: Path
    version: str
    created_at: str
    strategy: str
    feedback: str
    source_domain: str
    target_domain: str
    source_dim: int
    target_dim: int
    encoder_max_history: int
    source_item_ids: tuple[str, ...]
    target_item_ids: tuple[str, ...]
    source_user_ids: tuple[str, ...]
    target_user_ids: tuple[str, ...]
    source_item_index: Mapping[str, int]
    target_item_index: Mapping[str, int]
    source_user_index: Mapping[str, int]
    target_user_index: Mapping[str, int]
    model_paths: Mapping[str, Path]
    source_user_embeddings: np.ndarray
    target_user_embeddings: np.ndarray
    target_item_popularity: np.ndarray
    source_item_embeddings: np.ndarray
    target_item_embeddings: np.ndarray
    target_item_bias: np.ndarray
    metrics: Mapping[str, Any]
    config: Mapping[str, Any]
    strategies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Trained strategy plugins: ``{name: {"version", "output", "config", "parts": {part: Path}}}``."""
    source_history_items: np.ndarray | None = None
    source_history_ptr: np.ndarray | None = None

    def source_history(self, row: int) -> np.ndarray:
        """Source item indices of bundle source user ``row`` (empty if the bundle has none)."""
        if self.source_history_items is None or self.source_history_ptr is None:
            return np.zeros(0, dtype=np.int64)
        return self.source_history_items[self.source_history_ptr[row] : self.source_history_ptr[row + 1]]


def resolve_bundle_dir(path: Path | str) -> Path:
    """Return the bundle directory ``path`` designates.

    ``path`` is either a bundle (it holds ``manifest.json``) or a directory of bundle
    versions; then the subdirectory with the greatest name that holds a ``manifest.json``
    is returned. Bundle versions start with a UTC timestamp (``20261128T043000Z-...``), so
    the greatest name is the newest bundle. Hidden directories (a bundle still being
    written by ``write_bundle``) are skipped.

    Raises
    ------
    BundleError
        If ``path`` is neither a bundle nor a directory containing one.
    """
    root = Path(path)
    if (root / MANIFEST).is_file():
        return root
    if not root.is_dir():
        raise BundleError(root, "bundle directory does not exist")
    versions = sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )
    if not versions:
        raise BundleError(root / MANIFEST, "missing: neither a bundle nor a directory of bundles")
    return versions[-1]


def load_bundle(path: Path | str) -> Bundle:
    """Load and validate the bundle in directory ``path``.

    Raises
    ------
    BundleError
        If the manifest is missing, unreadable, of an unsupported format, or inconsistent
        with the files next to it. The message names the file and manifest field.
    """
    root = Path(path)
    manifest = _read_manifest(root / MANIFEST)
    m = _Fields(manifest, root / MANIFEST)
    _check_format(m)
    files = _check_files(root, m)
    dims = m.section("embedding_dim", ("source", "target"), int)
    items = {d: m.id_list(f"items.{d}", allow_empty=False) for d in ("source", "target")}
    users = {d: m.id_list(f"users.{d}", allow_empty=True) for d in ("source", "target")}
    models = m.section("models", MODEL_KEYS, str)
    arrays = m.section("arrays", ARRAY_KEYS, str)
    for key, name in (*models.items(), *arrays.items()):
        if name not in files:
            raise BundleError(root / MANIFEST, f"{key} file {name!r} is not listed in 'files'")
    shapes = {
        "source_user_embeddings": (len(users["source"]), dims["source"]),
        "target_user_embeddings": (len(users["target"]), dims["target"]),
        "target_item_popularity": (len(items["target"]),),
        "source_item_embeddings": (len(items["source"]), dims["source"]),
        "target_item_embeddings": (len(items["target"]), dims["target"]),
        "target_item_bias": (len(items["target"]),),
    }
    loaded = {key: _load_array(root / arrays[key], shapes[key]) for key in ARRAY_KEYS}
    domains = m.section("domains", ("source", "target"), str)
    return Bundle(
        path=root,
        version=m.get("bundle_version", str),
        created_at=m.get("created_at", str),
        strategy=m.get("strategy", str),
        feedback=m.get("feedback", str),
        source_domain=domains["source"],
        target_domain=domains["target"],
        source_dim=dims["source"],
        target_dim=dims["target"],
        encoder_max_history=m.get("encoder_max_history", int),
        source_item_ids=items["source"],
        target_item_ids=items["target"],
        source_user_ids=users["source"],
        target_user_ids=users["target"],
        source_item_index=_index(items["source"]),
        target_item_index=_index(items["target"]),
        source_user_index=_index(users["source"]),
        target_user_index=_index(users["target"]),
        model_paths={key: root / name for key, name in models.items()},
        source_user_embeddings=loaded["source_user_embeddings"],
        target_user_embeddings=loaded["target_user_embeddings"],
        target_item_popularity=loaded["target_item_popularity"],
        source_item_embeddings=loaded["source_item_embeddings"],
        target_item_embeddings=loaded["target_item_embeddings"],
        target_item_bias=loaded["target_item_bias"],
        metrics=m.optional_dict("metrics"),
        config=m.optional_dict("config"),
        strategies=_strategies(root, m, files),
        **_histories(root, m, files, len(users["source"]), len(items["source"])),
    )


class _Fields:
    """Typed access to manifest fields, raising BundleError that names the field."""

    def __init__(self, manifest: dict[str, Any], path: Path) -> None:
        self.manifest = manifest
        self.path = path

    def fail(self, field: str, message: str) -> BundleError:
        return BundleError(self.path, f"field {field!r}: {message}")

    def get(self, field: str, kind: type, container: Mapping[str, Any] | None = None) -> Any:
        source = self.manifest if container is None else container
        key = field.rsplit(".", 1)[-1]
        if key not in source:
            raise self.fail(field, "missing")
        value = source[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(field, f"expected {kind.__name__}, got {type(value).__name__}")
        if isinstance(value, int) and value <= 0:
            raise self.fail(field, f"must be positive, got {value}")
        return value

    def section(self, name: str, keys: tuple[str, ...], kind: type) -> dict[str, Any]:
        section = self.get(name, dict)
        return {key: self.get(f"{name}.{key}", kind, section) for key in keys}

    def id_list(self, field: str, *, allow_empty: bool) -> tuple[str, ...]:
        section, key = field.split(".")
        ids = self.get(field, list, self.get(section, dict))
        if not all(isinstance(i, str) and i for i in ids):
            raise self.fail(field, "ids must be non-empty strings")
        if not ids and not allow_empty:
            raise self.fail(field, "must not be empty")
        if len(set(ids)) != len(ids):
            raise self.fail(field, "contains duplicate ids")
        return tuple(ids)

    def optional_dict(self, field: str) -> dict[str, Any]:
        return self.get(field, dict) if field in self.manifest else {}


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(path, "missing (is this a bundle directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(path, f"unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(path, "manifest must be a JSON object")
    return manifest


def _check_format(m: _Fields) -> None:
    if m.manifest.get("format") != BUNDLE_FORMAT:
        raise m.fail("format", f"expected {BUNDLE_FORMAT!r}, got {m.manifest.get('format')!r}")
    version = m.manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        supported = sorted(SUPPORTED_FORMAT_VERSIONS)
        raise m.fail("format_version", f"unsupported {version!r}; supported: {supported}")


def _check_files(root: Path, m: _Fields) -> dict[str, str]:
    files: dict[str, Any] = m.get("files", dict)
    for name, digest in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or name == MANIFEST:
            raise m.fail("files", f"illegal file name {name!r}")
        if not isinstance(digest, str):
            raise m.fail(f"files.{name}", "sha256 must be a hex string")
        file = root / rel
        if not file.is_file():
            raise BundleError(file, "listed in manifest 'files' but missing")
        actual = _sha256(file)
        if actual != digest.lower():
            raise BundleError(file, f"sha256 mismatch: manifest {digest}, file {actual}")
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(path, f"not a readable .npy array: {exc}") from exc
    if array.shape != shape:
        raise BundleError(path, f"shape {array.shape} does not match manifest, expected {shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise BundleError(path, f"dtype {array.dtype} is not floating point")
    if not np.all(np.isfinite(array)):
        raise BundleError(path, "contains NaN or infinite values")
    result = np.ascontiguousarray(array, dtype=np.float32)
    result.setflags(write=False)
    return result


def _strategies(root: Path, m: _Fields, files: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The optional ``strategies`` section; every part must be listed in ``files``."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in m.optional_dict("strategies").items():
        field_name = f"strategies.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("parts", {}), dict):
            raise m.fail(field_name, "expected an object with a 'parts' object")
        parts = {}
        for part, file in spec.get("parts", {}).items():
            if not isinstance(file, str) or file not in files:
                raise m.fail(f"{field_name}.parts.{part}", f"file {file!r} is not listed in 'files'")
            parts[part] = root / file
        out[name] = {**spec, "parts": parts}
    return out


def _histories(root: Path, m: _Fields, files: Mapping[str, str], n_users: int,
               n_items: int) -> dict[str, np.ndarray]:
    """The optional CSR ``source_histories`` (items, ptr) of the bundle's source users."""
    spec = m.optional_dict("source_histories")
    if not spec:
        return {}
    arrays = {}
    for key in ("items", "ptr"):
        name = spec.get(key)
        if not isinstance(name, str) or name not in files:
            raise m.fail(f"source_histories.{key}", f"file {name!r} is not listed in 'files'")
        arrays[key] = np.load(root / name, allow_pickle=False)
    items, ptr = arrays["items"], arrays["ptr"]
    if ptr.shape != (n_users + 1,) or (len(items) and (items.min() < 0 or items.max() >= n_items)) \
            or ptr[-1] != len(items):
        raise BundleError(root / spec["ptr"], "source histories do not match the source users/items")
    return {"source_history_items": items.astype(np.int64), "source_history_ptr": ptr.astype(np.int64)}


def _index(ids: tuple[str, ...]) -> dict[str, int]:
    return {id_: i for i, id_ in enumerate(ids)}
