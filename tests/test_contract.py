"""The device-layer contract: one completion per command, timeout is not cancel, one command
at a time, events numbered and tagged with the session."""

from __future__ import annotations

import threading

import pytest

from devices.contract import (
    CommandContext,
    Completion,
    Device,
    DeviceClass,
    DeviceState,
    EventKind,
    PaperState,
)
from devices.printer import PrintDocument, PrintLine
from devices.sim import SimBarcodeReader, SimIdCardReader, SimReceiptPrinter
from tests.fakes import TODAY


class Stubborn(Device):
    """A driver whose body ignores its context: the command must still end."""

    device_class = DeviceClass.BARCODE_READER

    def __init__(self) -> None:
        super().__init__("stubborn")
        self.release = threading.Event()

    def hang(self, timeout: float):
        return self._start("hang", lambda ctx: self.release.wait(30), timeout)


def test_timeout_and_cancel_are_different_completions():
    reader = SimBarcodeReader()
    timed = reader.read(0.2).wait(5)
    assert timed.completion is Completion.TIME_OUT
    pending = reader.read(10)
    pending.cancel()
    assert pending.wait(5).completion is Completion.CANCELED


def test_device_cancel_ends_the_running_command():
    reader = SimBarcodeReader()
    pending = reader.read(10)
    threading.Timer(0.1, reader.cancel).start()
    assert pending.wait(5).completion is Completion.CANCELED


def test_commands_on_one_device_run_one_at_a_time():
    reader = SimBarcodeReader()
    first, second = reader.read(5), reader.read(5)
    reader.show("FIRST")
    assert first.wait(5).data == "FIRST"
    assert not second.done
    reader.show("SECOND")
    assert second.wait(5).data == "SECOND"


def test_a_driver_that_ignores_its_deadline_still_completes_once():
    device = Stubborn()
    result = device.hang(0.1).wait(5)
    assert result.completion is Completion.TIME_OUT
    device.release.set()


def test_a_driver_bug_is_an_internal_error_not_a_crash():
    class Buggy(SimBarcodeReader):
        def _read(self, ctx: CommandContext) -> str:
            raise KeyError("bug")

    reader = Buggy()
    result = reader.read(1).wait(5)
    assert result.completion is Completion.INTERNAL_ERROR
    assert reader.status().last_error == (Completion.INTERNAL_ERROR, "KeyError")
    # The command lock was released: the next command runs (and meets the same bug).
    assert reader.read(1).wait(5).completion is Completion.INTERNAL_ERROR


def test_offline_device_refuses_with_device_not_ready():
    reader = SimBarcodeReader()
    reader.go_offline()
    result = reader.read(1).wait(5)
    assert (result.completion, result.error_code) == (Completion.DEVICE_NOT_READY, "offline")


def test_events_are_numbered_and_carry_the_session():
    reader = SimIdCardReader(read_delay_s=0)
    events = []
    reader.subscribe(events.append)
    reader.session_id = "s-1"
    reader.insert_invalid()
    reader.remove()
    kinds = [e.kind for e in events]
    assert EventKind.MEDIA_INSERTED in kinds and EventKind.MEDIA_REMOVED in kinds
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert len({e.sequence for e in events}) == len(events)
    assert all(e.session_id == "s-1" and e.device_id == "id_card" for e in events)


def test_status_is_a_snapshot_while_a_command_runs():
    reader = SimBarcodeReader()
    pending = reader.read(5)
    assert reader.status().state is DeviceState.ONLINE  # answered at once, not queued
    pending.cancel()
    pending.wait(5)


def test_a_listener_that_raises_does_not_break_the_device():
    reader = SimBarcodeReader()
    reader.subscribe(lambda e: 1 / 0)
    pending = reader.read(5)
    reader.show("X")
    assert pending.wait(5).data == "X"


def _doc(key: str) -> PrintDocument:
    return PrintDocument("queue_ticket", key, "排队票", (PrintLine("A001"),))


def test_sim_printer_runs_out_of_paper_after_n_pages(tmp_path):
    printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
    events = []
    printer.subscribe(events.append)
    printer.run_out_after(2)
    assert printer.print_document(_doc("a"), 5).wait(5).ok
    assert printer.status().paper is PaperState.LOW
    assert printer.print_document(_doc("b"), 5).wait(5).ok
    assert printer.status().paper is PaperState.OUT
    refused = printer.print_document(_doc("c"), 5).wait(5)
    assert (refused.completion, refused.error_code) == (Completion.HARDWARE_ERROR, "paperOut")
    assert [e.payload for e in events if e.kind is EventKind.PAPER_THRESHOLD] == [
        PaperState.LOW, PaperState.OUT]
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == [
        "0001-queue_ticket.txt", "0002-queue_ticket.txt"]


def test_sim_printer_never_prints_a_job_key_twice(tmp_path):
    printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
    first = printer.print_document(_doc("same"), 5).wait(5)
    again = printer.print_document(_doc("same"), 5).wait(5)
    assert first.ok and not first.data.duplicate
    assert again.ok and again.data.duplicate
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_sim_printer_media_taken(tmp_path):
    printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
    events = []
    printer.subscribe(events.append)
    printer.print_document(_doc("t"), 5).wait(5)
    printer.take()
    assert [e.kind for e in events].count(EventKind.MEDIA_TAKEN) == 1


@pytest.mark.parametrize("fault, code", [("jam", "paperJammed"), ("open_door", "doorOpen")])
def test_sim_printer_faults_have_their_own_codes(tmp_path, fault, code):
    printer = SimReceiptPrinter(output_dir=tmp_path, auto_take_s=None, print_delay_s=0)
    getattr(printer, fault)()
    assert not printer.status().usable
    assert printer.print_document(_doc("x"), 5).wait(5).error_code == code


def test_id_card_removed_mid_read(tmp_path):
    from devices.identity import DocumentType, IdentityDocument

    reader = SimIdCardReader(read_delay_s=0.5)
    card = IdentityDocument(DocumentType.RESIDENT_ID, "530102199001011234", "张三", "男", "CHN",
                            TODAY, "昆明市公安局五华分局", None, None, ethnicity="汉")
    pending = reader.read_identity(5)
    reader.insert(card)
    threading.Timer(0.2, reader.remove).start()
    result = pending.wait(5)
    assert (result.completion, result.error_code) == (Completion.USER_ERROR, "mediaRemoved")
    assert "1234" in repr(card) and "199001" not in repr(card)
