"""The back office down, slow (answers after the client's timeout), failing with 500, answering
garbage: nothing is lost, nothing is duplicated, and the kiosk side keeps working.

The faults come from a proxy in front of the real back office (tests/outbox/peers.py), so the
back office really does store a submission whose answer the kiosk never gets, and really does
receive a resend while the first attempt is still on its way."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.ports import BackOfficeUnavailable
from kiosk.client import HttpBackOffice, RetryPolicy
from kiosk.launcher import free_port
from kiosk.outbox import Backoff, BatchLimits, OutboxStore, OutboxWorker
from kiosk.outbox.store import OutboxEntry
from tests.outbox.fixtures import start_server
from tests.outbox.kiosk_driver import submission
from tests.outbox.peers import FAULTS, FaultProxy, material_digest, stored_applications

CLIENT_TIMEOUT_S = 0.25
FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)
FAST_BACKOFF = Backoff(base_s=0.01, max_s=0.05)


@pytest.fixture
def proxy(outbox_server) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(outbox_server.url, hold_s=CLIENT_TIMEOUT_S * 2)
    yield fault_proxy
    fault_proxy.close()


def wait_until(condition, limit_s: float = 60.0) -> None:
    """Liveness bound, not a timing assertion: fails only if it never happens."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def assert_delivered_exactly_once(store: OutboxStore, server_db: str, kiosk: str,
                                  enqueued: dict[str, str]) -> None:
    """``enqueued``: marker -> local tracking number, for everything the kiosk accepted."""
    stored = stored_applications(server_db, kiosk)
    markers = [s.marker for s in stored]
    assert sorted(markers) == sorted(enqueued), "lost or duplicated submissions"
    for app in stored:
        assert app.marker is not None
        assert app.local_tracking_number == enqueued[app.marker]
        sizes = [len(m.content) for m in submission(app.marker, kiosk).materials]
        assert app.material_digests == tuple(material_digest(app.marker, i, size)
                                             for i, size in enumerate(sizes))
        entry = store.lookup(app.local_tracking_number)
        assert entry == OutboxEntry(app.local_tracking_number, "delivered",
                                    tracking_number=app.tracking_number)
    stats = store.stats()
    assert (stats.pending, stats.quarantined) == (0, 0)


@pytest.mark.parametrize(("seed", "batch_items"), [(1, 8), (2, 3), (3, 1)])
def test_random_faults_lose_and_duplicate_nothing(seed: int, batch_items: int,
                                                  store: OutboxStore, proxy: FaultProxy,
                                                  outbox_server) -> None:
    rng = random.Random(seed)
    kiosk = f"K-FAULTS-{seed}"
    script = [rng.choice(FAULTS) for _ in range(40)]
    proxy.script(script)
    with HttpBackOffice(proxy.url, timeout_s=CLIENT_TIMEOUT_S, retry=FAST_RETRY,
                        rng=random.Random(seed)) as client:
        worker = OutboxWorker(store, client, backoff=FAST_BACKOFF, idle_poll_s=0.05,
                              rng=random.Random(seed), batch=BatchLimits(max_items=batch_items))
        worker.start()
        try:
            enqueued = {}

            def enqueue(i: int) -> None:
                marker = f"faults-{seed}-{i}"
                enqueued[marker] = store.enqueue(submission(marker, kiosk))

            for i in range(12):
                enqueue(i)
                if i == 5:  # the rest arrive while faults are under way
                    wait_until(lambda: len(proxy.applied) >= 10)
            wait_until(lambda: store.stats().pending == 0)
            # A batch needs fewer requests than one request per submission: go on submitting,
            # one at a time, until every scripted fault has been met.
            while len(proxy.applied) < len(script):
                enqueue(len(enqueued))
                wait_until(lambda: store.stats().pending == 0)
        finally:
            assert worker.stop() is True
    assert proxy.applied[:len(script)] == script  # every scripted fault was met
    assert_delivered_exactly_once(store, outbox_server.db_url, kiosk, enqueued)


def test_a_back_office_without_batches_gets_one_submission_at_a_time(
        store: OutboxStore, proxy: FaultProxy, outbox_server) -> None:
    kiosk = "K-FAULTS-NO-BATCH"
    proxy.default = "refuse_batch"  # an older back office: 404 for /applications:batch
    with HttpBackOffice(proxy.url, timeout_s=10, retry=FAST_RETRY) as client:
        worker = OutboxWorker(store, client, backoff=FAST_BACKOFF)
        enqueued = {f"nb-{i}": store.enqueue(submission(f"nb-{i}", kiosk)) for i in range(4)}
        assert worker.drain() == 4
    # One refused batch, then each submission alone, in order.
    assert proxy.paths == ["/api/v1/applications:batch"] + ["/api/v1/applications"] * 4
    stored = stored_applications(outbox_server.db_url, kiosk)
    assert [s.local_tracking_number for s in stored] == list(enqueued.values())
    assert_delivered_exactly_once(store, outbox_server.db_url, kiosk, enqueued)


def test_enqueue_does_not_wait_for_a_hung_back_office(store: OutboxStore, proxy: FaultProxy,
                                                      outbox_server) -> None:
    kiosk = "K-FAULTS-HUNG"
    proxy.default = "hold"
    with HttpBackOffice(proxy.url, timeout_s=60, retry=FAST_RETRY) as client:
        worker = OutboxWorker(store, client, backoff=FAST_BACKOFF, idle_poll_s=0.05)
        worker.start()
        try:
            enqueued = {"hung-0": store.enqueue(submission("hung-0", kiosk))}
            assert proxy.holding.wait(30)  # the worker is now stuck inside a request
            for i in range(1, 6):
                marker = f"hung-{i}"
                enqueued[marker] = store.enqueue(submission(marker, kiosk))
                entry = store.lookup(enqueued[marker])
                # What the receipt screen can say at once: received, to be sent.
                assert entry is not None and entry.state == "pending"
            assert proxy.holding.is_set()  # all of the above happened while it hung
            health = worker.health()
            assert (health.pending, health.running) == (6, True)
            assert health.oldest_pending_age_s is not None
            proxy.default = "pass"
            proxy.release()
            wait_until(lambda: store.stats().pending == 0)
        finally:
            proxy.release()
            assert worker.stop() is True
    assert_delivered_exactly_once(store, outbox_server.db_url, kiosk, enqueued)


def test_back_office_down_then_back(tmp_path: Path, store: OutboxStore) -> None:
    kiosk = "K-FAULTS-DOWN"
    server = start_server(tmp_path / "bo", port=free_port())  # not started: nothing listens
    try:
        with HttpBackOffice(server.url, timeout_s=2, retry=FAST_RETRY) as client:
            worker = OutboxWorker(store, client, backoff=FAST_BACKOFF, idle_poll_s=0.05)
            worker.start()
            try:
                enqueued = {f"down-{i}": store.enqueue(submission(f"down-{i}", kiosk))
                            for i in range(3)}
                head = enqueued["down-0"]

                def attempts() -> int:
                    entry = store.lookup(head)
                    return entry.attempts if entry is not None else 0

                wait_until(lambda: attempts() >= 3)
                entry = store.lookup(head)
                assert entry is not None
                assert (entry.state, entry.last_error) == ("pending", "backoffice_unavailable")
                health = worker.health()
                assert health.pending == 3 and health.consecutive_failures >= 3
                assert health.last_error == "backoffice_unavailable"
                server.start()
                wait_until(lambda: store.stats().pending == 0)
            finally:
                assert worker.stop() is True
        assert_delivered_exactly_once(store, f"sqlite:///{tmp_path / 'bo' / 'bo.db'}", kiosk,
                                      enqueued)
    finally:
        server.stop()


def test_a_slow_back_office_times_the_call_out(proxy: FaultProxy) -> None:
    proxy.default = "slow_after"
    with HttpBackOffice(proxy.url, timeout_s=CLIENT_TIMEOUT_S, retry=FAST_RETRY) as client:
        assert client.health() is False
        with pytest.raises(BackOfficeUnavailable, match="did not answer within"):
            client.application_progress("BJ20300101000001")
