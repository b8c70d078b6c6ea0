"""require_service and friends: skip when a service is down, fail when it is required."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from corral.errors import ArgumentTypeError, InvalidArgumentError
from corral.testing import require_service, service_url
from corral.testing._services import service_address


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_unreachable_service_skips(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRAL_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_service("redis", "127.0.0.1", closed_port)
    message = str(skipped.value)
    assert f"redis is not reachable at 127.0.0.1:{closed_port}" in message
    assert "refused" in message.lower()
    assert "CORRAL_REDIS_URL" in message


def test_unreachable_required_service_fails(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_service("postgres", "127.0.0.1", closed_port)
    assert f"postgres is not reachable at 127.0.0.1:{closed_port}" in str(failed.value)
    assert "CORRAL_REQUIRE_SERVICES=1 requires it" in str(failed.value)


def test_reachable_service_lets_the_test_run(
    listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_REQUIRE_SERVICES", "1")
    require_service("nats", "127.0.0.1", listening_port)  # returns: the test goes on


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((1, "localhost", 5432), {}, ArgumentTypeError, "name must be a str"),
        (("pg", None, 5432), {}, ArgumentTypeError, "host must be a str"),
        (("pg", "localhost", "5432"), {}, ArgumentTypeError, "port must be an int"),
        (("pg", "localhost", 0), {}, InvalidArgumentError, "between 1 and 65535, got 0"),
        (("pg", "localhost", 70000), {}, InvalidArgumentError, "got 70000"),
        (("pg", "localhost", 5432), {"timeout": 0}, InvalidArgumentError, "timeout"),
        (("pg", "localhost", 5432), {"timeout": "1"}, ArgumentTypeError, "timeout"),
        (("pg", "localhost", 5432), {"timeout": float("inf")}, InvalidArgumentError, "timeout"),
    ],
)
def test_bad_arguments_are_named(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        require_service(*args, **kwargs)


def test_service_url_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CORRAL_POSTGRES_URL", "CORRAL_REDIS_URL", "CORRAL_NATS_URL"):
        monkeypatch.delenv(variable, raising=False)
    assert service_url("redis") == "redis://127.0.0.1:6379/0"
    assert service_address("postgres") == ("127.0.0.1", 5432)
    assert service_address("nats") == ("127.0.0.1", 4222)
    monkeypatch.setenv("CORRAL_REDIS_URL", "redis://cache.internal:6380/2")
    assert service_url("redis") == "redis://cache.internal:6380/2"
    assert service_address("redis") == ("cache.internal", 6380)


def test_unknown_service_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="name must be one of nats, postgres, redis"):
        service_url("mysql")


@pytest.mark.parametrize("url", ["redis://cache.internal", "redis://:6379", "redis://h:port"])
def test_url_without_host_or_port_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_REDIS_URL", url)
    with pytest.raises(InvalidArgumentError, match="CORRAL_REDIS_URL must be a URL with a host"):
        service_address("redis")
