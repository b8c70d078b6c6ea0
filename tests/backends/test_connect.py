"""corral.connect: URLs to engines, and bad URLs named in the error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import corral
from corral.backends.memory import MemoryEventStore, MemoryReadModel
from corral.backends.sqlite import SqliteEventStore, SqliteReadModel
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
@pytest.mark.parametrize("open_url", [corral.connect, corral.connect_read_model])
def test_a_bad_url_is_named(url: str, match: str, open_url: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        open_url(url)
    assert repr(url) in str(caught.value)


def test_a_url_must_be_a_string() -> None:
    with pytest.raises(ArgumentTypeError, match="url must be a str"):
        corral.connect(b"memory://")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="url must be a str"):
        corral.connect_read_model(None)  # type: ignore[arg-type]


async def test_read_model_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_model = await corral.connect_read_model("memory://")
    assert isinstance(read_model, MemoryReadModel)
    await read_model.close()
    monkeypatch.chdir(tmp_path)
    async with corral.connect_read_model("sqlite:///views.db") as opened:
        assert isinstance(opened, SqliteReadModel)
        assert opened.path == "views.db"
    assert opened.closed
    assert (tmp_path / "views.db").exists()
    # A PostgreSQL URL is only checked until awaited: no driver is imported yet.
    assert repr(corral.connect_read_model("postgres://h/db")) == "<Connecting 'postgres://h/db'>"
