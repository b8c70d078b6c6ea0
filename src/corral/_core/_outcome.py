"""Outcome records: the settled result of one piece of async work."""

from __future__ import annotations

from typing import Any, Generic, Literal, NoReturn, TypeVar, final

__all__ = ("Fulfilled", "Outcome", "Rejected")

T_co = TypeVar("T_co", covariant=True)


class Outcome(Generic[T_co]):
    """How an awaitable settled: :class:`Fulfilled` with a value or :class:`Rejected` with
    an error. Returned by ``corral.all_settled``; match on it or call :meth:`unwrap`::

        match outcome:
            case Fulfilled(value):
                ...
            case Rejected(error):
                ...
    """

    __slots__ = ()

    @property
    def status(self) -> Literal["fulfilled", "rejected"]:
        """``"fulfilled"`` or ``"rejected"``, as in JavaScript's ``allSettled``."""
        raise NotImplementedError

    def unwrap(self) -> T_co:
        """Return the value, or raise the error."""
        raise NotImplementedError


@final
class Fulfilled(Outcome[T_co]):
    """The work finished with ``value``."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: T_co) -> None:
        self.value = value

    @property
    def status(self) -> Literal["fulfilled"]:
        return "fulfilled"

    def unwrap(self) -> T_co:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fulfilled) and bool(other.value == self.value)

    def __hash__(self) -> int:
        return hash(("fulfilled", self.value))

    def __repr__(self) -> str:
        return f"Fulfilled({self.value!r})"


@final
class Rejected(Outcome[Any]):
    """The work failed (or was cancelled) with ``error``."""

    __slots__ = ("error",)
    __match_args__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @property
    def status(self) -> Literal["rejected"]:
        return "rejected"

    def unwrap(self) -> NoReturn:
        raise self.error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rejected) and other.error is self.error

    def __hash__(self) -> int:
        return hash(("rejected", id(self.error)))

    def __repr__(self) -> str:
        return f"Rejected({self.error!r})"
