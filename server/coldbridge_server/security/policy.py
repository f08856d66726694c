"""Which role may call which RPC: one table, keyed by the full gRPC method name.

=========================================================  ===================================
method                                                     needs
=========================================================  ===================================
``/grpc.health.v1.Health/Check``, ``/Watch``               nothing (probes stay open)
``/coldbridge.v1.Recommender/Recommend``, ``Score``,       ``reader``
``GetModelInfo``
``/coldbridge.v1.Events/IngestEvents``, ``StreamEvents``   ``writer``
``/coldbridge.v1.Events/GetUserState``, ``DeleteUser``     ``admin``
``/coldbridge.v1.Admin/*``                                 ``admin``
server reflection (when on)                                a valid token of any role
anything else                                              ``admin``
=========================================================  ===================================

``admin`` may call everything. A method missing from the table is denied to everyone but
``admin``, so a new RPC is never open by accident (a test checks that every method of the
``coldbridge.v1`` protos has a row or falls under ``/coldbridge.v1.Admin/``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

__all__ = [
    "ADMIN",
    "ANY_ROLE",
    "METHOD_ROLES",
    "OPEN",
    "READER",
    "ROLES",
    "WRITER",
    "allowed",
    "required_role",
]

READER: Final = "reader"
WRITER: Final = "writer"
ADMIN: Final = "admin"
ROLES: Final = frozenset({READER, WRITER, ADMIN})
"""Every role a token may hold (a token may hold several)."""
OPEN: Final = ""
"""Pseudo-role of the methods anyone may call, without a token."""
ANY_ROLE: Final = "*"
"""Pseudo-role of the methods any valid token may call."""

_REFLECTION = "ServerReflection/ServerReflectionInfo"
METHOD_ROLES: Mapping[str, str] = {
    "/grpc.health.v1.Health/Check": OPEN,
    "/grpc.health.v1.Health/Watch": OPEN,
    f"/grpc.reflection.v1alpha.{_REFLECTION}": ANY_ROLE,
    f"/grpc.reflection.v1.{_REFLECTION}": ANY_ROLE,
    "/coldbridge.v1.Recommender/Recommend": READER,
    "/coldbridge.v1.Recommender/Score": READER,
    "/coldbridge.v1.Recommender/GetModelInfo": READER,
    "/coldbridge.v1.Events/IngestEvents": WRITER,
    "/coldbridge.v1.Events/StreamEvents": WRITER,
    "/coldbridge.v1.Events/GetUserState": ADMIN,
    "/coldbridge.v1.Events/DeleteUser": ADMIN,
}
"""Full method name -> the role it needs (:data:`OPEN`, :data:`ANY_ROLE` or a role)."""


def required_role(method: str) -> str:
    """The role ``method`` needs; unknown methods (and ``/coldbridge.v1.Admin/*``) need admin.

    Examples
    --------
    >>> required_role("/coldbridge.v1.Recommender/Recommend")
    'reader'
    >>> required_role("/coldbridge.v1.Admin/ReloadBundle"), required_role("/x.Y/Z")
    ('admin', 'admin')
    """
    return METHOD_ROLES.get(method, ADMIN)


def allowed(roles: Collection[str], method: str) -> bool:
    """Whether a token holding ``roles`` may call ``method``.

    Examples
    --------
    >>> allowed({"reader"}, "/coldbridge.v1.Events/IngestEvents")
    False
    >>> allowed({"admin"}, "/coldbridge.v1.Events/IngestEvents")
    True
    """
    needed = required_role(method)
    return needed in (OPEN, ANY_ROLE) or ADMIN in roles or needed in roles
