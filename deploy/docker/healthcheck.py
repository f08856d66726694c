"""Container health check: exit 0 when the server's gRPC health service answers SERVING.

The server image's ``HEALTHCHECK`` runs it (docs/deploy.md). It asks
``grpc.health.v1.Health/Check`` on ``127.0.0.1:$COLDBRIDGE_PORT`` (default 50051) for the
overall service ``""`` (readiness: SERVING once the bundle is warm and the event log
replayed, NOT_SERVING again while a SIGTERM drains). ``--service coldbridge.liveness`` asks
the liveness service instead (SERVING as long as the process answers). Any other answer,
an unreachable port or a timeout exits 1 with one line on stderr.

Usage::

    python healthcheck.py [--service NAME] [--target HOST:PORT] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    port = os.environ.get("COLDBRIDGE_PORT", "50051")
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--service", default="", help="health service ('' = overall readiness)")
    parser.add_argument("--target", default=f"127.0.0.1:{port}", help="HOST:PORT of the server")
    parser.add_argument("--timeout", type=float, default=3.0, help="deadline of the check")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the server once; return the exit status (0 SERVING, 1 anything else)."""
    args = _parse(argv)
    request = health_pb2.HealthCheckRequest(service=args.service)
    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"unhealthy: {args.target} {args.service!r}: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {args.target} {args.service!r}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
