"""A simulated GA/T 467 SAM with a card slot, answering on the master side of a pty.

The driver under test opens the slave side with pyserial, as it would a USB-serial adapter.
The framing here is written separately from ``devices.ga467.protocol`` on purpose, so that
a mistake there is not mirrored here and hidden.

Card model (what real SAMs are reported to do): find-card answers 9F while an unread card
lies in the field; after a select the card is busy with this SAM and find-card answers 80
until the card is lifted and put back; read-base and read-appendix work only on the
selected card that is still in the field.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

PREAMBLE = bytes.fromhex("AAAAAA9669")

SAM_STATUS = (0x11, 0xFF)
SAM_ID = (0x12, 0xFF)
FIND = (0x20, 0x01)
SELECT = (0x20, 0x02)
READ_BASE = (0x30, 0x01)
READ_APPENDIX = (0x30, 0x03)

# A SAM number that formats as 05.01-20250101-0000000042-1234567890.
DEFAULT_SAM_ID = ((5).to_bytes(2, "little") + (1).to_bytes(2, "little")
                  + (20250101).to_bytes(4, "little") + (42).to_bytes(4, "little")
                  + (1234567890).to_bytes(4, "little"))

# Fault kinds for ``SamSimulator.fail``; an int instead answers with that SW3 and no data.
GARBAGE = "garbage"    # junk bytes, then the right answer
SHORT = "short"        # the first half of the answer, then nothing
CHECKSUM = "checksum"  # the answer with a wrong checksum
LENGTH = "length"      # an impossible length field
SILENCE = "silence"    # no answer at all
REMOVE = "remove"      # the card leaves the field as this command arrives


def xor(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def answer(sw3: int, data: bytes = b"") -> bytes:
    body = (len(data) + 4).to_bytes(2, "big") + bytes([0, 0, sw3]) + data
    return PREAMBLE + body + bytes([xor(body)])


@dataclass
class SimCard:
    text: bytes  # 256 bytes, UCS-2 LE
    photo: bytes = bytes(1024)  # WLT as the chip holds it (the simulator never decodes it)


class SamSimulator:
    def __init__(self, master_fd: int, *, pace_baud: int | None = None) -> None:
        self.fd = master_fd
        self.pace_baud = pace_baud
        self.sam_status = 0x90
        self.sam_id = DEFAULT_SAM_ID
        self._lock = threading.Lock()
        self._card: SimCard | None = None
        self._state = "idle"  # idle | found | selected
        self._faults: dict[tuple[int, int], deque[str | int]] = {}
        self._persistent: dict[tuple[int, int], str | int] = {}
        self.requests: Counter[tuple[int, int]] = Counter()
        self.faults_sent: Counter[str] = Counter()
        self._received = threading.Condition(self._lock)
        self._wake_r, self._wake_w = os.pipe()
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="sam-sim", daemon=True)
        self._thread.start()

    # -- script ---------------------------------------------------------------------------
    def insert(self, card: SimCard) -> None:
        with self._lock:
            self._card, self._state = card, "idle"

    def remove(self) -> None:
        with self._lock:
            self._card, self._state = None, "idle"

    @property
    def card_present(self) -> bool:
        with self._lock:
            return self._card is not None

    def fail(self, command: tuple[int, int], fault: str | int, times: int | None = 1) -> None:
        """Answer the next ``times`` requests of ``command`` with ``fault``; None: always."""
        with self._lock:
            if times is None:
                self._persistent[command] = fault
            else:
                self._faults.setdefault(command, deque()).extend([fault] * times)

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
            self._persistent.clear()

    def wait_requests(self, command: tuple[int, int], count: int, timeout: float = 5.0) -> bool:
        """Block until ``command`` has been received ``count`` times in total."""
        with self._received:
            return self._received.wait_for(lambda: self.requests[command] >= count, timeout)

    def stop(self) -> None:
        if self._wake_w < 0:
            return
        self._running = False
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1

    # -- the line -------------------------------------------------------------------------
    def _serve(self) -> None:
        buffer = bytearray()
        while self._running:
            ready, _, _ = select.select([self.fd, self._wake_r], [], [], 1.0)
            if self._wake_r in ready or not self._running:
                return
            if self.fd not in ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return  # the driver side is gone
            buffer += chunk
            while (request := self._take_request(buffer)) is not None:
                reply = self._handle(*request)
                if reply:
                    self._send(reply)

    def _take_request(self, buffer: bytearray) -> tuple[int, int, bytes] | None:
        start = buffer.find(PREAMBLE)
        if start < 0:
            del buffer[:max(0, len(buffer) - 4)]
            return None
        del buffer[:start]
        if len(buffer) < 7:
            return None
        length = int.from_bytes(buffer[5:7], "big")
        if len(buffer) < 7 + length:
            return None
        frame = bytes(buffer[:7 + length])
        del buffer[:7 + length]
        if length < 3 or xor(frame[5:-1]) != frame[-1]:
            self._send(answer(0x10))  # 接收业务终端数据的校验和错
            return None
        return frame[7], frame[8], frame[9:-1]

    def _send(self, data: bytes) -> None:
        try:
            if self.pace_baud is None:
                os.write(self.fd, data)
                return
            # The time those bytes take on a real line (8N1), sent in small pieces.
            for at in range(0, len(data), 64):
                piece = data[at:at + 64]
                os.write(self.fd, piece)
                time.sleep(len(piece) * 10 / self.pace_baud)
        except OSError:
            self._running = False

    # -- the SAM --------------------------------------------------------------------------
    def _handle(self, code: int, param: int, data: bytes) -> bytes | None:
        command = (code, param)
        with self._lock:
            self.requests[command] += 1
            self._received.notify_all()
            queue = self._faults.get(command)
            fault = queue.popleft() if queue else self._persistent.get(command)
            if fault == REMOVE:
                self._card, self._state = None, "idle"
                fault = None
            if fault is not None:
                self.faults_sent[str(fault)] += 1
            reply = self._answer(command)
        if fault is None:
            return reply
        if isinstance(fault, int):
            return answer(fault)
        if fault == SILENCE:
            return None
        if fault == GARBAGE:
            return bytes([0x13, 0x37, 0x00, 0xFF, 0x55, 0xAA, 0x96, 0x69, 0x01]) + reply
        if fault == SHORT:
            return reply[:max(8, len(reply) // 2)]
        if fault == CHECKSUM:
            return reply[:-1] + bytes([reply[-1] ^ 0xFF])
        if fault == LENGTH:
            return PREAMBLE + b"\xff\xff" + reply[7:]
        raise AssertionError(f"unknown fault {fault!r}")

    def _answer(self, command: tuple[int, int]) -> bytes:
        if command == SAM_STATUS:
            return answer(self.sam_status)
        if self.sam_status != 0x90:
            return answer(self.sam_status)
        card = self._card
        if command == SAM_ID:
            return answer(0x90, self.sam_id)
        if command == FIND:
            if card is not None and self._state in ("idle", "found"):
                self._state = "found"
                return answer(0x9F, bytes(4))
            return answer(0x80, bytes(4))
        if command == SELECT:
            if card is None:
                return answer(0x80)
            if self._state != "found":
                return answer(0x81)
            self._state = "selected"
            return answer(0x90, bytes(8))
        if command == READ_BASE:
            if card is None or self._state != "selected":
                return answer(0x41)
            lengths = len(card.text).to_bytes(2, "big") + len(card.photo).to_bytes(2, "big")
            return answer(0x90, lengths + card.text + card.photo)
        if command == READ_APPENDIX:
            if card is None or self._state != "selected":
                return answer(0x41)
            return answer(0x91)  # no appended address on this card
        return answer(0x21)


class SamLine:
    """A pty pair with a ``SamSimulator`` on the master and a stable path (a symlink) to the
    slave, which ``unplug``/``replug`` repoint the way a USB-serial adapter comes and goes."""

    def __init__(self, directory: Path, *, pace_baud: int | None = None) -> None:
        self.path = directory / "ttySAM"
        self.pace_baud = pace_baud
        self.sim: SamSimulator | None = None
        self._fds: tuple[int, int] | None = None
        self.replug()

    def replug(self) -> SamSimulator:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        # Holding the slave open keeps the master readable before the driver opens its side.
        self._fds = (master, slave)
        card = None
        if self.sim is not None:
            with self.sim._lock:
                card = self.sim._card
        self.sim = SamSimulator(master, pace_baud=self.pace_baud)
        if card is not None:
            self.sim.insert(card)
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.path)
        return self.sim

    def unplug(self) -> None:
        """The adapter is pulled: the simulator stops and the pty disappears."""
        if self.sim is not None:
            self.sim.stop()
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.unplug()
