"""What the server's interceptors share: method handlers rebuilt in the shape of another.

The server runs three interceptors, outermost first: metrics
(:mod:`coldbridge_server.observability.interceptor`), authentication
(:mod:`coldbridge_server.security.interceptor`) and admission
(:mod:`coldbridge_server.admission`). Each gets the method's ``grpc.RpcMethodHandler`` and
returns it, a wrapper of the same shape (request / response streaming), or a handler that
refuses the call. :func:`handler_like` builds the wrapper, :func:`refusal` the refusing
handler, and :class:`WrapOnce` keeps one wrapper per method handler, since grpc asks the
interceptors on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from coldbridge_server.errors import ColdbridgeError
from coldbridge_server.status import status_code, status_message

__all__ = ["Interceptor", "WrapOnce", "handler_like", "refusal", "shape_of"]

if TYPE_CHECKING:  # generic in grpc-stubs only
    Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    Interceptor = grpc.ServerInterceptor

_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def shape_of(handler: Any) -> tuple[bool, bool]:
    """``(request_streaming, response_streaming)`` of a method handler."""
    return handler.request_streaming, handler.response_streaming


def handler_like(
    handler: Any,
    behaviour: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """A handler of ``handler``'s shape and response serializer that runs ``behaviour``.

    ``request_deserializer`` replaces ``handler``'s (default: keep it).
    """
    return _FACTORIES[shape_of(handler)](
        behaviour,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def refusal(
    handler: Any,
    error: ColdbridgeError,
    before: Callable[[grpc.ServicerContext], None] | None = None,
) -> Any:
    """A handler of ``handler``'s shape that ends the call with ``error``'s status.

    It has no deserializer (a refused request is never decoded); ``before(context)`` runs
    first, when given (a log line).
    """
    code, message = status_code(error), status_message(error)

    def refuse(request: Any, context: grpc.ServicerContext) -> NoReturn:
        if before is not None:
            before(context)
        context.abort(code, message)
        raise error  # not reached: abort raises

    return _FACTORIES[shape_of(handler)](refuse)


class WrapOnce:
    """``wrap(handler, method)`` computed once per method handler, then looked up.

    Keyed by identity: the handler is a namedtuple, and hashing its fields on every call
    costs more than the lookup.
    """

    def __init__(self, wrap: Callable[[Any, str], Any]) -> None:
        self._wrap = wrap
        self._wrapped: dict[int, tuple[Any, Any]] = {}

    def __call__(self, handler: Any, method: str) -> Any:
        entry = self._wrapped.get(id(handler))
        if entry is None or entry[0] is not handler:
            entry = (handler, self._wrap(handler, method))
            self._wrapped[id(handler)] = entry
        return entry[1]
