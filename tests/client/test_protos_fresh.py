"""The committed generated protobuf code must equal a fresh run of protos/run_codegen.py."""

from __future__ import annotations

from pathlib import Path

import grpc_tools  # noqa: F401  (dev dependency: a missing one must fail, not skip)
import run_codegen


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generated = run_codegen.run_codegen(tmp_path)
    assert generated, "run_codegen produced nothing"
    stale = []
    for fresh in generated:
        relative = fresh.relative_to(tmp_path)
        committed = run_codegen.PROTO_ROOT / relative
        if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
            stale.append(str(relative))
    assert not stale, f"stale generated code {stale}: run `python protos/run_codegen.py`"


def test_generated_package_imports() -> None:
    from coldbridge.v1 import recommender_pb2, recommender_pb2_grpc

    assert recommender_pb2.DESCRIPTOR.package == "coldbridge.v1"
    assert hasattr(recommender_pb2_grpc, "RecommenderStub")
    from coldbridge.v1 import events_pb2, events_pb2_grpc

    assert events_pb2.DESCRIPTOR.package == "coldbridge.v1"
    assert hasattr(events_pb2_grpc, "EventsStub")
    from coldbridge.v1 import admin_pb2_grpc

    assert hasattr(admin_pb2_grpc, "AdminStub")
    assert run_codegen.PROTO_FILES == (
        "coldbridge/v1/admin.proto",
        "coldbridge/v1/events.proto",
        "coldbridge/v1/recommender.proto",
    )
