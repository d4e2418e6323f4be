"""Printing, timed: a queue ticket (80 mm roll) and an A4 certificate, from the shipped templates
and the tests' sample data, rendered and printed through a real cupsd.

Rendering, in this process: template -> PrintDocument, then PrintDocument -> PDF (reportlab,
CJK subset embedded; what CUPS gets) and -> 1-bit raster 576 dots wide (what an ESC/POS head
gets), each warm after one untimed call. The first call is reported apart, each sample in a
new process, because it registers the font with reportlab (or loads the FreeType faces) and
that is paid once per kiosk start, not per print.

Printing: the time from print_document() to the driver's completion, which returns only once
CUPS says the job is completed, through the real drivers (CupsReceiptPrinter for the ticket,
CupsDocumentPrinter for the certificate, at their default settings) and a private cupsd set up
as the tests set it up (tests/peers/cupsd.py). It includes the driver's warm render. Peers in
the same run and on the same cupsd:
- the raw test-backend queue (no filters, the PDF is copied as sent) next to the A4 cups-pdf
  queue (pdftopdf, pdftops, ghostscript): the difference is what the filter chain costs;
- ``lp -d QUEUE file.pdf`` with the same PDF, then ``lpstat -W completed`` polled every 20 ms
  until the job is listed: the plain CUPS client, so the driver's own overhead (its render, the
  status check before a print and its job polling, 50 ms doubling up to 0.5 s) shows.
Each queue gets one untimed job first. Every driver print has a fresh job_key, as the driver
refuses to print a key twice. Every job's end state is checked to be completed; a job that
failed stops the bench.

It is a benchmark, not a test: a missed target is printed, not turned into an exit status.
Exit 1 only means it could not measure.

    .venv/bin/python -m bench.print [--runs 10]     (as root: it starts its own cupsd)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.cups.printer import CupsDocumentPrinter, CupsReceiptPrinter  # noqa: E402
from devices.printer import PrintDocument  # noqa: E402
from devices.printing.pdf import layout_pdf, render_pdf  # noqa: E402
from devices.printing.raster import render_raster  # noqa: E402
from flows.documents import Templates, load_templates  # noqa: E402
from tests.peers.cupsd import (  # noqa: E402
    CUPS_PDF_BACKEND,
    CupsQueue,
    CupsServer,
    running_cupsd,
)
from tests.printing import samples  # noqa: E402

KINDS = ("queue_ticket", "certificate")
LABELS = {"queue_ticket": "queue ticket", "certificate": "certificate"}
TARGETS = "targets: queue ticket rendered < 50 ms; completed in CUPS < 1 s"
FIRST_CALL_RUNS = 3  # each one a new process, about half a second apiece
JOB_COMPLETED = 9
JOB_TIMEOUT_S = 60.0
LPSTAT_POLL_S = 0.02
_keys = itertools.count(1)


class BenchError(Exception):
    """Something could not be measured."""


def fresh_document(templates: Templates, kind: str) -> PrintDocument:
    return templates.render(kind, samples()[kind],
                            job_key=f"bench:{kind}:{os.getpid()}:{next(_keys)}")


def pdf_note(document: PrintDocument) -> str:
    rendered = layout_pdf(document)
    return f"{rendered.pages} page(s), {len(rendered.data) / 1024:.0f} KiB"


def raster_note(document: PrintDocument) -> str:
    image = render_raster(document)
    # A4 on a 576-dot head is the sheet scaled to 72 mm, one strip: the renderer's default.
    return f"{image.width}x{image.height} dots"


RENDERERS: dict[str, Callable[[PrintDocument], str]] = {"PDF": pdf_note, "raster": raster_note}


def row(name: str, times: list[float], note: str = "") -> None:
    median = statistics.median(times) * 1000
    print(f"| {name:<66} | {len(times):>4} | {median:9.1f} | {min(times) * 1000:8.1f} "
          f"| {note} |", flush=True)


def timed(call: Callable[[], object], runs: int, warm_up: bool = True) -> list[float]:
    if warm_up:
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


# -- rendering ---------------------------------------------------------------------------------
def first_call_child(renderer: str, kind: str) -> None:
    """In a new process: the first render call, timed; prints its seconds and note as JSON."""
    document = fresh_document(load_templates(), kind)
    started = time.perf_counter()
    note = RENDERERS[renderer](document)
    print(json.dumps({"seconds": time.perf_counter() - started, "note": note}))


def first_call(renderer: str, kind: str) -> tuple[float, str]:
    done = subprocess.run([sys.executable, "-m", "bench.print", "--first-call", renderer, kind],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"first-call child failed: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return float(answer["seconds"]), str(answer["note"])


def render_rows(runs: int) -> None:
    templates = load_templates()
    for kind in KINDS:
        times = timed(lambda k=kind: fresh_document(templates, k), runs)
        row(f"template -> PrintDocument, {LABELS[kind]}", times)
    for renderer in RENDERERS:
        for kind in KINDS:
            samples_, note = zip(*(first_call(renderer, kind) for _ in range(FIRST_CALL_RUNS)),
                                 strict=True)
            row(f"{renderer}, {LABELS[kind]}, first call in a new process", list(samples_),
                note[0])
            document = fresh_document(templates, kind)
            call = RENDERERS[renderer]
            times = timed(lambda c=call, d=document: c(d), runs)
            row(f"{renderer}, {LABELS[kind]}, warm", times, call(document))


# -- printing through cupsd --------------------------------------------------------------------
def cups_missing() -> str | None:
    if os.geteuid() != 0:
        return "not root (the private cupsd runs its filters as lp)"
    for tool in ("cupsd", "lpadmin", "lp", "lpstat"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install cups cups-client)"
    if not CUPS_PDF_BACKEND.exists():
        return "cups-pdf not installed (apt-get install printer-driver-cups-pdf)"
    return None


def job_state(server: CupsServer, job_id: int) -> int:
    attrs = server.connection().getJobAttributes(job_id, requested_attributes=["job-state"])
    return int(attrs["job-state"])


def driver_times(server: CupsServer, queue: CupsQueue, kind: str, runs: int) -> list[float]:
    make = CupsReceiptPrinter if kind == "queue_ticket" else CupsDocumentPrinter
    printer = make(queue=queue.name, server=server.server)
    templates = load_templates()
    times: list[float] = []
    try:
        def one() -> None:
            document = fresh_document(templates, kind)
            started = time.perf_counter()
            result = printer.print_document(document, JOB_TIMEOUT_S).wait()
            elapsed = time.perf_counter() - started
            if not result.ok:
                raise BenchError(f"{queue.name}: print ended {result.completion}/"
                                 f"{result.error_code}: {result.message}")
            job_id = printer.submitted[document.job_key].job_id
            if job_state(server, job_id) != JOB_COMPLETED:
                raise BenchError(f"{queue.name}: job {job_id} not completed in CUPS")
            times.append(elapsed)

        one()  # warm-up: the queue's first job
        times.clear()
        for _ in range(runs):
            one()
        return times
    finally:
        printer.close()


def lp_print(server: CupsServer, queue: CupsQueue, pdf: Path) -> float:
    env = server.env()
    started = time.perf_counter()
    done = subprocess.run(["lp", "-d", queue.name, str(pdf)], env=env, capture_output=True,
                          text=True, timeout=30)
    found = re.search(rf"request id is {re.escape(queue.name)}-(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(f"lp failed ({done.returncode}): {done.stderr.strip()}")
    job = f"{queue.name}-{found.group(1)}"
    deadline = started + JOB_TIMEOUT_S
    while True:
        listed = subprocess.run(["lpstat", "-W", "completed", "-o", queue.name], env=env,
                                capture_output=True, text=True, timeout=30).stdout
        if any(line.split()[:1] == [job] for line in listed.splitlines()):
            elapsed = time.perf_counter() - started
            break
        if time.perf_counter() > deadline:
            raise BenchError(f"{job} not done in {JOB_TIMEOUT_S:g} s")
        time.sleep(LPSTAT_POLL_S)
    # "completed" in lpstat's sense includes aborted and canceled jobs.
    if job_state(server, int(found.group(1))) != JOB_COMPLETED:
        raise BenchError(f"{job} not completed in CUPS")
    return elapsed


def cups_rows(runs: int, workdir: Path) -> None:
    templates = load_templates()
    pdfs = {}
    for kind in KINDS:
        pdfs[kind] = workdir / f"{kind}.pdf"
        pdfs[kind].write_bytes(render_pdf(fresh_document(templates, kind)))
    with running_cupsd() as server:
        queues = {
            "cups-pdf A4 queue": server.add_pdf_queue(server.unique_name("zizhu-pdf")),
            "raw test-backend queue": server.add_test_queue(server.unique_name("zizhu-raw")),
        }
        for where, queue in queues.items():
            for kind in KINDS:
                driver = "CupsReceiptPrinter" if kind == "queue_ticket" else \
                    "CupsDocumentPrinter"
                row(f"{LABELS[kind]} completed, {driver}, {where}",
                    driver_times(server, queue, kind, runs), "driver defaults, render included")
                lp_print(server, queue, pdfs[kind])  # warm-up
                times = [lp_print(server, queue, pdfs[kind]) for _ in range(runs)]
                row(f"{LABELS[kind]} completed, lp + lpstat, {where}", times,
                    f"the driver's PDF, {pdfs[kind].stat().st_size / 1024:.0f} KiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per row (default 10)")
    parser.add_argument("--first-call", nargs=2, metavar=("RENDERER", "KIND"),
                        help=argparse.SUPPRESS)  # the child process of the first-call rows
    args = parser.parse_args(argv)
    if args.first_call:
        first_call_child(*args.first_call)
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(f"| {'measurement':<66} | runs | median ms |   min ms | note |")
    print("|---|---:|---:|---:|---|")
    try:
        render_rows(args.runs)
        missing = cups_missing()
        if missing is None:
            with tempfile.TemporaryDirectory(prefix="zizhu-bench-print-") as tmp:
                cups_rows(args.runs, Path(tmp))
    except BenchError as failed:
        print(f"\nprint bench: {failed}", file=sys.stderr)
        return 1
    print(f"\n{TARGETS}.")
    if missing is not None:
        print(f"print bench: CUPS rows not measured: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
