"""The shared print step (flows/print_job.py) on the simulated printers, and the store that
keeps a document for staff when it could not be printed (kiosk/held_prints.py)."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.contract import CommandContext, CommandFailed, Completion, DeviceStatus
from devices.printer import (
    Field,
    Heading,
    ItemList,
    Media,
    Paragraph,
    PdfDocument,
    Printable,
    PrintDocument,
    PrintReceipt,
    QrCode,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from devices.sim import SimDocumentPrinter, SimReceiptPrinter
from flows.print_job import (
    PrintAction,
    PrintJob,
    PrintProblem,
    PrintResult,
    PrintSettings,
    PrintStage,
    PrintView,
    printer_refusal,
)
from kiosk.held_prints import HeldPrintError, HeldPrintStore
from kiosk.outbox import Sealer, create_key, load_key
from tests.fakes import ListAudit

SETTINGS = PrintSettings(print_timeout_s=10, take_timeout_s=5, unsensed_take_s=5)
MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
               b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
               b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
               b"trailer << /Root 1 0 R >>\n%%EOF\n")


def slip(key: str = "progress:s1:1") -> PrintDocument:
    return PrintDocument(kind="progress_query", job_key=key, title="办件进度",
                         blocks=(Heading("办件进度"), Field("办件编号", "ZZ-2026-000457")))


def two_pages(key: str = "notice:s1:1") -> PrintDocument:
    return PrintDocument(kind="one_time_notice", job_key=key, title="一次性告知单", media=Media.A4,
                         blocks=(Heading("一次性告知单"),
                                 ItemList(tuple(f"第{n}项申请材料" for n in range(1, 90)))))


def every_block() -> PrintDocument:
    return PrintDocument(
        kind="certificate", job_key="result:ZZ1:s1", title="户籍证明", media=Media.A4,
        header="测试中心　户籍证明", meta={"tracking_number": "ZZ1"},
        blocks=(Heading("户籍证明"), Heading("说明", 2),
                Paragraph("兹证明……", TextSize.LARGE, center=True, bold=True, indent=True),
                Field("办件编号", "ZZ1"), ItemList(("甲", "乙"), numbered=False),
                Table(("时间", "环节"), (("11-22 09:41", "受理"), ("11-23 10:25", "审批")),
                      (1.0, 2.0)),
                Rule(dashed=True), Spacer(1.5), QrCode("https://example.invalid/v/1", "核验", 25),
                Signature("出具单位（盖章）", "测试局", "2026年11月22日")))


@pytest.fixture
def audit() -> ListAudit:
    return ListAudit()


@pytest.fixture
def receipt_printer(tmp_path: Path) -> SimReceiptPrinter:
    return SimReceiptPrinter(output_dir=tmp_path / "receipt", auto_take_s=None,
                             print_delay_s=0)


@pytest.fixture
def a4_printer(tmp_path: Path) -> SimDocumentPrinter:
    return SimDocumentPrinter(output_dir=tmp_path / "a4", auto_take_s=None, print_delay_s=0)


@pytest.fixture
def store(tmp_path: Path) -> HeldPrintStore:
    key_file = create_key(tmp_path / "keys" / "outbox.key")
    return HeldPrintStore.open(tmp_path / "data", key_file)


def job_for(document: Printable, printer: SimReceiptPrinter | SimDocumentPrinter,
            audit: ListAudit, **options: object) -> tuple[PrintJob, list[PrintView]]:
    views: list[PrintView] = []
    job = PrintJob(document, printer=printer, audit=audit, session_id="s1",
                   settings=options.pop("settings", SETTINGS),  # type: ignore[arg-type]
                   show=views.append, **options)  # type: ignore[arg-type]
    return job, views


class NoExitSensor(SimReceiptPrinter):
    """A printer that cannot tell when the paper is taken (ESC/POS, CUPS)."""

    def status(self) -> DeviceStatus:
        return replace(super().status(), media=None)


class LostAnswer(SimReceiptPrinter):
    """Prints the first job, then the command times out as if the answer was lost."""

    lost = False

    def _print(self, ctx: CommandContext, document: Printable) -> PrintReceipt:
        receipt = super()._print(ctx, document)
        if not self.lost:
            self.lost = True
            raise CommandFailed(Completion.TIME_OUT, "timeOut", "answer lost")
        return receipt


class BrokenStore:
    def hold(self, document: Printable, *, reason: str, session_id: str | None) -> str:
        raise OSError(28, "No space left on device")


# -- printing and 请取走 --------------------------------------------------------------------------
def test_prints_then_waits_until_the_paper_is_taken(receipt_printer, audit):
    job, views = job_for(slip(), receipt_printer, audit)
    outcome = job.print()
    assert outcome.result is PrintResult.PRINTED and not outcome.duplicate
    assert views[0].stage is PrintStage.PRINTING
    assert views[-1] == PrintView(PrintStage.TAKE, "办件进度", sensed=True)
    threading.Timer(0.05, receipt_printer.take).start()
    assert job.wait_taken() is True
    assert job.view.stage is PrintStage.DONE and job.view.taken is True
    [printed] = receipt_printer.printed
    assert "ZZ-2026-000457" in printed.with_suffix(".txt").read_text(encoding="utf-8")
    assert "print.printed" in audit.kinds() and "print.not_taken" not in audit.kinds()


def test_paper_left_at_the_exit_is_reported_to_staff(receipt_printer, audit):
    job, _ = job_for(slip(), receipt_printer, audit,
                     settings=replace(SETTINGS, take_timeout_s=0.1))
    assert job.print().printed
    assert job.wait_taken() is False
    assert job.view.taken is False
    assert "print.not_taken" in audit.kinds()


def test_a_printer_without_exit_sensor_asks_the_citizen(tmp_path, audit):
    printer = NoExitSensor(output_dir=tmp_path / "p", auto_take_s=None, print_delay_s=0)
    job, views = job_for(slip(), printer, audit)
    assert job.print().printed
    assert views[-1].stage is PrintStage.TAKE and not views[-1].sensed
    assert views[-1].actions == (PrintAction.TAKEN,)
    threading.Timer(0.05, job.taken).start()
    assert job.wait_taken() is True

    unanswered, _ = job_for(slip("progress:s1:2"), printer, audit,
                            settings=replace(SETTINGS, unsensed_take_s=0.05))
    assert unanswered.print().printed
    assert unanswered.wait_taken() is None  # nobody knows: not reported as left behind
    assert "print.not_taken" not in audit.kinds()


# -- failures, the one reprint, job keys ---------------------------------------------------------
def test_paper_out_is_refused_before_sending_and_the_reprint_comes_out(receipt_printer, audit):
    receipt_printer.run_out_after(0)
    assert printer_refusal(receipt_printer) == "paperOut"
    job, views = job_for(slip(), receipt_printer, audit)
    outcome = job.print()
    assert outcome.result is PrintResult.FAILED and outcome.error == "paperOut"
    assert views[-1].problem is PrintProblem.PRINTER_UNAVAILABLE
    assert views[-1].actions == (PrintAction.RETRY_PRINT, PrintAction.CALL_STAFF,
                                 PrintAction.HOME)
    assert receipt_printer.printed == [] and receipt_printer.status().last_error is None
    assert "print.refused" in audit.kinds()

    receipt_printer.refill()
    assert job.reprint().printed
    assert job.key == "progress:s1:1#r2"
    assert len(receipt_printer.printed) == 1
    assert job.view.reprint


def test_paper_running_out_mid_job_reprints_the_whole_document(a4_printer, audit):
    a4_printer.run_out_after(1)  # the document takes two sheets
    job, views = job_for(two_pages(), a4_printer, audit)
    outcome = job.print()
    assert outcome.result is PrintResult.FAILED
    assert views[-1].problem is PrintProblem.PRINT_FAILED and views[-1].detail == "paperOut"
    assert a4_printer.printed == []
    a4_printer.refill()
    assert job.reprint().printed
    assert job.key == "notice:s1:1#r2"  # a definite failure: a new key, so it comes out
    assert len(a4_printer.printed) == 1


def test_a_jam_cleared_by_staff_lets_the_reprint_through(a4_printer, audit):
    a4_printer.jam()
    job, views = job_for(two_pages(), a4_printer, audit)
    assert job.print().result is PrintResult.FAILED
    assert views[-1].detail == "paperJammed"
    a4_printer.clear_jam()
    assert job.reprint().printed and len(a4_printer.printed) == 1


def test_an_unclear_outcome_is_retried_with_the_same_key_and_prints_once(tmp_path, audit):
    printer = LostAnswer(output_dir=tmp_path / "p", auto_take_s=None, print_delay_s=0)
    job, views = job_for(slip(), printer, audit)
    first = job.print()
    assert first.result is PrintResult.FAILED and first.error == "timeOut"
    assert views[-1].problem is PrintProblem.PRINT_FAILED
    second = job.reprint()
    assert second.printed and second.duplicate  # the driver knew the key: nothing new
    assert job.key == "progress:s1:1"
    assert len(printer.printed) == 1


def test_a_second_failure_keeps_the_document_for_staff(receipt_printer, audit, store):
    receipt_printer.run_out_after(0)
    job, views = job_for(slip(), receipt_printer, audit, held=store, back=True)
    assert job.print().result is PrintResult.FAILED
    assert PrintAction.BACK in views[-1].actions
    outcome = job.reprint()
    assert outcome.result is PrintResult.GAVE_UP and outcome.staff_reference
    assert views[-1].problem is PrintProblem.STAFF_REPRINT
    assert views[-1].staff_reference == outcome.staff_reference
    assert views[-1].actions == (PrintAction.CALL_STAFF, PrintAction.BACK, PrintAction.HOME)
    assert job.reprint() == outcome  # only one reprint
    [held] = store.list()
    assert (held.reference, held.kind, held.title, held.reason) == (
        outcome.staff_reference, "progress_query", "办件进度", "paperOut")

    # Staff refill and reprint it from the maintenance screen: it comes out and is gone.
    receipt_printer.refill()
    result = store.reprint(held.reference, receipt_printer, timeout_s=10)
    assert result.ok
    assert store.list() == []
    text = receipt_printer.printed[-1].with_suffix(".txt").read_text(encoding="utf-8")
    assert "ZZ-2026-000457" in text


def test_when_the_document_cannot_be_kept_the_citizen_still_goes_to_staff(receipt_printer,
                                                                         audit):
    receipt_printer.go_offline()
    job, views = job_for(slip(), receipt_printer, audit, held=BrokenStore())
    job.print()
    outcome = job.reprint()
    assert outcome.result is PrintResult.GAVE_UP and outcome.staff_reference is None
    assert views[-1].problem is PrintProblem.PRINTER_UNAVAILABLE
    assert PrintAction.RETRY_PRINT not in views[-1].actions
    assert ("print.not_kept", "s1", {"kind": "progress_query", "error": "offline",
                                     "why": "OSError"}) in audit.rows


def test_a_pdf_on_the_receipt_printer_goes_to_staff_without_a_pointless_reprint(
        receipt_printer, audit, store):
    certificate = PdfDocument("certificate", "result:ZZ1:s1", "户籍证明", MINIMAL_PDF)
    job, views = job_for(certificate, receipt_printer, audit, held=store)
    outcome = job.print()
    assert outcome.result is PrintResult.GAVE_UP and outcome.error == "jobRejected"
    assert views[-1].problem is PrintProblem.STAFF_REPRINT
    assert store.document(outcome.staff_reference) == certificate


def test_a_cancelled_print_is_not_a_failure(tmp_path, audit):
    printer = SimReceiptPrinter(output_dir=tmp_path / "p", auto_take_s=None, print_delay_s=5)
    job, _ = job_for(slip(), printer, audit)
    threading.Timer(0.1, printer.cancel).start()
    assert job.print().result is PrintResult.CANCELLED
    assert printer.printed == [] and "print.failed" not in audit.kinds()


# -- the held-print store -----------------------------------------------------------------------
def test_held_documents_round_trip_sealed_and_bound_to_their_name(store):
    blocks_ref = store.hold(every_block(), reason="paperJammed", session_id="s1")
    pdf_ref = store.hold(PdfDocument("certificate", "result:ZZ2:s1", "户籍证明", MINIMAL_PDF,
                                     meta={"tracking_number": "ZZ2"}),
                         reason="timeOut", session_id="s1")
    assert store.document(blocks_ref) == every_block()
    assert store.document(pdf_ref).pdf == MINIMAL_PDF
    files = sorted(store.folder.iterdir())
    assert [f.name for f in files] == sorted(f"{r}.held" for r in (blocks_ref, pdf_ref))
    assert all(len(f.stem) == 16 and oct(f.stat().st_mode)[-3:] == "600" for f in files)
    for path in files:
        raw = path.read_bytes()
        # Markers long enough that random ciphertext cannot hold them by chance ("ZZ" alone
        # turned up in about one file in twenty).
        assert "户籍证明".encode() not in raw and b"%PDF" not in raw
        assert b"result:ZZ" not in raw and b'"held_at"' not in raw
    # A sealed file copied under another reference does not open.
    moved = "0" * 16
    shutil.copy(store.folder / f"{pdf_ref}.held", store.folder / f"{moved}.held")
    with pytest.raises(HeldPrintError):
        store.document(moved)
    assert {h.reference for h in store.list()} == {blocks_ref, pdf_ref}
    with pytest.raises(HeldPrintError):
        store.document("../outbox")


def test_held_documents_expire(tmp_path):
    key_file = create_key(tmp_path / "outbox.key")
    clock = [datetime(2026, 11, 22, 9, 0, tzinfo=UTC)]
    store = HeldPrintStore(tmp_path / "held", Sealer(load_key(key_file)), now=lambda: clock[0])
    reference = store.hold(slip(), reason="paperOut", session_id="s1")
    [held] = store.list()
    assert held.expires_at == clock[0] + timedelta(hours=72)
    clock[0] += timedelta(hours=71)
    assert store.expire() == 0 and store.document(reference) == slip()
    clock[0] += timedelta(hours=2)
    assert store.list() == [] and not any(store.folder.iterdir())


def test_a_file_sealed_with_another_key_is_skipped_then_expires_by_age(tmp_path, store):
    reference = store.hold(slip(), reason="paperOut", session_id="s1")
    other = HeldPrintStore(store.folder, Sealer(os.urandom(32)))
    assert other.list() == []
    with pytest.raises(HeldPrintError):
        other.document(reference)
    old = (datetime.now(UTC) - timedelta(hours=80)).timestamp()
    os.utime(store.folder / f"{reference}.held", (old, old))
    assert other.expire() == 1
