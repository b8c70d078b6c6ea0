"""The boundary: redis-py's errors become corral's, with the driver's error as the cause."""

from __future__ import annotations

from types import TracebackType

from redis.exceptions import RedisError, ResponseError

from ...errors import BackendUnavailable, BrokenResourceError, CorralError

__all__ = ("map_exceptions",)


class map_exceptions:  # a context manager, named like contextlib.suppress
    """``with map_exceptions(what):`` re-raises redis-py's errors as corral errors.

    A reply that refuses the command (``ResponseError``: a key of the wrong type, state
    a store cannot read) becomes :class:`~corral.errors.BrokenResourceError`; any other
    Redis or socket error (refused connection, timeout, lost connection) becomes
    :class:`~corral.errors.BackendUnavailable`. Other exceptions, cancellation among
    them, pass through. One instance can be entered again and again, and by several
    tasks at once: it keeps the description of what it guards and counts what passed
    through it (:attr:`operations`, :attr:`unavailable`, :attr:`refused`).

    Args:
        what: what the guarded code works on, for the message (``"rate limit key 'k'"``).
    """

    __slots__ = ("_what", "operations", "refused", "unavailable")

    def __init__(self, what: str) -> None:
        self._what = what
        self.operations = 0  # guarded operations started
        self.unavailable = 0  # of those, failed because Redis could not be reached
        self.refused = 0  # of those, refused by Redis or the store's script

    def __enter__(self) -> None:
        self.operations += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, (RedisError, OSError)):
            raise self.translate(error) from error

    def translate(self, error: RedisError | OSError) -> CorralError:
        """The corral error that stands for ``error``."""
        if isinstance(error, ResponseError):
            self.refused += 1
            return BrokenResourceError(f"Redis refused an operation on {self._what}: {error}")
        self.unavailable += 1
        return BackendUnavailable(f"Redis is unavailable for {self._what}: {error}")
