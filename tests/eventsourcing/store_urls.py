"""The engines every domain-layer test runs on: memory and a SQLite file."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path}/events.db"
