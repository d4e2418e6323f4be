"""Delivers the outbox to the back office, oldest first, on a background thread.

In enqueue order, a batch at a time: the oldest pending submissions (up to ``max_items`` and
``max_bytes`` of materials) go in one ``POST /applications:batch``, which the back office
stores in that order and answers item by item. Each acknowledged item is recorded and deleted,
each refused one is quarantined, and the queue moves on; when the outcome is unknown (network,
5xx, garbage) the whole batch stays pending and goes again after a backoff. One request at a
time, so the back office sees the submissions in queue order. Nothing about delivery lives only
in memory: after a restart the worker simply starts again from the oldest pending row, and each
row's stored idempotency key turns any resend of an already-accepted submission into a replay
of the first answer, whether it goes alone or in another batch.

A failed batch halves the next one (down to one submission) and each good one doubles it back
up to ``BatchLimits.max_items``: when the back office keeps failing on one submission (a 5xx it
hits on that one only), the submissions queued before it still go, and that one waits alone at
the head, as it would without batches. After an outage the size is back to full in a few steps.

While the back office stores batch k+1, the thread records batch k's answers (receipts, deletes,
quarantines) on a helper thread; the rows stay pending until that commits, so a crash in
between only means a resend, which the keys make a replay.

Why batches (bench/outbox.py, 2 000 submissions of 200 kB on loopback, 2 CPUs): one JSON
request per submission, materials in base64, drained about 40 a second, the back office
spending 11.5 ms of CPU and the kiosk 12 ms per submission, mostly per-request HTTP work, base64
and a commit each. Batches of 8 with raw bytes: about 120 a second at 5.7 and 3.0 ms. Several
single requests in flight at once were no faster than one: the back office's SQLite writers
then queue on its busy timeout. A back office that does not know the batch endpoint (or
refuses a batch as a whole) gets the old ``POST /applications``, one at a time.

Backoff while the back office is down, slow, failing or answering garbage: exponential from
``base_s`` to ``max_s`` with "equal jitter" (a delay in [d/2, d]) so that a centre's kiosks do
not all come back at the same instant after an outage, and never a tight loop.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from flows.ports import BackOfficeError
from kiosk.client import (
    ApplicationSubmission,
    BatchOutcome,
    BatchRefused,
    OutgoingSubmission,
    SubmissionReceipt,
    SubmissionRejected,
)
from kiosk.outbox.store import OutboxStats, OutboxStore, PendingDelivery

log = logging.getLogger(__name__)

RECEIPT_RETENTION = timedelta(days=90)
# After a back office refused a batch as a whole, how long to send one at a time before trying
# a batch again (it may have been upgraded meanwhile).
SINGLE_AFTER_REFUSAL_S = 600.0


class ApplicationSender(Protocol):
    """What the worker needs from the back-office client (``kiosk.client.HttpBackOffice``)."""

    def submit_application(self, submission: ApplicationSubmission, *,
                           local_tracking_number: str,
                           idempotency_key: str) -> SubmissionReceipt: ...

    def submit_applications(self,
                            batch: Sequence[OutgoingSubmission]) -> list[BatchOutcome]: ...


class Outcome(enum.Enum):
    EMPTY = "empty"  # nothing waits
    DELIVERED = "delivered"
    QUARANTINED = "quarantined"
    RETRY_LATER = "retry_later"  # the head stays; back off


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    max_s: float = 300.0

    def delay(self, consecutive_failures: int, rng: random.Random) -> float:
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, consecutive_failures - 1))
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class BatchLimits:
    """How much one delivery request carries (the back office takes up to 32 submissions).
    8 x 200 kB photos is about 1.6 MB; the client's timeout applies to each read and write on
    the socket, not to the whole upload, so a slow uplink makes a batch slow, not a failure."""

    max_items: int = 8
    max_bytes: int = 4 * 1024 * 1024  # materials; a larger single submission goes alone


@dataclass(frozen=True)
class StepResult:
    """What one delivery step did."""

    delivered: int = 0
    quarantined: int = 0
    failed: bool = False  # the outcome is unknown: everything sent stays pending
    last_row_id: int = 0  # the last row sent and answered

    @property
    def outcome(self) -> Outcome:
        if self.failed:
            return Outcome.RETRY_LATER
        if self.delivered:
            return Outcome.DELIVERED
        if self.quarantined:
            return Outcome.QUARANTINED
        return Outcome.EMPTY


@dataclass(frozen=True)
class OutboxHealth:
    """The outbox part of the kiosk's heartbeat; no personal data."""

    pending: int
    quarantined: int
    oldest_pending_age_s: float | None
    consecutive_failures: int
    last_error: str | None
    last_delivery_at: datetime | None
    running: bool


class OutboxWorker:
    """``worker.start()`` at kiosk start, ``worker.stop()`` at shutdown. ``deliver_next()`` and
    ``drain()`` run the same steps synchronously (tests, maintenance, benchmark)."""

    def __init__(self, store: OutboxStore, sender: ApplicationSender, *,
                 backoff: Backoff | None = None, idle_poll_s: float = 30.0,
                 rng: random.Random | None = None,
                 clock: Callable[[], datetime] | None = None,
                 batch: BatchLimits | None = None) -> None:
        self._store = store
        self._sender = sender
        self._batch = batch or BatchLimits()
        # Halved after a failed batch, doubled after a good one (up to the limit): see above.
        self._batch_items = self._batch.max_items
        self._single_until = 0.0  # monotonic: send one at a time until then
        self._backoff = backoff or Backoff()
        self._idle_poll_s = idle_poll_s
        self._rng = rng or random.Random()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one delivery step at a time, thread or caller
        self._failures = 0
        self._last_error: str | None = None
        self._last_delivery_at: datetime | None = None
        self._recorder: Executor | None = None  # the thread's; records answers meanwhile
        self._recording: Future[None] | None = None
        store.subscribe(self.notify)

    # -- lifecycle --

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        try:
            pruned = self._store.prune_receipts(RECEIPT_RETENTION)
            if pruned:
                log.info("outbox: %d old receipts pruned", pruned)
        except Exception:  # housekeeping must not keep delivery from starting
            log.exception("outbox: pruning receipts failed")
        self._thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the thread to stop and wait; False if it is still in a request after
        ``timeout_s`` (it stops when that returns; the row stays pending and is resent)."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("outbox: worker still busy after %.1f s", timeout_s)
            return False
        self._thread = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def notify(self) -> None:
        """Something was enqueued: wake the worker if it is idle (not if it is backing off:
        a new submission does not make the back office come back sooner)."""
        self._wake.set()

    # -- status --

    def health(self) -> OutboxHealth:
        stats: OutboxStats = self._store.stats()
        return OutboxHealth(
            pending=stats.pending, quarantined=stats.quarantined,
            oldest_pending_age_s=stats.oldest_pending_age_s,
            consecutive_failures=self._failures, last_error=self._last_error,
            last_delivery_at=self._last_delivery_at, running=self.running)

    # -- delivery --

    def deliver_next(self) -> Outcome:
        """One step: send the head of the queue (a batch) and record what came of it."""
        return self.step().outcome

    def step(self) -> StepResult:
        """``deliver_next`` with the counts; recorded in the outbox before it returns."""
        with self._lock:
            self._settle()
            return self._step(after_id=0, overlap=False)

    def drain(self, max_failures: int = 1) -> int:
        """Deliver until the queue is empty, or until ``max_failures`` consecutive attempts
        failed; returns how many were delivered. No backoff pauses: for maintenance and
        tests, where the caller decides when to try again."""
        delivered = 0
        failures = 0
        while True:
            result = self.step()
            delivered += result.delivered
            if result.outcome is Outcome.EMPTY:
                return delivered
            if result.failed:
                failures += 1
                if failures >= max_failures:
                    return delivered
            else:
                failures = 0

    def _step(self, after_id: int, overlap: bool) -> StepResult:
        """Send the oldest pending batch after row ``after_id``. With ``overlap`` the answer is
        recorded on the recorder thread while the caller goes on with the next batch."""
        single = time.monotonic() < self._single_until
        batch = self._store.pending_batch(1 if single else self._batch_items,
                                          self._batch.max_bytes, after_id=after_id)
        unreadable = len(batch.unreadable)
        for bad in batch.unreadable:
            log.error("outbox: %s cannot be opened (%s); quarantined",
                      bad.local_tracking_number, bad)
            self._store.quarantine(bad.row_id, "sealed_data_unreadable")
        if not batch.deliveries:
            return StepResult(quarantined=unreadable,
                              last_row_id=max((u.row_id for u in batch.unreadable), default=0))
        try:
            result, record = self._send(batch.deliveries, single)
        finally:
            del batch  # the opened personal data goes as soon as the attempt is over
        if overlap and not result.failed:
            assert self._recorder is not None, "overlap is the thread's, which has a recorder"
            self._settle()  # the previous batch's, recorded while this one was on its way
            self._recording = self._recorder.submit(record)
        else:
            self._settle()
            record()
        return dataclasses.replace(result, quarantined=result.quarantined + unreadable)

    def _send(self, deliveries: list[PendingDelivery],
              single: bool) -> tuple[StepResult, Callable[[], None]]:
        """Send ``deliveries``; returns what came of it and how to record that in the outbox
        (row ids and 办件编号 only: nothing personal waits in the recorder)."""
        last = deliveries[-1].row_id
        try:
            if single:
                outcomes = [self._send_one(delivery) for delivery in deliveries]
            else:
                outcomes = self._sender.submit_applications(
                    [OutgoingSubmission(d.submission, d.local_tracking_number, d.idempotency_key)
                     for d in deliveries])
        except BatchRefused as exc:
            log.warning("outbox: the back office refused a batch (%s); sending one at a time "
                        "for %.0f s", exc, SINGLE_AFTER_REFUSAL_S)
            self._single_until = time.monotonic() + SINGLE_AFTER_REFUSAL_S
            return self._send(deliveries[:1], single=True)
        except BackOfficeError as exc:
            # Unknown outcome (maybe stored, answer lost): the same keys go again later.
            self._failures += 1
            self._last_error = exc.code
            log.info("outbox: %d submission(s) from %s not delivered (attempt %d: %s)",
                     len(deliveries), deliveries[0].local_tracking_number,
                     deliveries[0].attempts + 1, exc.code)
            self._batch_items = max(1, len(deliveries) // 2)
            ids = [d.row_id for d in deliveries]
            code = exc.code
            return StepResult(failed=True), lambda: self._store.record_failures(ids, code)
        acknowledged: list[tuple[int, str]] = []
        refused: list[tuple[int, str]] = []
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, SubmissionRejected):
                refused.append((delivery.row_id, f"{outcome.status} {outcome.error}"))
            else:
                acknowledged.append((delivery.row_id, outcome.tracking_number))
        self._failures = 0
        self._last_error = None
        self._batch_items = min(self._batch.max_items, self._batch_items * 2)
        if acknowledged:
            self._last_delivery_at = self._clock()

        def record() -> None:
            for row_id, error in refused:
                self._store.quarantine(row_id, error)
            self._store.mark_delivered_many(acknowledged)

        return StepResult(delivered=len(acknowledged), quarantined=len(refused),
                          last_row_id=last), record

    def _send_one(self, delivery: PendingDelivery) -> BatchOutcome:
        try:
            return self._sender.submit_application(
                delivery.submission, local_tracking_number=delivery.local_tracking_number,
                idempotency_key=delivery.idempotency_key)
        except SubmissionRejected as exc:
            return exc

    def _settle(self) -> None:
        """Wait until the batch being recorded is recorded; re-raises what recording raised."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.result()

    def _run(self) -> None:
        log.info("outbox: worker started")
        was_busy = False
        # Rows up to ``cursor`` were sent and answered; their recording may still be under way
        # (they are still pending in the file), so the next batch starts after them. Back to
        # the queue's head when it runs dry or a step fails: a row that went back to pending
        # meanwhile (a failed recording, staff requeueing one) is then sent again.
        cursor = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-record") as recorder:
            self._recorder = recorder
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    with self._lock:
                        result = self._step(after_id=cursor, overlap=True)
                        if result.outcome is Outcome.EMPTY and cursor:
                            self._settle()
                            result = self._step(after_id=0, overlap=True)
                        if result.outcome in (Outcome.EMPTY, Outcome.RETRY_LATER):
                            self._settle()
                    cursor = result.last_row_id
                    outcome = result.outcome
                except Exception as exc:
                    # A database or programming error: keep the thread, back off, say it loudly.
                    log.exception("outbox: delivery step failed")
                    self._failures += 1
                    self._last_error = type(exc).__name__
                    outcome = Outcome.RETRY_LATER
                    cursor = 0
                    self._settle_quietly()
                if outcome is Outcome.EMPTY:
                    if was_busy:
                        self._compact()
                    was_busy = False
                    self._wake.wait(self._idle_poll_s)
                elif outcome is Outcome.RETRY_LATER:
                    was_busy = True
                    self._stopping.wait(self._backoff.delay(max(1, self._failures), self._rng))
                else:
                    was_busy = True
            self._settle_quietly()
        log.info("outbox: worker stopped")

    def _settle_quietly(self) -> None:
        try:
            with self._lock:
                self._settle()
        except Exception:
            # Its rows are still pending: they go again, and their keys make that a replay.
            log.exception("outbox: recording a delivered batch failed; it will be sent again")

    def _compact(self) -> None:
        try:
            self._store.compact(self._stopping.is_set)
        except Exception:
            log.exception("outbox: compaction failed")
