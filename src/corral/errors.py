"""Every error that corral raises, in one tree.

Catch ``CorralError`` to catch anything corral raised on purpose. Where an error also
has a well-known builtin meaning it subclasses that builtin too, so code that already
catches ``ValueError``, ``TypeError``, ``RuntimeError`` or ``TimeoutError`` keeps
working::

    CorralError
    ├── InvalidArgumentError (ValueError)   an argument has a bad value (NaN, negative, ...)
    ├── ArgumentTypeError (TypeError)       an argument has the wrong type
    ├── UsageError (RuntimeError)           an object used in a state that forbids it
    │                                       (a task group after exit, a scope entered twice)
    ├── DeadlineExceeded (TimeoutError)     a ``fail_after`` / ``fail_at`` deadline passed
    ├── WouldBlock                          a ``*_nowait`` operation would have to wait
    ├── BulkheadFull                        a bulkhead's slots and queue are all taken
    ├── CircuitOpenError                    a circuit breaker is open: the call was not made
    ├── BatchError                          a DataLoader's batch function broke its
    │                                       contract (wrong number of results, a missing key)
    ├── EndOfChannel                        the channel is closed and drained: no more items
    ├── ClosedResourceError                 you closed it, then used it
    ├── BrokenResourceError                 something external broke it (see ``__cause__``)
    ├── InputCancelledError                 an input of a combinator was cancelled by
    │                                       somebody else (the ``CancelledError`` is the cause)
    ├── StorageError                        a storage backend refused or failed an operation
    │   ├── ConcurrencyError                an expected-version check failed (stream, expected,
    │   │                                   actual)
    │   ├── DuplicateError                  an event id is already stored with other content
    │   ├── SerializationError              stored data cannot be decoded (stream, position)
    │   └── BackendUnavailable              the database or server cannot be reached or used
    │                                       (the driver's exception is the ``__cause__``)
    ├── ProcessManagerError                 a process manager could not handle a stored event
    │                                       (manager, stream, position); nothing of it committed
    ├── ProjectionError                     a projection failed to apply an event (projection,
    │                                       stream, position; the failure is the ``__cause__``)
    └── AggregateError                      every input of ``corral.any`` failed; a real
                                            ``ExceptionGroup`` when it carries errors, so
                                            ``except*`` works on it

Cancellation is never a ``CorralError``: corral cancels with asyncio's own
``asyncio.CancelledError``, carrying a :class:`corral.CancelReason` as its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

__all__ = (
    "AggregateError",
    "ArgumentTypeError",
    "BackendUnavailable",
    "BatchError",
    "BrokenResourceError",
    "BulkheadFull",
    "CircuitOpenError",
    "ClosedResourceError",
    "ConcurrencyError",
    "CorralError",
    "DeadlineExceeded",
    "DuplicateError",
    "EndOfChannel",
    "InputCancelledError",
    "InvalidArgumentError",
    "ProcessManagerError",
    "ProjectionError",
    "SerializationError",
    "StorageError",
    "UsageError",
    "WouldBlock",
)


class CorralError(Exception):
    """Base class of every error corral raises on purpose."""


class InvalidArgumentError(CorralError, ValueError):
    """An argument has a value the callee cannot accept; the message names both."""


class ArgumentTypeError(CorralError, TypeError):
    """An argument has the wrong type; the message says what to pass instead."""


class UsageError(CorralError, RuntimeError):
    """An object was used in a state that forbids the operation.

    Examples: starting a task in a task group that has already exited, entering a cancel
    scope twice, or exiting it from a different task than the one that entered it.
    """


class DeadlineExceeded(CorralError, TimeoutError):
    """A deadline set with ``fail_after`` / ``fail_at`` passed before the block finished.

    Also a builtin ``TimeoutError``, so ``except TimeoutError`` catches it.
    """


class WouldBlock(CorralError):
    """A non-blocking ``*_nowait`` operation could not complete without waiting."""


class BulkheadFull(CorralError):
    """A bulkhead had no free slot and no room in its queue, so it rejected the call at once."""


class CircuitOpenError(CorralError):
    """A circuit breaker rejected the call without making it.

    ``retry_after`` is how many seconds from the rejection the breaker will let a probe
    call through (``0.0`` when it is half-open with every probe slot taken);
    ``breaker_name`` names the breaker.
    """

    def __init__(self, message: str, *, breaker_name: str, retry_after: float) -> None:
        super().__init__(message)
        self.breaker_name = breaker_name
        self.retry_after = retry_after


class BatchError(CorralError):
    """A :class:`corral.DataLoader` batch function returned results that do not fit its keys.

    It returned a sequence of the wrong length, a mapping without a result for some key,
    or something that is neither. Every load waiting on that batch call raises it; the
    loader stays usable.
    """


class EndOfChannel(CorralError):
    """A receive found the channel closed by every sender and its buffer drained.

    Not a failure: it is how a receiver learns that no item will ever come. ``async for``
    over a channel stops on it.
    """


class ClosedResourceError(CorralError):
    """The resource was closed by its owner, and then used again."""


class BrokenResourceError(CorralError):
    """The resource is unusable because something outside it failed.

    The original failure is attached as ``__cause__``.
    """


class InputCancelledError(CorralError):
    """An awaitable given to a combinator ended cancelled, and not by the combinator.

    ``corral.any`` reports such an input this way inside its :class:`AggregateError`
    (which, being an ``Exception``, cannot carry a bare ``CancelledError``); the original
    ``CancelledError`` is the ``__cause__``. ``index`` is the input's position.
    """

    def __init__(self, index: int) -> None:
        super().__init__(f"input {index} was cancelled by somebody else")
        self.index = index


class StorageError(CorralError):
    """A storage backend (event store, stream, workflow store) refused or failed an operation.

    Driver exceptions never leave a backend as they are: each is translated into one of
    the subclasses below, with the driver's exception as ``__cause__``.
    """


class ConcurrencyError(StorageError):
    """An append's expected version did not match the stream, so nothing was written.

    Attributes:
        stream: the stream whose check failed.
        expected: the expected version given (an ``int`` or a ``StreamState`` such as
            ``NO_STREAM``).
        actual: the stream's version when the check ran (0 for a stream without events).
    """

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        super().__init__(
            f"stream {stream!r}: expected version {_version_text(expected)}, "
            f"actual version {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream, self.expected, self.actual))


def _version_text(expected: object) -> str:
    name = getattr(expected, "name", None)
    return name if isinstance(name, str) else repr(expected)


class DuplicateError(StorageError):
    """An event id is already stored, but not as part of the same append.

    A retried append (same event ids, same content, same stream) is not an error: it
    returns the original result. This error means the ids collide with *different*
    events: other content, another stream, or only some of the append's ids.

    Attributes:
        stream: the stream the append was for.
        event_id: the first colliding event id.
        reason: how it collides.
    """

    def __init__(self, stream: str, event_id: object, reason: str) -> None:
        super().__init__(f"stream {stream!r}: event id {event_id} {reason}")
        self.stream = stream
        self.event_id = event_id
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream, self.event_id, self.reason))


class SerializationError(StorageError):
    """Stored data cannot be decoded (or data cannot be encoded) as asked.

    The store stays readable: other events are unaffected.

    Attributes:
        stream: the stream of the event.
        position: the event's global position (``None`` for an event not yet stored).
        reason: what is wrong with the data.
    """

    def __init__(self, stream: str, position: int | None, reason: str) -> None:
        where = (
            f"stream {stream!r}" if position is None else f"stream {stream!r} position {position}"
        )
        super().__init__(f"{where}: {reason}")
        self.stream = stream
        self.position = position
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stream, self.position, self.reason))


class BackendUnavailable(StorageError):
    """The database or server behind a backend cannot be reached or used right now.

    Raised instead of the driver's own exception, which is the ``__cause__``.
    """


class ProcessManagerError(CorralError):
    """A process manager could not handle a stored event, so its runner stopped there.

    Either its ``handle`` raised (the exception is the ``__cause__``) or the events it
    staged kept conflicting with concurrent writers (the last
    :class:`ConcurrencyError` is the ``__cause__``). Nothing of that event's effect was
    committed and the checkpoint stays before it: a restarted runner handles it again.

    Attributes:
        manager: the process manager's name.
        stream: the stream of the event it could not handle.
        position: that event's global position.
        reason: what went wrong.
    """

    def __init__(self, manager: str, stream: str, position: int, reason: str) -> None:
        super().__init__(
            f"process manager {manager!r} stopped at stream {stream!r} position {position}: "
            f"{reason}"
        )
        self.manager = manager
        self.stream = stream
        self.position = position
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.manager, self.stream, self.position, self.reason))


class ProjectionError(CorralError):
    """A projection's ``apply`` (or ``apply_batch``) raised: its batch was rolled back.

    Nothing of the batch took effect and the projection's checkpoint did not move, so
    once the cause is fixed the projector applies the same events again. The
    projection's own exception is the ``__cause__``.

    Attributes:
        projection: the projection's name.
        stream: the stream of the event it failed on (of the batch's first event, when
            an ``apply_batch`` of several events failed).
        position: that event's global position.
        event_type: that event's type.
        events: how many events the failed call was given: 1 for ``apply``, the
            batch's size for ``apply_batch``.
    """

    def __init__(
        self, projection: str, stream: str, position: int, event_type: str, events: int = 1
    ) -> None:
        what = (
            f"the event at position {position}"
            if events == 1
            else f"a batch of {events} events from position {position}"
        )
        first = " first" if events != 1 else ""
        super().__init__(
            f"projection {projection!r} failed to apply {what} "
            f"(stream {stream!r}, type {event_type!r}{first}); its batch was rolled back"
        )
        self.projection = projection
        self.stream = stream
        self.position = position
        self.event_type = event_type
        self.events = events

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self.projection, self.stream, self.position, self.event_type, self.events)
        return (type(self), arguments)


class AggregateError(CorralError):
    """Several errors reported together, in input order (``corral.any`` raises it).

    ``AggregateError(message, errors)`` with at least one error builds an instance that is
    also an :class:`ExceptionGroup`, so ``except* SomeError`` picks out the matching errors.
    With no errors (``corral.any([])``) it is a plain exception whose ``exceptions`` is
    empty, since an ``ExceptionGroup`` cannot be empty. Either way ``except AggregateError``
    catches it and ``.exceptions`` holds the errors.
    """

    def __new__(cls, message: str = "", errors: Sequence[BaseException] = (), /) -> Self:
        for index, error in enumerate(errors):
            if not isinstance(error, Exception):
                raise ArgumentTypeError(
                    f"AggregateError carries Exceptions only; error {index} is "
                    f"{type(error).__name__} (wrap cancellations, e.g. in InputCancelledError)"
                )
        if cls is AggregateError and errors:
            return _AggregateErrorGroup(message, errors)  # type: ignore[return-value]
        return super().__new__(cls, message, errors)

    def __init__(self, message: str = "", errors: Sequence[BaseException] = (), /) -> None:
        super().__init__(message, tuple(errors))
        self._message = message
        self._errors = tuple(errors)

    @property
    def message(self) -> str:
        """The message given when the error was raised."""
        return self._message

    @property
    def exceptions(self) -> tuple[BaseException, ...]:
        """The errors carried, in input order (empty for ``corral.any([])``)."""
        return self._errors

    def __str__(self) -> str:
        count = len(self._errors)
        noun = "error" if count == 1 else "errors"
        return f"{self._message} ({count} {noun})" if self._message else f"{count} {noun}"


class _AggregateErrorGroup(AggregateError, ExceptionGroup):  # type: ignore[misc]
    """The non-empty form of :class:`AggregateError`: a real ``ExceptionGroup``."""

    def __new__(cls, message: str = "", errors: Sequence[BaseException] = (), /) -> Self:
        return ExceptionGroup.__new__(cls, message, list(errors))  # type: ignore[type-var]

    def __init__(self, message: str = "", errors: Sequence[BaseException] = (), /) -> None:
        ExceptionGroup.__init__(self, message, list(errors))  # type: ignore[type-var]
        self._message = message
        self._errors = tuple(errors)

    def derive(self, excs: Sequence[Any]) -> AggregateError:  # type: ignore[override]
        return AggregateError(self._message, excs)

    def __str__(self) -> str:
        return AggregateError.__str__(self)
