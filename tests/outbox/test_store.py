"""OutboxStore on a real SQLite file: durability, order, states, lookups, housekeeping."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.client import Material
from kiosk.outbox import InvalidSubmission, OutboxStore
from tests.outbox.kiosk_driver import APPLICANT_ID, APPLICANT_NAME, submission


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(tmp_path: Path, key_file: Path, clock: Clock):
    with OutboxStore.open(tmp_path / "data", key_file, clock=clock) as opened:
        yield opened


def raw(store: OutboxStore) -> sqlite3.Connection:
    return sqlite3.connect(store.database.path)


def test_enqueue_is_committed_when_it_returns(store: OutboxStore) -> None:
    number = store.enqueue(submission("m-1", "K-STORE"))
    assert re.fullmatch(r"ZZ-\d{8}-[0-9A-HJKMNP-TV-Z]{10}", number)
    # Another connection (as another process would) sees the row and its materials at once.
    connection = raw(store)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM outbox_submissions WHERE local_tracking_number = ?",
            (number,)).fetchone()
        (materials,) = connection.execute("SELECT count(*) FROM outbox_materials").fetchone()
        (sync,) = connection.execute("PRAGMA journal_mode").fetchone()
    finally:
        connection.close()
    assert count == 1
    assert materials == len(submission("m-1", "K-STORE").materials)
    assert sync == "wal"


def test_pragmas_of_the_outbox_connection(store: OutboxStore) -> None:
    with store.database.engine.connect() as connection:
        values = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "secure_delete", "auto_vacuum",
                               "foreign_keys")}
    # synchronous 2 = FULL; auto_vacuum 2 = INCREMENTAL
    assert values == {"journal_mode": "wal", "synchronous": 2, "secure_delete": 1,
                      "auto_vacuum": 2, "foreign_keys": 1}


def test_fifo_order_and_opened_content(store: OutboxStore) -> None:
    numbers = [store.enqueue(submission(f"fifo-{i}", "K-STORE")) for i in range(4)]
    seen = []
    while (head := store.next_pending()) is not None:
        seen.append(head.local_tracking_number)
        original = submission(f"fifo-{len(seen) - 1}", "K-STORE")
        assert head.submission.applicant == original.applicant
        assert dict(head.submission.form) == dict(original.form)
        assert head.submission.materials == original.materials
        assert head.submission.commitment == original.commitment
        store.mark_delivered(head.row_id, f"BJ-{len(seen)}")
    assert seen == numbers


def test_delivery_deletes_the_copy_and_keeps_the_receipt(store: OutboxStore) -> None:
    number = store.enqueue(submission("deliver", "K-STORE"))
    head = store.next_pending()
    assert head is not None
    store.mark_delivered(head.row_id, "BJ20300102000001")
    store.mark_delivered(head.row_id, "BJ20300102000001")  # a repeat is harmless
    connection = raw(store)
    try:
        counts = [connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("outbox_submissions", "outbox_materials", "outbox_receipts")]
    finally:
        connection.close()
    assert counts == [0, 0, 1]
    entry = store.lookup(number)
    assert entry is not None and entry.state == "delivered"
    assert entry.tracking_number == "BJ20300102000001"
    assert store.lookup("ZZ-20300102-0000000000") is None


def test_idempotency_key_is_made_at_enqueue_and_survives_reopening(
        tmp_path: Path, key_file: Path) -> None:
    with OutboxStore.open(tmp_path / "d", key_file) as first:
        first.enqueue(submission("key", "K-STORE"))
        head = first.next_pending()
        assert head is not None
        key = head.idempotency_key
    with OutboxStore.open(tmp_path / "d", key_file) as second:
        again = second.next_pending()
        assert again is not None and again.idempotency_key == key
        assert len(key) >= 8


def test_failures_are_counted_and_quarantine_leaves_the_queue(
        timed_store: OutboxStore, clock: Clock) -> None:
    first = timed_store.enqueue(submission("q-1", "K-STORE"))
    clock.now += timedelta(minutes=5)
    second = timed_store.enqueue(submission("q-2", "K-STORE"))
    head = timed_store.next_pending()
    assert head is not None and head.local_tracking_number == first
    timed_store.record_failure(head.row_id, "backoffice_unavailable")
    entry = timed_store.lookup(first)
    assert entry is not None
    assert (entry.state, entry.attempts, entry.last_error) == (
        "pending", 1, "backoffice_unavailable")
    clock.now += timedelta(minutes=5)
    stats = timed_store.stats()
    assert (stats.pending, stats.quarantined, stats.oldest_pending_age_s) == (2, 0, 600.0)

    timed_store.quarantine(head.row_id, "422 unknown_service_item")
    after = timed_store.next_pending()
    assert after is not None and after.local_tracking_number == second
    stats = timed_store.stats()
    assert (stats.pending, stats.quarantined, stats.oldest_pending_age_s) == (1, 1, 300.0)
    assert [e.local_tracking_number for e in timed_store.quarantined()] == [first]
    assert timed_store.lookup(first).state == "quarantined"  # type: ignore[union-attr]

    # Staff put it back: it regains its place at the head.
    assert timed_store.requeue(first) is True
    assert timed_store.requeue(first) is False
    requeued = timed_store.next_pending()
    assert requeued is not None and requeued.local_tracking_number == first
    timed_store.quarantine(requeued.row_id, "422 unknown_service_item")
    assert timed_store.discard(first) is True
    assert timed_store.discard(second) is False  # only quarantined rows can be discarded
    assert timed_store.lookup(first) is None
    assert timed_store.stats().quarantined == 0


def test_empty_stats(store: OutboxStore) -> None:
    stats = store.stats()
    assert (stats.pending, stats.quarantined, stats.oldest_pending_at,
            stats.oldest_pending_age_s) == (0, 0, None, None)


@pytest.mark.parametrize("change", [
    {"service_item_code": ""},
    {"service_item_code": "SB 001/.."},
    {"session_id": ""},
    {"materials": (Material("M1", "image/gif", b"x"),)},
    {"materials": (Material("M1", "image/jpeg", b""),)},
    {"materials": (Material("", "image/jpeg", b"x"),)},
    {"form": {"when": datetime(2030, 1, 1, tzinfo=UTC)}},
    {"form": {"nan": float("nan")}},
    {"deferred_materials": ("bad code",)},
], ids=["no-item", "bad-item", "no-session", "media-type", "empty-material",
        "material-code", "form-not-json", "form-nan", "deferred"])
def test_invalid_submissions_are_refused_before_storing(store: OutboxStore, change) -> None:
    bad = dataclasses.replace(submission("bad", "K-STORE"), **change)
    with pytest.raises(InvalidSubmission) as caught:
        store.enqueue(bad)
    assert APPLICANT_ID not in str(caught.value) and APPLICANT_NAME not in str(caught.value)
    assert store.stats().pending == 0


def test_commitment_time_must_be_aware(store: OutboxStore) -> None:
    base = submission("naive", "K-STORE")
    bad = dataclasses.replace(base, commitment=dataclasses.replace(
        base.commitment, signed_at=datetime(2030, 1, 2, 9, 0)))
    with pytest.raises(InvalidSubmission, match="aware"):
        store.enqueue(bad)


def test_listeners_hear_each_enqueue(store: OutboxStore) -> None:
    heard: list[int] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(lambda: heard.append(store.stats().pending))
    first = store.enqueue(submission("l-1", "K-STORE"))  # a broken listener does not fail it
    store.enqueue(submission("l-2", "K-STORE"))
    assert heard == [1, 2]  # called after the commit: the row is already visible
    assert store.lookup(first).state == "pending"  # type: ignore[union-attr]


def test_old_receipts_are_pruned(timed_store: OutboxStore, clock: Clock) -> None:
    old = timed_store.enqueue(submission("old", "K-STORE"))
    timed_store.mark_delivered(timed_store.next_pending().row_id, "BJ-OLD")  # type: ignore[union-attr]
    clock.now += timedelta(days=100)
    new = timed_store.enqueue(submission("new", "K-STORE"))
    timed_store.mark_delivered(timed_store.next_pending().row_id, "BJ-NEW")  # type: ignore[union-attr]
    assert timed_store.prune_receipts(timedelta(days=90)) == 1
    assert timed_store.lookup(old) is None
    assert timed_store.lookup(new).tracking_number == "BJ-NEW"  # type: ignore[union-attr]


def test_delivered_material_leaves_no_trace_and_space_is_returned(store: OutboxStore) -> None:
    big = dataclasses.replace(submission("big", "K-STORE"), materials=tuple(
        Material(f"M{i}", "image/jpeg", bytes([i]) * 300_000) for i in range(1, 4)))
    store.enqueue(big)
    connection = raw(store)
    try:
        sealed = [row[0] for row in connection.execute("SELECT content FROM outbox_materials")]
    finally:
        connection.close()
    store.mark_delivered(store.next_pending().row_id, "BJ-BIG")  # type: ignore[union-attr]
    with store.database.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = store.database.path.read_bytes()
    # secure_delete zeroed the freed pages: not even the sealed bytes stay behind.
    assert all(chunk[n:n + 64] not in data for chunk in sealed for n in (100, 150_000))
    store.compact()
    with store.database.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.database.path.stat().st_size < len(data) / 4


def test_compaction_goes_in_steps_and_can_be_interrupted(store: OutboxStore) -> None:
    from kiosk.outbox.db import COMPACT_STEP_PAGES

    page = Material("M1", "image/jpeg", bytes(range(256)) * 4096)  # 1 MiB: 256 pages
    for i in range(20):
        store.enqueue(dataclasses.replace(submission(f"c-{i}", "K-STORE"), materials=(page,)))
    while (head := store.next_pending()) is not None:
        store.mark_delivered(head.row_id, "BJ")

    def freelist() -> int:
        with store.database.engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)

    before = freelist()
    assert before > 2 * COMPACT_STEP_PAGES
    steps: list[int] = []
    freed = store.compact(should_stop=lambda: (steps.append(1), len(steps) > 1)[1])
    assert freed == COMPACT_STEP_PAGES  # one step, then it stopped when asked
    assert freelist() == before - COMPACT_STEP_PAGES
    store.enqueue(submission("between", "K-STORE"))  # the queue is usable between steps
    assert store.compact() >= before - 2 * COMPACT_STEP_PAGES
    assert freelist() == 0


# --- batches ---------------------------------------------------------------------------------

def _sizes(store: OutboxStore) -> dict[str, int]:
    """Material bytes per waiting local tracking number."""
    connection = raw(store)
    try:
        return dict(connection.execute(
            "SELECT s.local_tracking_number, coalesce(sum(m.size), 0) FROM outbox_submissions s "
            "LEFT JOIN outbox_materials m ON m.submission_id = s.id GROUP BY s.id").fetchall())
    finally:
        connection.close()


def test_a_batch_is_the_oldest_rows_within_its_limits(store: OutboxStore) -> None:
    numbers = [store.enqueue(submission(f"batch-{i}", "K-STORE")) for i in range(6)]
    sizes = _sizes(store)
    assert [d.local_tracking_number for d in store.pending_batch(4).deliveries] == numbers[:4]
    assert [d.local_tracking_number for d in store.pending_batch(10).deliveries] == numbers
    # The byte limit counts materials: the first three fit exactly, the fourth would not.
    budget = sum(sizes[n] for n in numbers[:3])
    assert [d.local_tracking_number
            for d in store.pending_batch(10, budget).deliveries] == numbers[:3]
    assert [d.local_tracking_number
            for d in store.pending_batch(10, budget - 1).deliveries] == numbers[:2]
    # A first row larger than the limit still goes, alone: nothing waits forever.
    assert [d.local_tracking_number for d in store.pending_batch(10, 1).deliveries] == \
        numbers[:1]
    # After a row id: what the worker sends next while the previous answer is being recorded.
    first = store.pending_batch(2).deliveries
    after = store.pending_batch(2, after_id=first[-1].row_id).deliveries
    assert [d.local_tracking_number for d in after] == numbers[2:4]
    opened = {d.local_tracking_number: d for d in store.pending_batch(10).deliveries}
    for i, number in enumerate(numbers):
        assert opened[number].submission.materials == submission(f"batch-{i}",
                                                                 "K-STORE").materials
    assert not store.pending_batch(10, after_id=opened[numbers[-1]].row_id)


def test_an_unreadable_row_does_not_hide_the_rows_behind_it(store: OutboxStore) -> None:
    numbers = [store.enqueue(submission(f"bad-{i}", "K-STORE")) for i in range(3)]
    connection = raw(store)
    try:
        connection.execute("UPDATE outbox_submissions SET payload = X'0100' "
                           "WHERE local_tracking_number = ?", (numbers[1],))
        connection.commit()
    finally:
        connection.close()
    batch = store.pending_batch(10)
    assert [d.local_tracking_number for d in batch.deliveries] == [numbers[0], numbers[2]]
    assert [u.local_tracking_number for u in batch.unreadable] == [numbers[1]]
    assert APPLICANT_ID not in repr(batch) and APPLICANT_NAME not in repr(batch)


def test_a_batch_is_recorded_in_one_go(store: OutboxStore) -> None:
    numbers = [store.enqueue(submission(f"many-{i}", "K-STORE")) for i in range(4)]
    batch = store.pending_batch(3).deliveries
    acknowledged = [(d.row_id, f"BJ2030010200000{i}") for i, d in enumerate(batch)]
    store.mark_delivered_many(acknowledged)
    store.mark_delivered_many(acknowledged)  # a repeat is harmless
    store.mark_delivered_many([])
    for i, number in enumerate(numbers[:3]):
        entry = store.lookup(number)
        assert entry is not None and entry.state == "delivered"
        assert entry.tracking_number == f"BJ2030010200000{i}"
    assert [d.local_tracking_number for d in store.pending_batch(10).deliveries] == numbers[3:]
    assert _sizes(store).keys() == {numbers[3]}
    store.record_failures([store.pending_batch(1).deliveries[0].row_id], "backoffice_down")
    entry = store.lookup(numbers[3])
    assert entry is not None and (entry.attempts, entry.last_error) == (1, "backoffice_down")
