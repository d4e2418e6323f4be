"""Loading a seed file (centres, ticket categories, service items, appointments) into the database.

Appointment days are given as ``day_offset`` from the day of loading, so a demo seed always has
an appointment for today. Loading is insert-if-missing, keyed by the natural ids, so loading the
same file on every start never duplicates anything and never undoes a check-in.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice import models
from backoffice.schemas import SeedFile

# A check-in names an appointment by its code or, from a signed QR code, by its id
# (backoffice/app.py): a code that is another appointment's id would check that one in.
_CODE_IS_OTHER_ID = ("appointment {code}: its code or id is the id or code of another "
                     "appointment")


class SeedError(ValueError):
    """The seed data is not valid; the message says where."""


@dataclass
class SeedResult:
    """How many rows of each kind were inserted (0 everywhere when all were already there)."""

    inserted: dict[str, int] = field(default_factory=lambda: {
        "centres": 0, "ticket_categories": 0, "service_items": 0, "appointments": 0,
        "applications": 0})

    @property
    def total(self) -> int:
        return sum(self.inserted.values())


def read_seed_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; SeedError with a readable reason if it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(f"cannot read seed file {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {path} is not JSON: line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise SeedError(f"seed file {path} must hold a JSON object")
    return data


def parse_seed(data: dict[str, Any]) -> SeedFile:
    try:
        seed = SeedFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False))
        raise SeedError(f"seed data is not valid: {problems}") from exc
    _check_references(seed)
    return seed


def _check_references(seed: SeedFile) -> None:
    items: set[tuple[str, str]] = set()
    for centre in seed.centres:
        categories = {c.code for c in centre.ticket_categories}
        for item in centre.service_items:
            if item.category_code not in categories:
                raise SeedError(f"service item {item.code} of centre {centre.id} names unknown "
                                f"ticket category {item.category_code!r}")
            items.add((centre.id, item.code))
            material_codes = [m.code for m in item.materials]
            if len(set(material_codes)) != len(material_codes):
                raise SeedError(f"service item {item.code} of centre {centre.id} lists a "
                                f"material code twice")
    centre_ids = {c.id for c in seed.centres}
    ids = {a.appointment_id for a in seed.appointments}
    for appt in seed.appointments:
        if appt.code in ids and appt.code != appt.appointment_id:
            raise SeedError(_CODE_IS_OTHER_ID.format(code=appt.code))
        if appt.centre_id not in centre_ids:
            raise SeedError(f"appointment {appt.code} names unknown centre {appt.centre_id!r}")
        if (appt.centre_id, appt.service_item_code) not in items:
            raise SeedError(f"appointment {appt.code}: centre {appt.centre_id} has no service "
                            f"item {appt.service_item_code!r}")
        if appt.slot_end <= appt.slot_start:
            raise SeedError(f"appointment {appt.code}: slot_end is not after slot_start")
    for app in seed.applications:
        if (app.centre_id, app.service_item_code) not in items:
            raise SeedError(f"application {app.tracking_number}: centre {app.centre_id} has no "
                            f"service item {app.service_item_code!r}")


def load_seed(session: Session, data: dict[str, Any], today: dt.date) -> SeedResult:
    """Insert what ``data`` holds and the database lacks, then commit.

    ``today`` is the day ``day_offset`` counts from (the server's today in its timezone).
    Raises SeedError if ``data`` is not a valid seed; nothing is written then.
    """
    seed = parse_seed(data)
    result = SeedResult()
    for centre in seed.centres:
        if session.get(models.Centre, centre.id) is None:
            session.add(models.Centre(id=centre.id, name=centre.name, address=centre.address))
            result.inserted["centres"] += 1
        # Flushed now so that the rows below can point at it under enforced foreign keys.
        session.flush()
        existing_categories = set(session.scalars(
            select(models.TicketCategory.code).where(models.TicketCategory.centre_id == centre.id)))
        for cat in centre.ticket_categories:
            if cat.code not in existing_categories:
                session.add(models.TicketCategory(centre_id=centre.id, code=cat.code, name=cat.name,
                                                  floor=cat.floor, area=cat.area, window=cat.window))
                result.inserted["ticket_categories"] += 1
        session.flush()
        existing_items = set(session.scalars(
            select(models.ServiceItem.code).where(models.ServiceItem.centre_id == centre.id)))
        for item in centre.service_items:
            if item.code not in existing_items:
                session.add(models.ServiceItem(
                    centre_id=centre.id, code=item.code, name=item.name,
                    category_code=item.category_code, department=item.department,
                    basic_code=item.basic_code, item_type=item.item_type.value,
                    legal_basis=item.legal_basis, conditions=item.conditions,
                    materials=[m.model_dump(mode="json") for m in item.materials],
                    promised_days=item.promised_days, statutory_days=item.statutory_days,
                    fees=item.fees, co_departments=item.co_departments,
                    kiosk_services=[s.value for s in item.kiosk_services],
                    result_name=item.result_name))
                result.inserted["service_items"] += 1
        session.flush()

    existing_codes = set(session.scalars(select(models.Appointment.code)))
    existing_ids = set(session.scalars(select(models.Appointment.id)))
    for appt in seed.appointments:
        if appt.code in existing_codes or appt.appointment_id in existing_ids:
            continue
        if appt.code in existing_ids or appt.appointment_id in existing_codes:
            raise SeedError(_CODE_IS_OTHER_ID.format(code=appt.code))
        session.add(models.Appointment(
            id=appt.appointment_id, code=appt.code, centre_id=appt.centre_id,
            service_item_code=appt.service_item_code,
            date=today + dt.timedelta(days=appt.day_offset),
            slot_start=appt.slot_start, slot_end=appt.slot_end,
            applicant_name=appt.applicant_name, status=appt.status.value))
        existing_codes.add(appt.code)
        existing_ids.add(appt.appointment_id)
        result.inserted["appointments"] += 1
    _load_applications(session, seed, today, result)
    session.commit()
    return result


def _load_applications(session: Session, seed: SeedFile, today: dt.date,
                       result: SeedResult) -> None:
    existing = set(session.scalars(select(models.Application.tracking_number)))
    items = {(i.centre_id, i.code): i for i in session.scalars(select(models.ServiceItem))}
    noon = dt.time(12, 0, tzinfo=dt.UTC)
    for app in seed.applications:
        if app.tracking_number in existing:
            continue
        item = items[(app.centre_id, app.service_item_code)]
        submitted_at = dt.datetime.combine(today + dt.timedelta(app.submitted_day_offset), noon)
        updated_at = dt.datetime.combine(today + dt.timedelta(app.updated_day_offset), noon)
        # A seeded application gets the two ends of its history: received, and where it is now.
        history = [models.ApplicationEvent(at=submitted_at, step="submitted",
                                           department=item.department, note="")]
        if app.status.value != "submitted":
            history.append(models.ApplicationEvent(at=updated_at, step=app.status.value,
                                                   department=item.department, note=app.note))
        session.add(models.Application(
            tracking_number=app.tracking_number, centre_id=app.centre_id,
            service_item_code=item.code, service_name=item.name, department=item.department,
            applicant_document_type=app.applicant_document_type,
            applicant_id_number=app.applicant_id_number, status=app.status.value,
            note=app.note,
            submitted_at=submitted_at, updated_at=updated_at, history=history,
            result_title=item.result_name or item.name,
            ready_at=updated_at if app.status.value in ("ready", "collected") else None))
        result.inserted["applications"] += 1
