"""The 受理回执 and the 一次性告知单 as documents, from ``assets/print/``. Printed in Chinese
whatever the screen language: staff at the window read them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devices.identity import IdentityDocument
from devices.printer import Media, PrintDocument
from flows.ports import ServiceItemInfo
from flows.tickets import print_templates

if TYPE_CHECKING:
    from flows.apply import ApplicationReceipt, ApplySettings

# The catalogue's requirement words -> the notice template's [choices.requirement].
_REQUIREMENT = {"required": "required", "optional": "optional", "deferrable": "later"}


def _days(days: int | None) -> str:
    return f"{days}个工作日" if days else "即办"


def receipt_data(receipt: ApplicationReceipt, item: ServiceItemInfo,
                 document: IdentityDocument, settings: ApplySettings,
                 received: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``received``: (material name, copies) of what was photographed. The applicant's name
    and number are passed whole; the template prints them masked."""
    return {
        "centre_name": settings.centre_name,
        "tracking_number": receipt.tracking_number or "",
        "local_tracking_number": receipt.local_tracking_number,
        "pending": receipt.tracking_number is None,
        "item_name": item.name,
        "item_code": item.code,
        "applicant_name": document.name,
        "applicant_id": document.id_number,
        "submitted_at": receipt.submitted_at,
        "department": item.department,
        "time_limit": _days(item.promised_days),
        "materials_received": [{"name": name, "copies": copies or "1"}
                               for name, copies in received],
        "materials_missing": [{"name": name, "deadline": deadline}
                              for name, deadline in receipt.deferred],
        # Either number works in the progress query, here and online.
        "tracking_url": receipt.number,
        "phone": settings.centre_phone,
        "kiosk_id": settings.kiosk_id,
    }


def receipt_document(receipt: ApplicationReceipt, item: ServiceItemInfo,
                     document: IdentityDocument, settings: ApplySettings,
                     received: Sequence[tuple[str, str]]) -> PrintDocument:
    return print_templates().render(
        "application_receipt", receipt_data(receipt, item, document, settings, received),
        # One receipt per stored application, however often the print is retried.
        job_key=f"receipt:{receipt.local_tracking_number}")


def notice_data(item: ServiceItemInfo, centre_name: str, printed_at: datetime,
                phone: str = "") -> dict[str, Any]:
    return {
        "centre_name": centre_name,
        "item_name": item.name,
        "item_code": item.basic_code or item.code,
        "item_type": item.item_type,
        "department": item.department,
        "legal_basis": list(item.legal_basis),
        "conditions": list(item.conditions),
        "materials": [{"name": m.name, "form": m.copies or "原件", "copies": "1",
                       "requirement": _REQUIREMENT.get(m.requirement, "required"),
                       "note": f"（{m.note}）" if m.note else ""}
                      for m in item.materials],
        "legal_time_limit": _days(item.statutory_days),
        "promised_time_limit": _days(item.promised_days),
        "fees": item.fees or "不收费",
        "printed_at": printed_at,
        "phone": phone,
    }


def notice_document(item: ServiceItemInfo, centre_name: str, printed_at: datetime,
                    session_id: str, phone: str = "", media: Media | None = None,
                    copy: int = 1) -> PrintDocument:
    """A4 by default; ``media`` for a roll printer when there is no A4 one. ``copy``: the
    how-many-th this session asked for; each is a print of its own (its own job key)."""
    return print_templates().render(
        "one_time_notice", notice_data(item, centre_name, printed_at, phone),
        job_key=f"notice:{session_id}:{item.code}:{copy}", media=media)
