"""Regenerate the committed protobuf/gRPC code for ``coldbridge.v1``.

Usage (from anywhere)::

    python protos/run_codegen.py            # writes next to the .proto files
    python protos/run_codegen.py OUT_DIR    # writes OUT_DIR/coldbridge/v1/*_pb2*.py(i)

Besides protoc's ``_pb2.py`` and grpc's ``_pb2_grpc.py`` it writes the typed stubs
``_pb2.pyi`` and ``_pb2_grpc.pyi`` with mypy-protobuf's ``protoc-gen-mypy`` and
``protoc-gen-mypy_grpc`` plugins (a dev dependency, found next to the running interpreter or on
``PATH``). Their stubs pass ``mypy --strict`` (protoc's own ``--pyi_out`` stubs do not: bare
``Mapping``) and name enum values ``Provenance.ValueType``.

The output of the second form is what ``tests/client/test_protos_fresh.py`` diffs against the
committed files, so the generated code can never silently go stale.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
#: Every ``.proto`` under ``protos/`` (relative POSIX paths, sorted), so a new file is
#: compiled, committed and freshness-tested without editing this script.
PROTO_FILES = tuple(
    sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
MYPY_PLUGINS = ("mypy", "mypy_grpc")  # protoc-gen-<name>, run with --<name>_out


def plugin_path(name: str) -> str:
    """Return the path of mypy-protobuf's ``protoc-gen-<name>`` executable.

    Raises
    ------
    RuntimeError
        If mypy-protobuf is not installed (neither next to ``sys.executable`` nor on PATH).
    """
    executable = f"protoc-gen-{name}"
    beside = Path(sys.executable).parent / executable
    found = str(beside) if beside.is_file() else shutil.which(executable)
    if found is None:
        raise RuntimeError(f"{executable} not found: pip install mypy-protobuf")
    return found


def generated_files(proto: str) -> list[str]:
    """Return the paths (relative to the output dir) that protoc writes for ``proto``."""
    stem = proto.removesuffix(".proto")
    return [stem + suffix for suffix in GENERATED_SUFFIXES]


def run_codegen(out_dir: Path | str | None = None) -> list[Path]:
    """Run ``grpc_tools.protoc`` on every proto of the project.

    Parameters
    ----------
    out_dir
        Where to write the generated package tree; defaults to ``protos/`` itself.

    Returns
    -------
    list of Path
        The generated files.

    Raises
    ------
    RuntimeError
        If protoc fails or mypy-protobuf is missing.
    """
    from grpc_tools import protoc  # dev dependency, imported only when generating

    out = Path(out_dir) if out_dir is not None else PROTO_ROOT
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *(f"--plugin=protoc-gen-{name}={plugin_path(name)}" for name in MYPY_PLUGINS),
        *(f"--{name}_out={out}" for name in MYPY_PLUGINS),
        *(str(PROTO_ROOT / proto) for proto in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return [out / name for proto in PROTO_FILES for name in generated_files(proto)]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python protos/run_codegen.py [OUT_DIR]``."""
    argv = sys.argv[1:] if argv is None else argv
    for path in run_codegen(argv[0] if argv else None):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
