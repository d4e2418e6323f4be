"""A ready-made PDF (a certificate from the back office) printed as it is: the CUPS driver sends
the very bytes to a real (private) cupsd, the simulated A4 printer keeps them, and printers
that take no PDF (ESC/POS, the simulated receipt roll) refuse it before anything moves. And the
whole 自助出件 journey once through cupsd's PDF queue (cups-pdf), read back with pdftotext.
The cupsd is the session's (tests/peers/cupsd.py, a pytest plugin)."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from devices.contract import Completion
from devices.cups.printer import CupsDocumentPrinter
from devices.escpos.printer import EscposReceiptPrinter
from devices.printer import JOB_REJECTED, Media, PdfDocument
from devices.printing.fonts import FONT_PATH
from devices.printing.pdf import pdf_page_count
from devices.sim import SimDocumentPrinter, SimIdCardReader, SimReceiptPrinter
from flows.certificate import CertificateFlow, CertificateSettings, CertStep
from flows.identify import IdentifyFlow
from flows.ports import ApplicationStatus
from flows.print_job import PrintSettings, PrintStage
from kiosk.client import HttpBackOffice
from tests.fakes import ListAudit
from tests.peers.cupsd import CupsQueue, CupsServer
from tests.test_certificate_flow import id_card, ready_for, status_of

NUMBER = "ZZ530102-20261122-000457"


def issued_pdf(pages: int = 1) -> bytes:
    """A certificate as a department's system makes it: reportlab with its own embedded font,
    not the kiosk's renderer."""
    if "PassthroughWQY" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("PassthroughWQY", str(FONT_PATH), subfontIndex=0))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    for page in range(1, pages + 1):
        pdf.setFont("PassthroughWQY", 20)
        pdf.drawString(72, 760, "户籍证明")
        pdf.setFont("PassthroughWQY", 12)
        pdf.drawString(72, 720, f"办件编号：{NUMBER}　第{page}页")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def certificate(key: str, pages: int = 1) -> PdfDocument:
    return PdfDocument("certificate", key, "户籍证明", issued_pdf(pages),
                       meta={"tracking_number": NUMBER})


def pdftotext(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (poppler-utils)")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return value


@pytest.fixture
def make_cups(cupsd: CupsServer) -> Iterator[Callable[[str], CupsDocumentPrinter]]:
    made: list[CupsDocumentPrinter] = []

    def make(queue: str) -> CupsDocumentPrinter:
        printer = CupsDocumentPrinter(queue=queue, server=cupsd.server, job_timeout_s=15,
                                      poll_interval_s=0.05, status_interval_s=0.2)
        made.append(printer)
        return printer

    yield make
    for printer in made:
        printer.close()


def test_a_pdf_document_is_checked_and_never_shows_its_bytes():
    with pytest.raises(ValueError, match="not a PDF"):
        PdfDocument("certificate", "k", "户籍证明", b"<html>not a pdf</html>")
    document = certificate("result:1:s")
    assert document.media is Media.A4
    assert "户籍" not in repr(document) and "bytes" in repr(document)
    assert pdf_page_count(issued_pdf(3)) == 3


def test_cups_sends_the_very_bytes_and_never_twice(cups_test_queue: CupsQueue,
                                                   make_cups) -> None:
    printer = make_cups(cups_test_queue.name)
    document = certificate("result:pass-1:s1", pages=2)
    result = printer.print_document(document, timeout=30).wait()
    assert result.completion is Completion.SUCCESS, result
    assert result.data is not None and result.data.pages == 2
    job_id = printer.submitted["result:pass-1:s1"].job_id
    assert (cups_test_queue.folder / f"job-{job_id}.out").read_bytes() == document.pdf

    again = printer.print_document(document, timeout=30).wait()
    assert again.ok and again.data is not None and again.data.duplicate
    assert len(cups_test_queue.outputs()) == 1


def test_cups_pdf_queue_prints_the_certificate_text(cups_pdf_queue: CupsQueue,
                                                    make_cups) -> None:
    printer = make_cups(cups_pdf_queue.name)
    result = printer.print_document(certificate("result:pass-2:s1"), timeout=60).wait()
    assert result.completion is Completion.SUCCESS, result
    job_id = printer.submitted["result:pass-2:s1"].job_id
    out = wait_for(lambda: [p for p in cups_pdf_queue.outputs() if f"job_{job_id}." in p.name])
    text = pdftotext(out[0])  # type: ignore[index]
    assert "户籍证明" in text and NUMBER in text


def test_the_simulated_a4_printer_keeps_the_pdf_as_it_came(tmp_path):
    printer = SimDocumentPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
    document = certificate("result:pass-3:s1", pages=2)
    printer.run_out_after(5)
    result = printer.print_document(document, timeout=10).wait()
    assert result.ok and result.data is not None and result.data.pages == 2
    [kept] = printer.printed
    assert kept.suffix == ".pdf" and kept.read_bytes() == document.pdf
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]  # no picture, no text
    assert printer._pages_left == 3  # two sheets used


def test_printers_that_take_no_pdf_refuse_it_before_anything_moves(tmp_path):
    roll = SimReceiptPrinter(output_dir=tmp_path / "roll", auto_take_s=None, print_delay_s=0)
    escpos = EscposReceiptPrinter(port=str(tmp_path / "no-such-tty"), poll_interval_s=None,
                                  status_timeout_s=0.1)
    try:
        for printer in (roll, escpos):
            result = printer.print_document(certificate("result:pass-4:s1"), timeout=5).wait()
            assert (result.completion, result.error_code) == (Completion.INVALID_DATA,
                                                              JOB_REJECTED)
        assert roll.printed == []
    finally:
        escpos.close()


def test_a_certificate_through_the_real_cups_pdf_queue(backoffice_server, cups_pdf_queue,
                                                       make_cups):
    """自助出件 end to end: staff mark it ready, the citizen prints it at the kiosk on the CUPS
    A4 printer, and the paper says what the back office's document says."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (poppler-utils)")
    person, [number] = ready_for(backoffice_server, 1)
    printer = make_cups(cups_pdf_queue.name)
    audit, session = ListAudit(), f"sess-{uuid.uuid4().hex[:8]}"
    reader = SimIdCardReader(read_delay_s=0.01)
    reader.insert(id_card(person))
    client = HttpBackOffice(backoffice_server.url, timeout_s=3)
    flow = CertificateFlow(
        identify=IdentifyFlow(id_card=reader, smart_card=None, audit=audit,
                              session_id=session, today=date.today),
        desk=client, printer=printer, audit=audit,
        settings=CertificateSettings("ZZ-T-CUPS", PrintSettings(60, 5, unsensed_take_s=0.1)),
        session_id=session)
    try:
        stages: list[PrintStage] = []
        flow.on_change(lambda v: stages.append(v.print.stage) if v.print else None)
        flow.start()
        flow.lookup()
        title = flow.view.results[0].result_title
        flow.print_one(number)
        assert flow.view.step is CertStep.DONE
        assert PrintStage.TAKE in stages  # CUPS cannot tell when it is taken: the screen asks
        job_id = printer.submitted[f"result:{number}:{session}"].job_id
        out = wait_for(lambda: [p for p in cups_pdf_queue.outputs()
                                if f"job_{job_id}." in p.name])
        text = pdftotext(out[0])  # type: ignore[index]
        assert number in text and title in text and "办件编号" in text
        assert status_of(backoffice_server, number) is ApplicationStatus.COLLECTED
    finally:
        flow.wipe()
        client.close()
