"""corral.request_scope: per-request state for loaders and caches, carried by a contextvar."""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self, TypeVar

from ..errors import UsageError

__all__ = ("CURRENT_REQUEST_SCOPE", "RequestScope", "RequestScopeStatistics", "request_scope")

S = TypeVar("S")

#: The innermost :class:`RequestScope` entered in this context (``None`` outside any).
CURRENT_REQUEST_SCOPE: Final[contextvars.ContextVar[RequestScope | None]] = contextvars.ContextVar(
    "corral_request_scope", default=None
)


@dataclasses.dataclass(frozen=True, slots=True)
class RequestScopeStatistics:
    """A snapshot of a :class:`RequestScope`.

    Attributes:
        active: whether the scope is entered now.
        owners: how many loaders (or other owners) keep state in the scope now.
    """

    active: bool
    owners: int


class RequestScope:
    """Private state for one request: each :class:`corral.DataLoader` used inside gets its own.

    Enter one per request, typically in the middleware that handles it::

        with corral.request_scope():
            await handle(request)

    Inside, every loader keeps a cache and a batch queue that belong to this scope alone,
    so values loaded for one request are never served to another, and keys of two
    requests are never mixed in one batch call. Tasks started inside the block inherit
    the scope (it lives in a ``contextvars.ContextVar``, copied into every new task).
    Scopes nest: an inner scope starts empty and hides the outer one until it exits.
    On exit the scope drops every cache it holds; a task still running with the scope in
    its context may go on using it, and starts from an empty cache.

    Cancellation: entering and exiting never wait, so there is nothing to cancel.

    Thread-safety: not thread-safe; enter and exit a scope in one task (or one thread's
    context). A scope is not reusable: enter a new one for each request.

    Raises:
        UsageError: from ``__enter__`` when the scope was entered before; from
            ``__exit__`` when it is exited in another context than the one that entered it.
    """

    __slots__ = ("_entered", "_states", "_token")

    def __init__(self) -> None:
        self._states: dict[object, object] = {}
        self._token: contextvars.Token[RequestScope | None] | None = None
        self._entered = False

    def state_for(self, owner: object, factory: Callable[[], S]) -> S:
        """The state that ``owner`` keeps in this scope, made with ``factory()`` on first use."""
        state = self._states.get(owner)
        if state is None:
            state = self._states[owner] = factory()
        return state  # type: ignore[return-value]  # only ``owner`` stores under ``owner``

    def __enter__(self) -> Self:
        if self._entered:
            raise UsageError(f"{self!r} was entered before; use a new scope for each request")
        self._entered = True
        self._token = CURRENT_REQUEST_SCOPE.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            raise UsageError(f"{self!r} exited without being entered")
        try:
            CURRENT_REQUEST_SCOPE.reset(token)
        except ValueError:
            raise UsageError(
                f"{self!r} must be exited in the task (context) that entered it"
            ) from None
        self._token = None
        self._states.clear()

    def statistics(self) -> RequestScopeStatistics:
        """A snapshot: whether the scope is entered, and how many owners keep state in it."""
        return RequestScopeStatistics(active=self._token is not None, owners=len(self._states))

    def __repr__(self) -> str:
        status = "active" if self._token is not None else "inactive"
        return f"<RequestScope {status}, {len(self._states)} owners>"


def request_scope() -> RequestScope:
    """A new :class:`RequestScope`, to enter with ``with`` around one request's work."""
    return RequestScope()
