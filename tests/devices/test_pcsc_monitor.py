"""PcscMonitor against the real pcscd with the vpcd virtual reader."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from devices.pcsc import PcscMonitor

WAIT_S = 5.0  # generous: pcscd polls a vpcd card every 400 ms


class Card:
    atr = bytes.fromhex("3B8A800180731C2110000000000000")

    def process(self, apdu: bytes) -> bytes:
        return b"\x90\x00"


class Recorder:
    """Collects monitor callbacks as tuples and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self._changed = threading.Condition()

    def add(self, *event: object) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def monitor(self, **options: object) -> PcscMonitor:
        return PcscMonitor(
            on_reader_added=lambda name: self.add("reader+", name),
            on_reader_removed=lambda name: self.add("reader-", name),
            on_card_inserted=lambda name, atr: self.add("card+", name, atr),
            on_card_removed=lambda name: self.add("card-", name),
            **options)

    def wait_until(self, condition: Callable[[list[tuple]], bool],
                   timeout: float = WAIT_S) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.events), timeout):
                pytest.fail(f"condition not met within {timeout} s; got {self.events}")

    def wait_for(self, *event: object, timeout: float = WAIT_S) -> int:
        """Index of the first occurrence of ``event``; fails the test if it never comes."""
        self.wait_until(lambda events: event in events, timeout)
        with self._changed:
            return self.events.index(event)

    def count(self, kind: str) -> int:
        with self._changed:
            return sum(1 for e in self.events if e[0] == kind)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def monitor_factory(recorder: Recorder) -> Iterator[Callable[..., PcscMonitor]]:
    started: list[PcscMonitor] = []

    def make(**options: object) -> PcscMonitor:
        monitor = recorder.monitor(**options).start()
        started.append(monitor)
        return monitor

    yield make
    for monitor in started:
        monitor.stop()


def test_readers_present_at_start_are_reported(pcscd, recorder, monitor_factory):
    monitor = monitor_factory()
    recorder.wait_for("reader+", "Virtual PCD 00 00")
    recorder.wait_for("reader+", "Virtual PCD 00 01")
    assert {"Virtual PCD 00 00", "Virtual PCD 00 01"} <= set(monitor.readers())
    assert recorder.count("card+") == 0


def test_insert_and_remove_are_reported_with_the_atr(pcscd, vpcd_card_factory, recorder,
                                                     monitor_factory):
    monitor = monitor_factory()
    recorder.wait_for("reader+", pcscd.reader)
    client = vpcd_card_factory(Card(), insert=False)
    client.insert()
    recorder.wait_for("card+", pcscd.reader, Card.atr)
    assert monitor.cards() == {pcscd.reader: Card.atr}
    client.remove()
    recorder.wait_for("card-", pcscd.reader)
    assert monitor.cards() == {}
    client.insert()
    recorder.wait_until(lambda events: events.count(("card+", pcscd.reader, Card.atr)) == 2)
    assert recorder.events[-3:] == [("card+", pcscd.reader, Card.atr), ("card-", pcscd.reader),
                                    ("card+", pcscd.reader, Card.atr)]


def test_a_card_already_in_the_reader_is_reported_at_start(pcscd, vpcd_card_factory,
                                                           recorder, monitor_factory):
    vpcd_card_factory(Card())
    monitor_factory()
    added = recorder.wait_for("reader+", pcscd.reader)
    inserted = recorder.wait_for("card+", pcscd.reader, Card.atr)
    assert added < inserted


def test_watch_limits_card_events_to_the_chosen_reader(pcscd, vpcd_card_factory, recorder,
                                                       monitor_factory):
    other = pcscd.readers[1]
    monitor_factory(watch=lambda name: name == other)
    recorder.wait_for("reader+", pcscd.reader)
    vpcd_card_factory(Card())  # into the unwatched reader
    vpcd_card_factory(Card(), reader=other)
    recorder.wait_for("card+", other, Card.atr)
    assert ("card+", pcscd.reader, Card.atr) not in recorder.events


def test_a_failing_callback_does_not_end_monitoring(pcscd, vpcd_card_factory, recorder):
    def broken(name: str) -> None:
        raise RuntimeError("listener bug")

    with PcscMonitor(on_reader_added=broken,
                     on_card_inserted=lambda name, atr: recorder.add("card+", name, atr)
                     ) as monitor:
        vpcd_card_factory(Card())
        recorder.wait_for("card+", pcscd.reader, Card.atr)
        assert monitor.running


def test_stop_ends_the_thread_and_delivers_nothing_more(pcscd, vpcd_card_factory, recorder):
    monitor = recorder.monitor().start()
    recorder.wait_for("reader+", pcscd.reader)
    monitor.stop()
    assert not monitor.running
    before = list(recorder.events)
    vpcd_card_factory(Card())  # returns once pcscd has seen it
    assert recorder.events == before
    assert ("reader-", pcscd.reader) not in recorder.events


def test_pcscd_going_away_and_back_is_reported(pcscd, vpcd_card_factory, recorder,
                                               monitor_factory):
    pcscd.require_managed()
    monitor_factory(retry_interval=0.1)
    client = vpcd_card_factory(Card())
    recorder.wait_for("card+", pcscd.reader, Card.atr)
    pcscd.stop()
    card_gone = recorder.wait_for("card-", pcscd.reader)
    reader_gone = recorder.wait_for("reader-", pcscd.reader)
    assert card_gone < reader_gone
    assert client.removed.wait(WAIT_S)  # vpcd dropped the card with pcscd
    first_added = recorder.events.index(("reader+", pcscd.reader))
    pcscd.start()
    recorder.wait_until(lambda events: events.count(("reader+", pcscd.reader)) == 2)
    assert recorder.events.index(("reader-", pcscd.reader)) > first_added
