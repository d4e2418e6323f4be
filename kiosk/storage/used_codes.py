"""Appointment codes already checked in at this kiosk (the :class:`flows.ports.UsedCodes` port)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert

from kiosk.storage.db import Database
from kiosk.storage.models import UsedAppointmentCode


class UsedCodeStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def is_used(self, appointment_id: str) -> bool:
        query = select(UsedAppointmentCode.appointment_id).where(
            UsedAppointmentCode.appointment_id == appointment_id
        )
        with self._db.session() as session:
            return session.scalar(query) is not None

    def mark_used(self, appointment_id: str, session_id: str) -> bool:
        """Record the code; False if it was already recorded.

        One INSERT ... ON CONFLICT DO NOTHING: the primary key decides, so two sessions (or two
        processes) racing on the same code cannot both get True, which a check-then-insert
        could allow.
        """
        statement = (
            insert(UsedAppointmentCode)
            .values(appointment_id=appointment_id, used_at=self._clock(), session_id=session_id)
            .on_conflict_do_nothing(index_elements=[UsedAppointmentCode.appointment_id])
        )
        with self._db.write_session() as session, session.begin():
            result = session.execute(statement)
        return result.rowcount == 1
