"""The queue ticket (排队票) as a document; the printer driver decides how it is rendered."""

from __future__ import annotations

from devices.printer import Media, PrintDocument, PrintLine, TextSize
from flows.base import Translate
from flows.ports import QueueTicket


def queue_ticket_document(ticket: QueueTicket, centre_id: str, _: Translate) -> PrintDocument:
    issued = ticket.issued_at
    lines = [
        PrintLine(ticket.centre_name, center=True),
        PrintLine(ticket.number, TextSize.HUGE, center=True, bold=True),
        PrintLine(ticket.service_name, TextSize.LARGE, center=True),
        PrintLine(_("Please wait at: {place}").format(
            place=" ".join(p for p in (ticket.floor, ticket.area, ticket.window) if p))),
        PrintLine(_("People ahead of you: {n}").format(n=ticket.waiting_ahead)),
        PrintLine(_("Issued: {time}").format(time=f"{issued:%Y-%m-%d %H:%M}")),
    ]
    if ticket.appointment_id:
        lines.append(PrintLine(_("Appointment check-in")))
    lines.append(PrintLine(_("Please keep this ticket and listen for your number.")))
    return PrintDocument(
        kind="queue_ticket",
        # One ticket number on one day at one centre is printed once, whatever retries happen.
        job_key=f"ticket:{centre_id}:{issued:%Y%m%d}:{ticket.number}",
        title=_("Queue ticket"),
        lines=tuple(lines),
        media=Media.ROLL_80MM,
    )
