"""Event ids: version-7 UUIDs that start with the time, the default of NewEvent.id."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.eventsourcing import NewEvent, new_event_id

# Nanoseconds since the epoch, from 1970 to well past 2100.
NANOSECONDS = st.integers(min_value=0, max_value=2**62)


def _at(monkeypatch: pytest.MonkeyPatch, nanoseconds: int) -> uuid.UUID:
    monkeypatch.setattr(time, "time_ns", lambda: nanoseconds)
    return new_event_id()


def test_an_id_is_a_version_7_uuid_that_starts_with_the_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_event_id()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_the_fraction_of_the_millisecond_follows_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = _at(monkeypatch, 1_700_000_000_123_500_000)  # 1,700,000,000,123 ms + 0.5 ms
    assert made.int >> 80 == 1_700_000_000_123
    assert (made.int >> 64) & 0xFFF == 2048
    assert made.version == 7


@given(first=NANOSECONDS, gap=st.integers(min_value=245, max_value=10**12))
def test_ids_made_later_sort_later(first: int, gap: int) -> None:
    # 245 ns is more than one step of the 12-bit fraction (1e6 / 4096 = 244.1 ns), so
    # the later id has a larger time prefix whatever the random bits.
    with pytest.MonkeyPatch.context() as monkeypatch:
        earlier = _at(monkeypatch, first)
        later = _at(monkeypatch, first + gap)
    assert earlier < later


def test_ids_at_the_same_moment_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    made = {_at(monkeypatch, 1_700_000_000_000_000_000) for _ in range(1000)}
    assert len(made) == 1000


def test_new_events_get_one_by_default() -> None:
    first, second = NewEvent("A", b"{}"), NewEvent("B", b"{}")
    assert first.id.version == second.id.version == 7
    assert first.id < second.id or first.id.int >> 64 == second.id.int >> 64
