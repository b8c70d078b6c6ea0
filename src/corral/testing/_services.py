"""Tests that need an external service: skip when it is down, or fail when CI demands it."""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta
from typing import NoReturn
from urllib.parse import urlsplit

from .._core._time import seconds_arg
from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = (
    "SERVICES",
    "require_service",
    "service_address",
    "service_url",
    "services_required",
    "skip_or_fail",
    "unreachable",
)

#: The services corral's tests know, each with the environment variable that points at
#: it and the address used when that variable is unset.
SERVICES: dict[str, tuple[str, str]] = {
    "postgres": ("CORRAL_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    "redis": ("CORRAL_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": ("CORRAL_NATS_URL", "nats://127.0.0.1:4222"),
}

_REQUIRE_ENV = "CORRAL_REQUIRE_SERVICES"


def services_required() -> bool:
    """Whether ``CORRAL_REQUIRE_SERVICES=1`` is set: an unreachable service is a failure."""
    return os.environ.get(_REQUIRE_ENV, "").strip() == "1"


def service_url(name: str) -> str:
    """The URL of the service ``name`` (``"postgres"``, ``"redis"`` or ``"nats"``).

    Read from ``CORRAL_POSTGRES_URL`` / ``CORRAL_REDIS_URL`` / ``CORRAL_NATS_URL``, or the
    local default (``postgresql://postgres@127.0.0.1:5432/postgres``,
    ``redis://127.0.0.1:6379/0``, ``nats://127.0.0.1:4222``).

    Raises:
        InvalidArgumentError: ``name`` is not a known service.
    """
    try:
        variable, default = SERVICES[name]
    except KeyError:
        known = ", ".join(sorted(SERVICES))
        raise InvalidArgumentError(f"name must be one of {known}, got {name!r}") from None
    return os.environ.get(variable) or default


def service_address(name: str) -> tuple[str, int]:
    """The ``(host, port)`` that :func:`service_url` for ``name`` points at.

    Raises:
        InvalidArgumentError: ``name`` is unknown, or its URL names no host or port.
    """
    url = service_url(name)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        variable = SERVICES[name][0]
        raise InvalidArgumentError(f"{variable} must be a URL with a host and a port, got {url!r}")
    return parts.hostname, port


def require_service(name: str, host: str, port: int, *, timeout: float | timedelta = 2.0) -> None:
    """Skip the running test unless ``host:port`` accepts a TCP connection.

    Call it from a test or fixture (the pytest plugin does it for tests marked
    ``postgres``, ``redis`` or ``nats``). When ``CORRAL_REQUIRE_SERVICES=1`` is set, as in
    CI, an unreachable service fails the test instead of skipping it, so a service that
    should be there never hides behind a skip. Blocks for at most ``timeout`` real
    seconds; call it before the event loop starts.

    Args:
        name: What the service is, for the message (``"postgres"``).
        host: Host name or address to connect to.
        port: TCP port, 1-65535.
        timeout: Real seconds (or a ``timedelta``) to wait for the connection.

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``port`` is out of range, or ``timeout`` is not a positive,
            finite duration.
        pytest.skip.Exception: the service is unreachable (the test is skipped).
        pytest.fail.Exception: the service is unreachable and services are required.
    """
    for argument, value in (("name", name), ("host", host)):
        if not isinstance(value, str):
            raise ArgumentTypeError(
                f"{argument} must be a str, not {type(value).__name__} ({value!r})"
            )
    if not isinstance(port, int) or isinstance(port, bool):
        raise ArgumentTypeError(f"port must be an int, not {type(port).__name__} ({port!r})")
    if not 0 < port < 65536:
        raise InvalidArgumentError(f"port must be between 1 and 65535, got {port!r}")
    seconds = seconds_arg(timeout, "timeout")
    if not 0 < seconds < math.inf:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
    problem = unreachable(host, port, seconds)
    if problem is not None:
        skip_or_fail(name, host, port, problem)


def unreachable(host: str, port: int, timeout: float) -> str | None:
    """``None`` if ``host:port`` accepts a TCP connection, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__


def skip_or_fail(name: str, host: str, port: int, problem: str) -> NoReturn:
    """Skip the running test because ``name`` is unreachable, or fail it if required."""
    import pytest

    reason = f"{name} is not reachable at {host}:{port} ({problem})"
    if services_required():
        pytest.fail(f"{reason}, and {_REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(f"{reason}; start it, or point {_env_hint(name)} at it")


def _env_hint(name: str) -> str:
    entry = SERVICES.get(name)
    return entry[0] if entry is not None else "the test's configuration"
