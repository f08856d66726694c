"""The ``coldbridge.v1.Admin`` servicer: hot reload of the bundle over gRPC.

Errors map to status codes in :func:`coldbridge_server.status.map_errors`: a refused bundle
is FAILED_PRECONDITION, a server still starting or stopping UNAVAILABLE.
"""

from __future__ import annotations

import grpc
from coldbridge.v1 import admin_pb2, admin_pb2_grpc

from coldbridge_server.reload.reloader import BundleReloader
from coldbridge_server.status import map_errors

__all__ = ["ADMIN_SERVICE_NAME", "AdminServicer"]

ADMIN_SERVICE_NAME: str = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """Implements ``coldbridge.v1.Admin`` on top of a :class:`BundleReloader`."""

    def __init__(self, reloader: BundleReloader) -> None:
        self.reloader = reloader

    def ReloadBundle(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.ReloadBundleRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ReloadBundleResponse:
        with map_errors(context):
            r = self.reloader.reload(request.path, force=request.force)
        swapped = admin_pb2.RELOAD_OUTCOME_SWAPPED
        return admin_pb2.ReloadBundleResponse(
            outcome=swapped if r.swapped else admin_pb2.RELOAD_OUTCOME_UNCHANGED,
            old_version=r.old_version,
            new_version=r.new_version,
            bundle_path=r.path,
            states_rebuilt=r.states_rebuilt,
            replayed_events=r.replayed_events,
            skipped_events=r.skipped_events,
            users=r.users,
            seconds=r.seconds,
        )

    def GetBundleStatus(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.GetBundleStatusRequest, context: grpc.ServicerContext
    ) -> admin_pb2.BundleStatus:
        s = self.reloader.status()
        return admin_pb2.BundleStatus(
            version=s.version,
            bundle_path=s.path,
            reloads=s.reloads,
            last_error=s.last_error,
            watch_seconds=s.watch_seconds,
        )
