"""OutboxWorker against the real back office on loopback: order, acknowledgement, quarantine,
restarts and replays, the background thread, the heartbeat figures."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.ports import ApplicationStatus, BackOfficeUnavailable
from kiosk.client import NO_RETRY, HttpBackOffice, OutgoingSubmission, SubmissionReceipt
from kiosk.outbox import Backoff, BatchLimits, OutboxStore, OutboxWorker, Outcome
from tests.outbox.kiosk_driver import APPLICANT_ID, submission
from tests.outbox.peers import FaultProxy, stored_applications


@pytest.fixture
def client(outbox_server) -> Iterator[HttpBackOffice]:
    with HttpBackOffice(outbox_server.url, timeout_s=10, retry=NO_RETRY) as bo:
        yield bo


def wait_until(condition, limit_s: float = 30.0) -> None:
    """Liveness bound, not a timing assertion: fails only if it never happens."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_drains_in_order_and_records_the_tracking_numbers(store, client, outbox_server) -> None:
    kiosk = "K-WORKER-ORDER"
    numbers = [store.enqueue(submission(f"order-{i}", kiosk)) for i in range(6)]
    worker = OutboxWorker(store, client)
    assert worker.drain() == 6
    assert worker.deliver_next() is Outcome.EMPTY
    stored = stored_applications(outbox_server.db_url, kiosk)
    # 办件编号 are issued in arrival order: the server saw them in enqueue order.
    assert [s.local_tracking_number for s in stored] == numbers
    for s in stored:
        entry = store.lookup(s.local_tracking_number)
        assert entry is not None and entry.state == "delivered"
        assert entry.tracking_number == s.tracking_number
        # The progress query works with either number.
        assert client.application_progress(s.local_tracking_number).tracking_number == \
            s.tracking_number
        progress = client.application_progress(s.tracking_number)
        assert progress.status is ApplicationStatus.SUBMITTED
    health = worker.health()
    assert (health.pending, health.quarantined, health.consecutive_failures) == (0, 0, 0)
    assert health.last_delivery_at is not None


def test_delivers_in_batches_within_the_limits(store, outbox_server) -> None:
    kiosk = "K-WORKER-BATCH"
    numbers = [store.enqueue(submission(f"batch-{i}", kiosk)) for i in range(10)]
    proxy = FaultProxy(outbox_server.url)
    try:
        with HttpBackOffice(proxy.url, timeout_s=10, retry=NO_RETRY) as client:
            worker = OutboxWorker(store, client, batch=BatchLimits(max_items=4))
            first = worker.step()
            assert (first.delivered, first.quarantined, first.failed) == (4, 0, False)
            assert worker.drain() == 6
    finally:
        proxy.close()
    assert proxy.paths == ["/api/v1/applications:batch"] * 3  # 4 + 4 + 2
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [s.local_tracking_number for s in stored] == numbers


def test_submitted_applications_are_found_by_id_number(store, client) -> None:
    number = store.enqueue(submission("search-1", "K-WORKER-SEARCH"))
    OutboxWorker(store, client).drain()
    entry = store.lookup(number)
    assert entry is not None and entry.tracking_number
    found = client.find_applications(id_number=APPLICANT_ID, document_type="residentId",
                                     session_id="s")
    mine = [a for a in found if a.tracking_number == entry.tracking_number]
    assert len(mine) == 1
    assert (mine[0].service_name, mine[0].status) == ("社会保障卡申领",
                                                      ApplicationStatus.SUBMITTED)


def test_rejected_submission_is_quarantined_and_the_queue_moves_on(store, client,
                                                                   outbox_server) -> None:
    kiosk = "K-WORKER-QUARANTINE"
    first = store.enqueue(submission("q-ok-1", kiosk))
    # Valid for the kiosk, refused by the back office: this centre has no such item.
    bad = store.enqueue(dataclasses.replace(submission("q-bad", kiosk),
                                            service_item_code="NO-SUCH-ITEM"))
    last = store.enqueue(submission("q-ok-2", kiosk))
    worker = OutboxWorker(store, client)
    assert worker.drain() == 2
    entry = store.lookup(bad)
    assert entry is not None and entry.state == "quarantined"
    assert entry.last_error == "422 unknown_service_item"
    health = worker.health()
    assert (health.pending, health.quarantined) == (0, 1)
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [s.local_tracking_number for s in stored] == [first, last]


def test_resend_after_a_crash_is_a_replay_not_a_second_application(
        tmp_path: Path, key_file: Path, client, outbox_server) -> None:
    kiosk = "K-WORKER-CRASH"
    with OutboxStore.open(tmp_path / "d", key_file) as store:
        number = store.enqueue(submission("crash-1", kiosk))
        head = store.next_pending()
        assert head is not None
        # The kiosk sent it and the back office stored it, then the kiosk died before
        # recording the acknowledgement.
        first = client.submit_application(head.submission, local_tracking_number=number,
                                          idempotency_key=head.idempotency_key)
        assert first.replayed is False
    with OutboxStore.open(tmp_path / "d", key_file) as store:
        worker = OutboxWorker(store, client)
        assert worker.drain() == 1
        entry = store.lookup(number)
        assert entry is not None and entry.tracking_number == first.tracking_number
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [(s.tracking_number, s.marker) for s in stored] == [(first.tracking_number,
                                                                 "crash-1")]


def test_tampered_row_is_quarantined_not_sent(store, client, outbox_server) -> None:
    kiosk = "K-WORKER-TAMPER"
    bad = store.enqueue(submission("tamper-1", kiosk))
    good = store.enqueue(submission("tamper-2", kiosk))
    connection = sqlite3.connect(store.database.path)
    try:
        material_id, content = connection.execute(
            "SELECT m.id, m.content FROM outbox_materials m JOIN outbox_submissions s "
            "ON s.id = m.submission_id WHERE s.local_tracking_number = ?", (bad,)).fetchone()
        altered = bytearray(content)
        altered[40] ^= 0xFF  # one bit pattern changed inside the ciphertext
        connection.execute("UPDATE outbox_materials SET content = ? WHERE id = ?",
                           (bytes(altered), material_id))
        connection.commit()
    finally:
        connection.close()
    assert OutboxWorker(store, client).drain() == 1
    entry = store.lookup(bad)
    assert entry is not None and entry.state == "quarantined"
    assert entry.last_error == "sealed_data_unreadable"
    assert [s.local_tracking_number for s in
            stored_applications(outbox_server.db_url, kiosk)] == [good]


def test_background_thread_delivers_what_is_enqueued(store, client, outbox_server) -> None:
    kiosk = "K-WORKER-THREAD"
    worker = OutboxWorker(store, client, idle_poll_s=60)  # only notify() can wake it in time
    worker.start()
    try:
        assert worker.running
        numbers = [store.enqueue(submission(f"thread-{i}", kiosk)) for i in range(3)]
        wait_until(lambda: store.stats().pending == 0)
    finally:
        assert worker.stop() is True
    assert not worker.running
    assert [s.local_tracking_number for s in
            stored_applications(outbox_server.db_url, kiosk)] == numbers


def test_a_failed_recording_is_sent_again_and_replayed(store, client, outbox_server,
                                                       monkeypatch) -> None:
    """The thread records a batch's answer while the next batch is on its way; when recording
    fails, those rows are still pending, go again, and are replays, not second applications."""
    kiosk = "K-WORKER-RECORD"
    numbers = [store.enqueue(submission(f"record-{i}", kiosk)) for i in range(7)]
    real = store.mark_delivered_many
    calls: list[int] = []

    def flaky_record(acknowledged: list[tuple[int, str]]) -> None:
        calls.append(len(acknowledged))
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        real(acknowledged)

    monkeypatch.setattr(store, "mark_delivered_many", flaky_record)
    worker = OutboxWorker(store, client, backoff=Backoff(base_s=0.01, max_s=0.02),
                          idle_poll_s=0.05, batch=BatchLimits(max_items=2))
    worker.start()
    try:
        wait_until(lambda: store.stats().pending == 0)
    finally:
        assert worker.stop() is True
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [s.local_tracking_number for s in stored] == numbers  # once each, in order
    for s in stored:
        entry = store.lookup(s.local_tracking_number)
        assert entry is not None and entry.tracking_number == s.tracking_number
    assert sum(calls) > len(numbers)  # the first batch was answered twice (a replay)


class Choking:
    """A back office that fails (unknown outcome) on any batch of more than ``fits``."""

    def __init__(self, fits: int) -> None:
        self.fits = fits
        self.sizes: list[int] = []

    def submit_application(self, *_args: object, **_kwargs: object) -> SubmissionReceipt:
        raise AssertionError("the batch endpoint is there")

    def submit_applications(self, batch: list[OutgoingSubmission]) -> list[SubmissionReceipt]:
        self.sizes.append(len(batch))
        if len(batch) > self.fits:
            raise BackOfficeUnavailable("submit applications: HTTP 500 (simulated)")
        now = datetime.now(UTC)
        return [SubmissionReceipt(f"BJ{o.local_tracking_number[-10:]}", o.local_tracking_number,
                                  ApplicationStatus.SUBMITTED, now, False) for o in batch]


def test_a_failing_batch_shrinks_until_it_goes(store) -> None:
    numbers = [store.enqueue(submission(f"shrink-{i}", "K-WORKER-SHRINK")) for i in range(12)]
    sender = Choking(fits=3)
    worker = OutboxWorker(store, sender, batch=BatchLimits(max_items=8))
    assert worker.drain(max_failures=3) == 12
    # 8 fails, 4 fails, 2 goes, then 4 would fail again... it doubles after each success and
    # halves after each failure, so the queue keeps moving with what the back office takes.
    sizes = sender.sizes
    assert sizes[:3] == [8, 4, 2]
    for before, after in zip(sizes, sizes[1:], strict=False):
        assert after <= (before // 2 if before > 3 else before * 2)
    assert sum(size for size in sizes if size <= 3) == 12  # every one delivered once
    for number in numbers:
        entry = store.lookup(number)
        assert entry is not None and entry.state == "delivered"


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import random

    backoff = Backoff(base_s=1.0, max_s=60.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)]:
        delays = {backoff.delay(failures, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not one fixed value
