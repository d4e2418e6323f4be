"""Delivers the outbox to the back office, oldest first, on a background thread.

One submission at a time, in enqueue order: the head is retried (with backoff) until the back
office acknowledges it or refuses it as invalid; a refused one is quarantined and the queue
moves on. Nothing about delivery lives only in memory: after a restart the worker simply starts
again from the oldest pending row, and the row's stored idempotency key turns any resend of an
already-accepted submission into a replay of the first answer.

Backoff while the back office is down, slow, failing or answering garbage: exponential from
``base_s`` to ``max_s`` with "equal jitter" (a delay in [d/2, d]) so that a centre's kiosks do
not all come back at the same instant after an outage, and never a tight loop.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from flows.ports import BackOfficeError
from kiosk.client import ApplicationSubmission, SubmissionReceipt, SubmissionRejected
from kiosk.outbox.store import OutboxStats, OutboxStore, UnreadableSubmission

log = logging.getLogger(__name__)

RECEIPT_RETENTION = timedelta(days=90)


class ApplicationSender(Protocol):
    """What the worker needs from the back-office client (``kiosk.client.HttpBackOffice``)."""

    def submit_application(self, submission: ApplicationSubmission, *,
                           local_tracking_number: str,
                           idempotency_key: str) -> SubmissionReceipt: ...


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
                 clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._sender = sender
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
        """One step: send the head of the queue and record what came of it."""
        with self._lock:
            return self._deliver_next()

    def drain(self, max_failures: int = 1) -> int:
        """Deliver until the queue is empty, or until ``max_failures`` consecutive attempts
        failed; returns how many were delivered. No backoff pauses: for maintenance and
        tests, where the caller decides when to try again."""
        delivered = 0
        failures = 0
        while True:
            outcome = self.deliver_next()
            if outcome is Outcome.EMPTY:
                return delivered
            if outcome is Outcome.DELIVERED:
                delivered += 1
                failures = 0
            elif outcome is Outcome.RETRY_LATER:
                failures += 1
                if failures >= max_failures:
                    return delivered

    def _deliver_next(self) -> Outcome:
        try:
            item = self._store.next_pending()
        except UnreadableSubmission as exc:
            log.error("outbox: %s cannot be opened (%s); quarantined",
                      exc.local_tracking_number, exc)
            self._store.quarantine(exc.row_id, "sealed_data_unreadable")
            return Outcome.QUARANTINED
        if item is None:
            return Outcome.EMPTY
        row_id, number = item.row_id, item.local_tracking_number
        try:
            receipt = self._sender.submit_application(
                item.submission, local_tracking_number=number,
                idempotency_key=item.idempotency_key)
        except SubmissionRejected as exc:
            self._store.quarantine(row_id, f"{exc.status} {exc.error}")
            self._failures = 0
            return Outcome.QUARANTINED
        except BackOfficeError as exc:
            # Unknown outcome (maybe stored, answer lost): the same key goes again later.
            self._failures += 1
            self._last_error = exc.code
            log.info("outbox: %s not delivered (attempt %d: %s)", number, item.attempts + 1,
                     exc.code)
            self._store.record_failure(row_id, exc.code)
            return Outcome.RETRY_LATER
        finally:
            del item  # the opened personal data goes as soon as the attempt is over
        self._store.mark_delivered(row_id, receipt.tracking_number)
        self._failures = 0
        self._last_error = None
        self._last_delivery_at = self._clock()
        return Outcome.DELIVERED

    def _run(self) -> None:
        log.info("outbox: worker started")
        was_busy = False
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                outcome = self.deliver_next()
            except Exception as exc:
                # A database or programming error: keep the thread, back off, say it loudly.
                log.exception("outbox: delivery step failed")
                self._failures += 1
                self._last_error = type(exc).__name__
                outcome = Outcome.RETRY_LATER
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
        log.info("outbox: worker stopped")

    def _compact(self) -> None:
        try:
            self._store.compact(self._stopping.is_set)
        except Exception:
            log.exception("outbox: compaction failed")
