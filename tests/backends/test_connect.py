"""corral.connect: URLs to engines, and bad URLs named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

import corral
from corral.backends.memory import MemoryEventStore
from corral.backends.sqlite import SqliteEventStore
from corral.errors import ArgumentTypeError, InvalidArgumentError


async def test_memory_url() -> None:
    store = await corral.connect("memory://")
    assert isinstance(store, MemoryEventStore)
    await store.close()


async def test_sqlite_url_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with corral.connect("sqlite:///relative.db") as store:
        assert isinstance(store, SqliteEventStore)
    assert (tmp_path / "relative.db").exists()
    async with corral.connect(f"sqlite:///{tmp_path}/absolute.db") as store:
        await store.append("s", [])
    assert store.closed
    assert (tmp_path / "absolute.db").exists()


def test_connecting_shows_its_url() -> None:
    assert repr(corral.connect("memory://")) == "<Connecting 'memory://'>"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://localhost/db", "'mysql' is not supported.*memory://, postgresql://"),
        ("redis://localhost", "'redis' is not supported"),
        ("app.db", "scheme://"),
        ("memory://somewhere", "nothing after the scheme"),
        ("sqlite://app.db", "three slashes"),
        ("sqlite://", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:///app.db?mode=ro", "no query"),
        ("sqlite:///:memory:", "use memory://"),
    ],
)
def test_a_bad_url_is_named(url: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        corral.connect(url)
    assert repr(url) in str(caught.value)


def test_a_url_must_be_a_string() -> None:
    with pytest.raises(ArgumentTypeError, match="url must be a str"):
        corral.connect(b"memory://")  # type: ignore[arg-type]
