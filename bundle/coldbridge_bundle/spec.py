"""The typed manifest (``manifest.json``) of a bundle, and its format version.

:class:`BundleSpec` is the manifest as frozen dataclasses. :meth:`BundleSpec.from_dict`
checks the format, the format version and the type of every field, and raises
:class:`~coldbridge_bundle.errors.BundleFormatError` naming the manifest file and the
field; :meth:`BundleSpec.to_dict` gives the JSON object the writer stores. The layout is
documented in docs/ARCHITECTURE.md ("The bundle").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from coldbridge_bundle.errors import BundleFormatError

__all__ = [
    "ARRAY_FILES",
    "ARRAY_KEYS",
    "ARRAY_LAYOUT",
    "FEEDBACK_KINDS",
    "FORMAT",
    "FORMAT_VERSION",
    "HISTORY_FILES",
    "HISTORY_MODEL_FILES",
    "MANIFEST",
    "MODEL_FILES",
    "MODEL_KEYS",
    "OPSET",
    "STRATEGY_DIR",
    "SUPPORTED_FORMAT_VERSIONS",
    "BundleSpec",
    "HistoriesSpec",
    "HistoryModelSpec",
    "Sides",
    "StrategySpec",
]

FORMAT = "coldbridge-bundle"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({FORMAT_VERSION})
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
MODEL_FILES = {key: f"{key}.onnx" for key in MODEL_KEYS}
ARRAY_FILES = {key: f"{key}.npy" for key in ARRAY_KEYS}
HISTORY_FILES = {"items": "source_history_items.npy", "ptr": "source_history_ptr.npy"}
HISTORY_MODEL_FILES = {part: f"history/{part}.npy" for part in ("ptr", "cols", "weights")}
"""The target item-to-item model's CSR parts (the optional ``history`` section)."""
ARRAY_LAYOUT = {
    "source_user_embeddings": ("users", "source", 2),
    "target_user_embeddings": ("users", "target", 2),
    "target_item_popularity": ("items", "target", 1),
    "source_item_embeddings": ("items", "source", 2),
    "target_item_embeddings": ("items", "target", 2),
    "target_item_bias": ("items", "target", 1),
}
"""Array key -> (id list whose length is its rows, domain side, ndim; 2-D ones are ``d`` wide)."""
OPSET = 17
"""ONNX opset of every graph in a bundle (base graphs and strategy parts)."""
STRATEGY_DIR = "strategies"
"""Bundle sub-directory holding ``<name>/<part>.onnx|.npy`` of each trained strategy."""
FEEDBACK_KINDS = ("implicit", "explicit")

_SIDES = ("source", "target")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Sides(Generic[T_co]):
    """A value per domain side (``{"source": ..., "target": ...}`` in the manifest)."""

    source: T_co
    target: T_co


@dataclass(frozen=True)
class StrategySpec:
    """A trained strategy plugin: its parts are bundle-relative POSIX paths."""

    version: str = ""
    output: str = "embedding"
    config: Mapping[str, Any] = field(default_factory=dict)
    parts: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``strategies.<name>`` object."""
        return {
            "version": self.version,
            "output": self.output,
            "config": dict(self.config),
            "parts": dict(self.parts),
        }


@dataclass(frozen=True)
class HistoriesSpec:
    """The CSR of the source users' training histories (bundle-relative paths)."""

    items: str = HISTORY_FILES["items"]
    ptr: str = HISTORY_FILES["ptr"]


@dataclass(frozen=True)
class HistoryModelSpec:
    """The optional ``history`` section: the target item-to-item model and its blend weights.

    ``ptr``/``cols``/``weights`` are bundle-relative paths of the CSR parts
    (:class:`coldbridge_bundle.history.HistoryModel`); ``events`` are the evidence buckets'
    lower bounds and ``history_weight`` their fitted ``a``; ``config`` is free-form (the
    trainer's lambda, k and valid fit table).
    """

    events: tuple[int, ...]
    history_weight: tuple[float, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    ptr: str = HISTORY_MODEL_FILES["ptr"]
    cols: str = HISTORY_MODEL_FILES["cols"]
    weights: str = HISTORY_MODEL_FILES["weights"]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``history`` object."""
        return {
            "ptr": self.ptr,
            "cols": self.cols,
            "weights": self.weights,
            "events": list(self.events),
            "history_weight": list(self.history_weight),
            "config": dict(self.config),
        }


@dataclass(frozen=True)
class BundleSpec:
    """The manifest of a bundle (docs/ARCHITECTURE.md), validated.

    Id tuples are in row/index order. ``files`` maps every file but the manifest
    (relative POSIX path) to its sha256 hex digest.
    """

    bundle_version: str
    created_at: str
    strategy: str
    feedback: str
    domains: Sides[str]
    embedding_dim: Sides[int]
    encoder_max_history: int
    items: Sides[tuple[str, ...]]
    users: Sides[tuple[str, ...]]
    files: Mapping[str, str]
    models: Mapping[str, str] = field(default_factory=lambda: dict(MODEL_FILES))
    arrays: Mapping[str, str] = field(default_factory=lambda: dict(ARRAY_FILES))
    strategies: Mapping[str, StrategySpec] = field(default_factory=dict)
    source_histories: HistoriesSpec | None = None
    history: HistoryModelSpec | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def array_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape every array must have, from the id lists and ``embedding_dim``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for key, (ids, side, ndim) in ARRAY_LAYOUT.items():
            rows = len(getattr(getattr(self, ids), side))
            dim: int = getattr(self.embedding_dim, side)
            shapes[key] = (rows, dim) if ndim == 2 else (rows,)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (the key order the writer stores)."""
        sections: dict[str, Any] = {}
        if self.strategies:
            sections["strategies"] = {n: s.to_dict() for n, s in self.strategies.items()}
        if self.source_histories is not None:
            h = self.source_histories
            sections["source_histories"] = {"items": h.items, "ptr": h.ptr}
        if self.history is not None:
            sections["history"] = self.history.to_dict()
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "bundle_version": self.bundle_version,
            "created_at": self.created_at,
            "strategy": self.strategy,
            "feedback": self.feedback,
            "domains": _sides(self.domains),
            "embedding_dim": _sides(self.embedding_dim),
            "encoder_max_history": self.encoder_max_history,
            "items": {s: list(getattr(self.items, s)) for s in _SIDES},
            "users": {s: list(getattr(self.users, s)) for s in _SIDES},
            "models": dict(self.models),
            "arrays": dict(self.arrays),
            **sections,
            "metrics": dict(self.metrics),
            "config": dict(self.config),
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, manifest: Mapping[str, Any], path: Path | str = MANIFEST) -> BundleSpec:
        """Parse and validate a manifest object read from ``path``.

        Raises
        ------
        BundleFormatError
            For an unknown ``format`` or ``format_version``, a missing field, a field of
            the wrong type or value, or a model/array/part file not listed in ``files``.
            The message names ``path`` and the field.
        """
        m = _Fields(manifest, Path(path))
        m.check_format()
        files = m.files()
        spec = cls(
            bundle_version=m.get("bundle_version", str),
            created_at=m.get("created_at", str),
            strategy=m.get("strategy", str),
            feedback=m.choice("feedback", FEEDBACK_KINDS),
            domains=Sides(**m.section("domains", _SIDES, str)),
            embedding_dim=Sides(**m.section("embedding_dim", _SIDES, int)),
            encoder_max_history=m.get("encoder_max_history", int),
            items=Sides(**{s: m.id_list(f"items.{s}", allow_empty=False) for s in _SIDES}),
            users=Sides(**{s: m.id_list(f"users.{s}", allow_empty=True) for s in _SIDES}),
            files=files,
            models=m.listed_section("models", MODEL_KEYS, files),
            arrays=m.listed_section("arrays", ARRAY_KEYS, files),
            strategies=m.strategies(files),
            source_histories=m.histories(files),
            history=m.history_model(files),
            metrics=m.optional_dict("metrics"),
            config=m.optional_dict("config"),
            format_version=manifest["format_version"],
        )
        return spec


def _sides(value: Sides[Any]) -> dict[str, Any]:
    return {"source": value.source, "target": value.target}


class _Fields:
    """Typed access to manifest fields, raising BundleFormatError that names the field."""

    def __init__(self, manifest: Mapping[str, Any], path: Path) -> None:
        self.manifest = manifest
        self.path = path

    def fail(self, name: str, message: str) -> BundleFormatError:
        return BundleFormatError(self.path, f"field {name!r}: {message}")

    def get(self, name: str, kind: type, container: Mapping[str, Any] | None = None) -> Any:
        source = self.manifest if container is None else container
        key = name.rsplit(".", 1)[-1]
        if key not in source:
            raise self.fail(name, "missing")
        value = source[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(name, f"expected {kind.__name__}, got {type(value).__name__}")
        if isinstance(value, int) and value <= 0:
            raise self.fail(name, f"must be positive, got {value}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value: str = self.get(name, str)
        if value not in allowed:
            raise self.fail(name, f"expected one of {list(allowed)}, got {value!r}")
        return value

    def section(self, name: str, keys: tuple[str, ...], kind: type) -> dict[str, Any]:
        section = self.get(name, dict)
        return {key: self.get(f"{name}.{key}", kind, section) for key in keys}

    def listed_section(
        self, name: str, keys: tuple[str, ...], files: Mapping[str, str]
    ) -> dict[str, str]:
        section = self.section(name, keys, str)
        for key, file in section.items():
            if file not in files:
                raise self.fail(f"{name}.{key}", f"file {file!r} is not listed in 'files'")
        return section

    def id_list(self, name: str, *, allow_empty: bool) -> tuple[str, ...]:
        section, _ = name.split(".")
        ids = self.get(name, list, self.get(section, dict))
        if not all(isinstance(i, str) and i for i in ids):
            raise self.fail(name, "ids must be non-empty strings")
        if not ids and not allow_empty:
            raise self.fail(name, "must not be empty")
        if len(set(ids)) != len(ids):
            raise self.fail(name, "contains duplicate ids")
        return tuple(ids)

    def optional_dict(self, name: str, container: Mapping[str, Any] | None = None) -> Any:
        source = self.manifest if container is None else container
        key = name.rsplit(".", 1)[-1]
        return self.get(name, dict, container) if key in source else {}

    def check_format(self) -> None:
        fmt = self.manifest.get("format")
        if fmt != FORMAT:
            raise self.fail("format", f"expected {FORMAT!r}, got {fmt!r}")
        version = self.manifest.get("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
            supported = sorted(SUPPORTED_FORMAT_VERSIONS)
            raise self.fail(
                "format_version",
                f"unsupported {version!r}; this reader supports "
                f"{supported} (was the bundle written by a newer coldbridge?)",
            )

    def files(self) -> dict[str, str]:
        files: dict[str, Any] = self.get("files", dict)
        for name, digest in files.items():
            rel = PurePosixPath(name)
            if not name or rel.is_absolute() or ".." in rel.parts or name == MANIFEST:
                raise self.fail("files", f"illegal file name {name!r}")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise self.fail(f"files.{name}", "sha256 must be a 64-digit hex string")
        return {name: digest.lower() for name, digest in files.items()}

    def listed(self, name: str, value: object, files: Mapping[str, str]) -> str:
        if not isinstance(value, str) or value not in files:
            raise self.fail(name, f"file {value!r} is not listed in 'files'")
        return value

    def strategies(self, files: Mapping[str, str]) -> dict[str, StrategySpec]:
        out: dict[str, StrategySpec] = {}
        for name, spec in self.optional_dict("strategies").items():
            at = f"strategies.{name}"
            if not isinstance(spec, dict) or not isinstance(spec.get("parts", {}), dict):
                raise self.fail(at, "expected an object with a 'parts' object")
            parts = {
                part: self.listed(f"{at}.parts.{part}", file, files)
                for part, file in spec.get("parts", {}).items()
            }
            version = self.get(f"{at}.version", str, spec) if "version" in spec else ""
            output = self.get(f"{at}.output", str, spec) if "output" in spec else "embedding"
            config = self.optional_dict(f"{at}.config", spec)
            out[name] = StrategySpec(version, output, config, parts)
        return out

    def histories(self, files: Mapping[str, str]) -> HistoriesSpec | None:
        spec = self.optional_dict("source_histories")
        if not spec:
            return None
        items, ptr = (
            self.listed(f"source_histories.{key}", spec.get(key), files) for key in ("items", "ptr")
        )
        return HistoriesSpec(items, ptr)

    def history_model(self, files: Mapping[str, str]) -> HistoryModelSpec | None:
        if "history" not in self.manifest:
            return None
        spec = self.get("history", dict)
        paths = {
            part: self.listed(f"history.{part}", spec.get(part), files)
            for part in HISTORY_MODEL_FILES
        }
        events = self.get("history.events", list, spec)
        weights = self.get("history.history_weight", list, spec)
        if not events or not all(isinstance(e, int) and not isinstance(e, bool) for e in events):
            raise self.fail("history.events", f"expected a non-empty list of ints, got {events}")
        if events[0] < 1 or any(b <= a for a, b in zip(events, events[1:], strict=False)):
            raise self.fail("history.events", f"must be ascending and >= 1, got {events}")
        if len(weights) != len(events) or not all(
            isinstance(a, int | float) and not isinstance(a, bool) and 0.0 <= a < 1.0
            for a in weights
        ):
            raise self.fail(
                "history.history_weight",
                f"expected {len(events)} numbers in [0, 1) (one per bucket), got {weights}",
            )
        config = self.optional_dict("history.config", spec)
        return HistoryModelSpec(tuple(events), tuple(float(a) for a in weights), config, **paths)
