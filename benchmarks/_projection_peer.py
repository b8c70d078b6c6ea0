"""The ``eventsourcing`` side of the ``projection`` workload: its classes need importable topics.

eventsourcing names stored events and recorders by topic (``module:qualname``) and
resolves them on reading, so these classes live at a module's top level. This module
imports ``eventsourcing``; ``bench_projection`` imports it only when that case runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    ListenNotifySubscription,
    Subscription,
    Tracking,
)
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteTrackingRecorder

__all__ = ("Accounts", "Counters", "CountersView", "Deposited", "SubscribableRecorder")


class Deposited(Aggregate.Event):
    """An account's deposit; the stored state is the payload, ``{"amount": 1}``."""

    amount: int


class SubscribableRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, subscribable with the library's pull loop.

    The library's SQLite recorder does not implement ``subscribe`` (it raises
    ``NotImplementedError``), which ``ProjectionRunner`` needs. This one returns the
    library's own ``ListenNotifySubscription``, which pages through
    ``select_notifications`` (500 notifications a page) from the given position. It is
    never notified of new events, which a catch-up over stored events does not need.
    """

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return ListenNotifySubscription(recorder=self, gt=gt, topics=topics)


class Accounts(Application[uuid.UUID]):
    """The application whose stored events the projection reads."""


class CountersView(SQLiteTrackingRecorder):
    """A materialised view: each aggregate's event count, tracked in the same transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS counters "
            "(aggregate TEXT PRIMARY KEY NOT NULL, count INTEGER NOT NULL)",
        ]

    def increment(self, aggregate: uuid.UUID, tracking: Tracking) -> None:
        """Count one event of ``aggregate`` and record ``tracking``, in one transaction."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO counters (aggregate, count) VALUES (?, 1) "
                "ON CONFLICT (aggregate) DO UPDATE SET count = count + 1",
                (aggregate.hex,),
            )
            self._insert_tracking(c, tracking)

    def total(self) -> int:
        """The events counted, over every aggregate."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT SUM(count) FROM counters")
            return int(c.fetchone()[0])


class Counters(Projection[CountersView]):
    """Counts each aggregate's deposits in a :class:`CountersView`."""

    name = "counters"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other types only move the tracking position."""
        self.view.insert_tracking(tracking)

    @process_event.register(Deposited)
    def _deposited(self, domain_event: Deposited, tracking: Tracking) -> None:
        self.view.increment(domain_event.originator_id, tracking)
