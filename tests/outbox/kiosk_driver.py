"""The kiosk side of the reliability tests, as a process a test can SIGKILL.

One job (``run``): open the outbox, then enqueue ``count`` submissions and/or drain it to the
back office, writing what happened to an append-only log the test reads:

    ready <pid>                 the outbox is open; the job starts now
    start <marker>              about to enqueue the submission carrying <marker>
    ack <marker> <local no.>    enqueue returned: the citizen would now be told "received"
    done <pid>                  the job finished (it was not killed)

Each line is one ``write(2)`` on an O_APPEND descriptor, so a SIGKILL leaves whole lines only.

Two ways to run it:
- ``python -m tests.outbox.kiosk_driver run '<json job>'``: one job in a fresh process;
- ``python -m tests.outbox.kiosk_driver zygote``: imports everything once, then forks one child
  per job asked for on stdin (``{"spawn": job}`` -> ``{"pid": n}``, ``{"reap": n}`` ->
  ``{"status": s}``). A fork after the imports starts a job in milliseconds instead of a
  second, which is what makes hundreds of kills fit in a minute. Children are ordinary
  processes with their own SQLite connections, opened after the fork.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kiosk.client import (
    NO_RETRY,
    Applicant,
    ApplicationSubmission,
    Commitment,
    HttpBackOffice,
    Material,
    OutgoingSubmission,
    batch_body,
    submission_body,
)
from kiosk.outbox import Backoff, OutboxStore, OutboxWorker, create_key
from tests.outbox.peers import material_bytes

APPLICANT_ID = "110101199003074514"  # fictional, valid check digit (tests/conftest.py)
APPLICANT_NAME = "测试申请人甲"
CENTRE = "TEST-01"
ITEM = "SB001"


def material_sizes(marker: str) -> list[int]:
    """1 or 2 materials of 1-16 kB, decided by the marker so the test can recompute them."""
    seed = sum(marker.encode())
    return [1024 + (seed * 7919 + i * 104729) % (15 * 1024) for i in range(1 + seed % 2)]


def submission(marker: str, kiosk_id: str) -> ApplicationSubmission:
    return ApplicationSubmission(
        centre_id=CENTRE, kiosk_id=kiosk_id, session_id=f"session-{marker}",
        service_item_code=ITEM,
        applicant=Applicant("residentId", APPLICANT_ID, APPLICANT_NAME),
        form={"marker": marker, "address": "测试省测试市测试路1号", "phone": "13800000000"},
        commitment=Commitment("GZCN-2030-01", dt.datetime(2030, 1, 2, 9, 0, tzinfo=dt.UTC)),
        materials=tuple(Material(f"M{i + 1}", "image/jpeg", material_bytes(marker, i, size))
                        for i, size in enumerate(material_sizes(marker))))


def _log(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode("utf-8"))


def run(job: dict[str, Any]) -> int:
    """Run one job; returns the exit status (0: finished)."""
    log_fd = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = OutboxStore.open(Path(job["data_dir"]), Path(job["key_file"]))
    client = HttpBackOffice(job["url"], timeout_s=job.get("timeout_s", 2.0), retry=NO_RETRY)
    worker = OutboxWorker(store, client, backoff=Backoff(base_s=0.01, max_s=0.05),
                          idle_poll_s=0.02)
    _log(log_fd, f"ready {os.getpid()}")
    mode = job["mode"]
    if mode == "both":
        worker.start()  # delivering while the citizen-facing side enqueues
    if mode in ("both", "enqueue"):
        for i in range(job["count"]):
            marker = f"{job['prefix']}-{i}"
            _log(log_fd, f"start {marker}")
            number = store.enqueue(submission(marker, job["kiosk_id"]))
            _log(log_fd, f"ack {marker} {number}")
    if mode in ("both", "drain"):
        deadline = time.monotonic() + job.get("drain_limit_s", 60.0)
        worker.start()
        while store.stats().pending and time.monotonic() < deadline:
            time.sleep(0.01)
    worker.stop()
    pending = store.stats().pending
    store.close()
    client.close()
    if mode in ("both", "drain") and pending:
        return 3
    _log(log_fd, f"done {os.getpid()}")
    return 0


def _child(job: dict[str, Any]) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stdout is the zygote's answer channel
    try:
        status = run(job)
    except BaseException:
        logging.getLogger("kiosk_driver").exception("job failed")
        status = 4
    finally:
        logging.shutdown()
    os._exit(status)


def _warm_up() -> None:
    """Run every code path once in a scratch outbox, then close it all: forked children inherit
    the loaded migration scripts, configured mappers and compiled statements. Nothing stays
    open across the fork (SQLite forbids carrying a connection into a child)."""
    with tempfile.TemporaryDirectory(prefix="zygote-") as scratch:
        folder = Path(scratch)
        key_file = create_key(folder / "key")
        with OutboxStore.open(folder / "data", key_file) as store:
            number = store.enqueue(submission("warm-up", "K-WARM-UP"))
            head = store.next_pending()
            assert head is not None
            submission_body(head.submission, number)
            (batched,) = store.pending_batch(8, 1 << 20).deliveries
            batch_body([OutgoingSubmission(batched.submission, number, batched.idempotency_key)])
            store.record_failure(head.row_id, "warm_up")
            store.mark_delivered(head.row_id, "BJ-WARM-UP")
            store.lookup(number)
            store.stats()
        HttpBackOffice("http://127.0.0.1:9", retry=NO_RETRY).close()
    gc.collect()
    gc.freeze()  # fewer copy-on-write page faults in the children


def zygote() -> int:
    _warm_up()
    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(request["spawn"])
            answer: dict[str, Any] = {"pid": pid}
        elif "reap" in request:
            _pid, status = os.waitpid(int(request["reap"]), 0)
            answer = {"status": os.waitstatus_to_exitcode(status)}
        else:
            answer = {"error": "unknown request"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(process)d %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["run"] and len(argv) == 2:
        return run(json.loads(argv[1]))
    if argv == ["zygote"]:
        return zygote()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
