"""Argument checks for the functions that optimization components call back."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any

from ..errors import ArgumentTypeError, CorralError

__all__ = ("awaitable_result", "function_arg")


def function_arg(value: object, name: str) -> None:
    """Check that ``value`` is a function to call later, or raise an error naming ``name``.

    Raises:
        ArgumentTypeError: ``value`` is a coroutine object (the result of calling an async
            function instead of the function itself), or is not callable.
    """
    if isinstance(value, Coroutine):
        value.close()
        raise ArgumentTypeError(
            f"{name} must be a function, not a coroutine object ({value!r}): pass the "
            "async function itself, not the result of calling it"
        )
    if not callable(value):
        raise ArgumentTypeError(
            f"{name} must be a function, not {type(value).__name__} ({value!r})"
        )


def awaitable_result(value: object, name: str, error: type[CorralError]) -> Awaitable[Any]:
    """Return ``value``, what the function ``name`` returned, if it can be awaited.

    Raises:
        CorralError: of the class ``error``, saying that ``name`` must be an async
            function, when ``value`` cannot be awaited.
    """
    if not inspect.isawaitable(value):
        raise error(
            f"{name} must be an async function, but it returned {type(value).__name__} ({value!r})"
        )
    return value
