"""Hot reload of the bundle: load, verify, warm up, rebuild the online state, swap.

:class:`BundleReloader` does the work (``Admin/ReloadBundle``, the optional watch of
``bundle_path``); :class:`Generation` is what one request reads (docs/operations.md,
"Hot reload").
"""

from __future__ import annotations

from coldbridge_server.reload.generation import Generation, same_space
from coldbridge_server.reload.reloader import BundleReloader, ReloadResult, ReloadStatus
from coldbridge_server.reload.servicer import ADMIN_SERVICE_NAME, AdminServicer

__all__ = [
    "ADMIN_SERVICE_NAME",
    "AdminServicer",
    "BundleReloader",
    "Generation",
    "ReloadResult",
    "ReloadStatus",
    "same_space",
]
