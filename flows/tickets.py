"""The queue ticket (排队票) as a document, from ``assets/print/queue_ticket.toml``; the printer
driver decides how it is rendered."""

from __future__ import annotations

import functools
from typing import Any

from devices.printer import PrintDocument
from flows.base import Translate
from flows.documents import Templates, load_templates
from flows.ports import QueueTicket


@functools.cache
def print_templates() -> Templates:
    """The shipped templates, read and checked once per process."""
    return load_templates()


def queue_ticket_data(ticket: QueueTicket) -> dict[str, Any]:
    return {
        "centre_name": ticket.centre_name,
        "number": ticket.number,
        "service_name": ticket.service_name,
        "place": " ".join(p for p in (ticket.floor, ticket.area, ticket.window) if p),
        "waiting_ahead": ticket.waiting_ahead,
        "issued_at": ticket.issued_at,
        "appointment": bool(ticket.appointment_id),
    }


def queue_ticket_document(ticket: QueueTicket, centre_id: str, _: Translate,
                          templates: Templates | None = None) -> PrintDocument:
    """``_`` is kept for the callers: prints are in Chinese whatever the screen language, as
    staff at the window read them."""
    issued = ticket.issued_at
    return (templates or print_templates()).render(
        "queue_ticket", queue_ticket_data(ticket),
        # One ticket number on one day at one centre is printed once, whatever retries happen.
        job_key=f"ticket:{centre_id}:{issued:%Y%m%d}:{ticket.number}")
