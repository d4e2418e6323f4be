"""The CUPS document printer against a real (private) cupsd: cups-pdf, a scriptable backend,
and cupsd itself answering IPP as the printer behind an ipp:// queue."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devices.contract import (
    Completion,
    DeviceState,
    DoorState,
    Event,
    EventKind,
    PaperState,
)
from devices.cups import ipp
from devices.cups.printer import CupsDocumentPrinter, CupsReceiptPrinter
from devices.cups.state import PrinterReport, assess, job_failure_code, merge
from devices.printer import Field, Heading, Media, Paragraph, PrintDocument, QrCode
from devices.printing.pdf import render_pdf
from tests.peers.cupsd import CupsQueue, CupsServer

JOB_CANCELED, JOB_ABORTED, JOB_COMPLETED = 7, 8, 9
MakePrinter = Callable[..., CupsDocumentPrinter]


def receipt(key: str) -> PrintDocument:
    return PrintDocument(
        kind="receipt", job_key=key, title="受理回执", media=Media.A4,
        blocks=(Heading("受理回执"), Paragraph("受理编号 20260001"),
                Field("办理事项", "社会保障卡申领"),
                QrCode("https://example.invalid/track/20260001", caption="扫码查询进度")))


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return value


def pdftotext(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (poppler-utils)")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def make_printer(cupsd: CupsServer) -> Iterator[MakePrinter]:  # noqa: F811
    made: list[CupsDocumentPrinter] = []

    def make(queue: str, **options: object) -> CupsDocumentPrinter:
        settings: dict[str, object] = {"server": cupsd.server, "job_timeout_s": 15,
                                       "poll_interval_s": 0.05, "status_interval_s": 0.2}
        settings.update(options)
        printer = CupsDocumentPrinter(queue=queue, **settings)  # type: ignore[arg-type]
        made.append(printer)
        return printer

    yield make
    for printer in made:
        printer.close()


@pytest.fixture
def sample_pdf(tmp_path: Path) -> Path:
    """A job from another program, to make the printer report something between our jobs."""
    path = tmp_path / "other.pdf"
    path.write_bytes(render_pdf(receipt("other")))
    return path


# -- printing through cupsd ---------------------------------------------------------------
def test_pdf_queue_prints_chinese_and_digits(cups_pdf_queue: CupsQueue,  # noqa: F811
                                             make_printer: MakePrinter) -> None:
    printer = make_printer(cups_pdf_queue.name)
    result = printer.print_document(receipt("pdf-1"), timeout=60).wait()

    assert result.completion is Completion.SUCCESS, result
    assert result.data is not None and result.data.pages == 1 and not result.data.duplicate
    job_id = printer.submitted["pdf-1"].job_id
    assert cups_pdf_queue.jobs()[job_id]["job-state"] == JOB_COMPLETED
    out = wait_for(lambda: [p for p in cups_pdf_queue.outputs() if f"job_{job_id}." in p.name])
    text = pdftotext(out[0])  # type: ignore[index]
    assert "受理回执" in text
    assert "20260001" in text
    assert "社会保障卡申领" in text


def test_job_is_followed_to_completed(cups_test_queue: CupsQueue,  # noqa: F811
                                      make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name)
    result = printer.print_document(receipt("done-1"), timeout=30).wait()

    assert result.completion is Completion.SUCCESS, result
    job_id = printer.submitted["done-1"].job_id
    # SUCCESS came back only once CUPS had the job completed, and the backend had the document.
    assert cups_test_queue.jobs()[job_id]["job-state"] == JOB_COMPLETED
    delivered = cups_test_queue.folder / f"job-{job_id}.out"
    assert delivered.read_bytes().startswith(b"%PDF")
    assert "受理编号 20260001" in pdftotext(delivered)
    assert printer.status().state is DeviceState.ONLINE
    assert printer.status().queue_depth == 0


def test_receipt_printer_behind_cups_gets_an_80mm_page(cupsd: CupsServer,  # noqa: F811
                                                       cups_test_queue: CupsQueue) -> None:  # noqa: F811
    printer = CupsReceiptPrinter(queue=cups_test_queue.name, server=cupsd.server,
                                 poll_interval_s=0.05)
    try:
        result = printer.print_document(replace(receipt("roll-1"), media=Media.ROLL_80MM),
                                        timeout=30).wait()
    finally:
        printer.close()

    assert result.ok, result
    delivered = cups_test_queue.folder / f"job-{printer.submitted['roll-1'].job_id}.out"
    info = subprocess.run(["pdfinfo", str(delivered)], capture_output=True, text=True,
                          check=True).stdout
    width_pt = float(info.split("Page size:")[1].split()[0])
    assert round(width_pt / 72 * 25.4) == 80
    assert "受理编号 20260001" in pdftotext(delivered)


def test_retry_with_same_key_sends_no_second_job(cups_test_queue: CupsQueue,  # noqa: F811
                                                 make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name)
    first = printer.print_document(receipt("once"), timeout=30).wait()
    again = printer.print_document(receipt("once"), timeout=30).wait()

    assert first.ok and first.data is not None and not first.data.duplicate
    assert again.ok and again.data is not None and again.data.duplicate
    assert len(cups_test_queue.jobs()) == 1
    assert len(cups_test_queue.outputs()) == 1


def test_paper_out_during_job_then_next_print_refused(cups_test_queue: CupsQueue,  # noqa: F811
                                                      make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name)
    events: list[Event] = []
    printer.subscribe(events.append)
    cups_test_queue.control(state="media-empty-error", exit=1)

    result = printer.print_document(receipt("empty-1"), timeout=30).wait()

    assert result.completion is Completion.HARDWARE_ERROR
    assert result.error_code == "paperOut"
    job_id = printer.submitted["empty-1"].job_id
    assert cups_test_queue.jobs()[job_id]["job-state"] == JOB_ABORTED
    status = printer.status()
    assert status.paper is PaperState.OUT
    assert not status.usable
    assert any(e.kind is EventKind.PAPER_THRESHOLD and e.payload is PaperState.OUT
               for e in events)

    jobs_before = len(cups_test_queue.jobs())
    refused = printer.print_document(receipt("empty-2"), timeout=30).wait()
    assert refused.completion is Completion.HARDWARE_ERROR
    assert refused.error_code == "paperOut"
    assert len(cups_test_queue.jobs()) == jobs_before
    assert "empty-2" not in printer.submitted


def test_paper_out_seen_between_jobs_refuses_before_submission(
        cups_test_queue: CupsQueue, make_printer: MakePrinter,  # noqa: F811
        sample_pdf: Path) -> None:
    printer = make_printer(cups_test_queue.name)
    assert printer.status().usable
    events: list[Event] = []
    printer.subscribe(events.append)
    # Another program's job: the printer says its paper ran out, the job itself got through.
    cups_test_queue.control(state="media-empty-error")
    other = cups_test_queue.print_file(sample_pdf)
    assert cups_test_queue.wait_job(other) == JOB_COMPLETED

    # The background poller brings it to the status (and so greys out the services) unasked.
    wait_for(lambda: printer.status().paper is PaperState.OUT)
    assert not printer.status().usable
    assert any(e.kind is EventKind.PAPER_THRESHOLD for e in events)

    refused = printer.print_document(receipt("before-1"), timeout=30).wait()
    assert (refused.completion, refused.error_code) == (Completion.HARDWARE_ERROR, "paperOut")
    assert list(cups_test_queue.jobs()) == [other]


@pytest.mark.parametrize(("reason", "code", "paper", "door"), [
    ("media-empty-error", "paperOut", PaperState.OUT, DoorState.CLOSED),
    ("media-jam-error", "paperJammed", PaperState.JAMMED, DoorState.CLOSED),
    ("cover-open", "doorOpen", PaperState.FULL, DoorState.OPEN),
])
def test_ipp_printer_asked_before_printing(cups_ipp_queue: tuple[CupsQueue, CupsQueue],  # noqa: F811
                                           make_printer: MakePrinter, sample_pdf: Path,
                                           reason: str, code: str, paper: PaperState,
                                           door: DoorState) -> None:
    front, device = cups_ipp_queue
    device.control(state=reason)
    device.wait_job(device.print_file(sample_pdf))
    # The front queue has never run a job: CUPS itself knows nothing of the fault there.
    assert front.attributes()["printer-state-reasons"] == ["none"]

    printer = make_printer(front.name)
    refused = printer.print_document(receipt(f"ipp-{code}"), timeout=30).wait()

    assert (refused.completion, refused.error_code) == (Completion.HARDWARE_ERROR, code)
    assert front.jobs() == {}
    status = printer.status()
    assert (status.paper, status.door) == (paper, door)
    assert status.detail["source"] == "device"
    assert not status.usable


def test_ipp_printer_not_answering_is_offline(cupsd: CupsServer,  # noqa: F811
                                              make_printer: MakePrinter) -> None:
    name = cupsd.unique_name("zizhu-ipp-gone")
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cupsd.lpadmin("-p", name, "-E", "-v", f"ipp://127.0.0.1:{port}/ipp/print")
    try:
        printer = make_printer(name, device_timeout_s=0.5)
        assert printer.status().state is DeviceState.OFFLINE
        result = printer.print_document(receipt("gone-1"), timeout=30).wait()
        assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY,
                                                          "offline")
        assert cupsd.jobs(name) == {}
    finally:
        cupsd.delete_queue(name)


def test_ipp_query_of_printer_and_of_non_ipp_uris(cupsd: CupsServer,  # noqa: F811
                                                 cups_test_queue: CupsQueue,  # noqa: F811
                                                 sample_pdf: Path) -> None:
    cups_test_queue.control(state="media-low-report,toner-low-warning")
    cups_test_queue.wait_job(cups_test_queue.print_file(sample_pdf))

    report = ipp.query_printer(f"ipp://127.0.0.1:{cupsd.port}/printers/{cups_test_queue.name}")

    assert report is not None
    assert report.reasons == {"media-low-report", "toner-low-warning"}
    assert report.printer_state == 3
    assert report.source == "device"
    assert ipp.query_printer(f"zizhu-test:{cups_test_queue.folder}") is None
    assert ipp.query_printer("cups-pdf:/") is None
    with pytest.raises(ipp.IppError):
        ipp.query_printer(f"ipp://127.0.0.1:{cupsd.port}/printers/no-such-queue")


def test_job_timeout_cancels_the_job_in_cups(cups_test_queue: CupsQueue,  # noqa: F811
                                             make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name, job_timeout_s=1.0)
    cups_test_queue.control(sleep=30)

    result = printer.print_document(receipt("stuck-1"), timeout=30).wait()

    assert result.completion is Completion.TIME_OUT
    job_id = printer.submitted["stuck-1"].job_id
    assert cups_test_queue.jobs()[job_id]["job-state"] == JOB_CANCELED
    assert cups_test_queue.jobs("not-completed") == {}
    lpstat = subprocess.run(["lpstat", "-o", cups_test_queue.name], env=cups_test_queue.server
                            .env(), capture_output=True, text=True)
    assert f"{cups_test_queue.name}-{job_id}" not in lpstat.stdout


def test_cancel_of_the_command_cancels_the_job(cups_test_queue: CupsQueue,  # noqa: F811
                                               make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name)
    cups_test_queue.control(sleep=30)
    pending = printer.print_document(receipt("cancel-1"), timeout=30)
    wait_for(lambda: "cancel-1" in printer.submitted)
    pending.cancel()

    assert pending.wait(10).completion is Completion.CANCELED
    job_id = printer.submitted["cancel-1"].job_id
    assert cups_test_queue.jobs()[job_id]["job-state"] == JOB_CANCELED


def test_missing_queue_is_no_device(cupsd: CupsServer,  # noqa: F811
                                    make_printer: MakePrinter) -> None:
    printer = make_printer("zizhu-no-such-queue")

    status = printer.status()
    assert status.state is DeviceState.NO_DEVICE
    assert status.detail["problem"] == "queueMissing"
    assert not status.usable
    result = printer.print_document(receipt("nowhere"), timeout=10).wait()
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "noDevice")


def test_rejecting_or_disabled_queue_is_refused(cups_test_queue: CupsQueue,  # noqa: F811
                                                make_printer: MakePrinter) -> None:
    printer = make_printer(cups_test_queue.name)
    conn = cups_test_queue.server.connection()

    conn.rejectJobs(cups_test_queue.name)
    rejected = printer.print_document(receipt("reject-1"), timeout=10).wait()
    assert (rejected.completion, rejected.error_code) == (Completion.DEVICE_NOT_READY,
                                                          "notAccepting")

    conn.acceptJobs(cups_test_queue.name)
    conn.disablePrinter(cups_test_queue.name)
    stopped = printer.print_document(receipt("stopped-1"), timeout=10).wait()
    assert (stopped.completion, stopped.error_code) == (Completion.DEVICE_NOT_READY, "offline")
    assert printer.status().state is DeviceState.OFFLINE
    assert cups_test_queue.jobs() == {}


# -- printer-state-reasons → HAL ----------------------------------------------------------
@pytest.mark.parametrize(("reasons", "paper", "door", "state", "refusal"), [
    ([], PaperState.FULL, DoorState.CLOSED, DeviceState.ONLINE, None),
    (["media-empty-error"], PaperState.OUT, DoorState.CLOSED, DeviceState.ONLINE, "paperOut"),
    (["media-needed"], PaperState.OUT, DoorState.CLOSED, DeviceState.ONLINE, "paperOut"),
    (["media-empty-warning"], PaperState.LOW, DoorState.CLOSED, DeviceState.ONLINE, None),
    (["media-low-report"], PaperState.LOW, DoorState.CLOSED, DeviceState.ONLINE, None),
    (["media-jam-error"], PaperState.JAMMED, DoorState.CLOSED, DeviceState.ONLINE,
     "paperJammed"),
    (["door-open-error"], PaperState.FULL, DoorState.OPEN, DeviceState.ONLINE, "doorOpen"),
    (["cover-open-report"], PaperState.FULL, DoorState.CLOSED, DeviceState.ONLINE, None),
    (["offline-report"], PaperState.FULL, DoorState.CLOSED, DeviceState.OFFLINE, "offline"),
    (["toner-low-warning"], PaperState.FULL, DoorState.CLOSED, DeviceState.ONLINE, None),
    (["toner-empty-error"], PaperState.FULL, DoorState.CLOSED, DeviceState.HARDWARE_ERROR,
     "tonerEmpty"),
    (["marker-supply-empty-warning"], PaperState.FULL, DoorState.CLOSED, DeviceState.ONLINE,
     None),
])
def test_reasons_map_to_status(reasons: list[str], paper: PaperState, door: DoorState,
                               state: DeviceState, refusal: str | None) -> None:
    condition = assess(PrinterReport.of(3, reasons))
    assert (condition.paper, condition.door, condition.state) == (paper, door, state)
    assert (condition.refusal[1] if condition.refusal else None) == refusal


def test_stopped_queue_says_paper_out_before_stopped() -> None:
    assert assess(PrinterReport.of(5, ["media-empty-error"])).refusal == (
        Completion.HARDWARE_ERROR, "paperOut")
    assert assess(PrinterReport.of(5, [])).refusal == (Completion.HARDWARE_ERROR,
                                                       "printerStopped")
    assert assess(PrinterReport.of(5, ["paused"])).refusal == (Completion.DEVICE_NOT_READY,
                                                               "offline")
    assert assess(PrinterReport.of(3, [], accepting=False)).refusal == (
        Completion.DEVICE_NOT_READY, "notAccepting")


def test_device_answer_replaces_stale_queue_reasons() -> None:
    queue = PrinterReport.of(3, ["media-empty-error", "paused"])
    device = PrinterReport.of(3, ["media-low-report"], source="device")
    merged = merge(queue, device)
    assert merged.reasons == {"paused", "media-low-report"}
    assert assess(merged).paper is PaperState.LOW


def test_failed_job_code_from_reasons_at_its_end() -> None:
    assert job_failure_code(["media-jam-error"]) == "paperJammed"
    assert job_failure_code("cover-open") == "doorOpen"
    assert job_failure_code([], PrinterReport.of(3, ["media-empty-error"])) == "paperOut"
    assert job_failure_code(["none"]) == "jobRejected"
