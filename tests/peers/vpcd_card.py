"""A virtual card on the vsmartcard virtual reader (vpcd): the other end of pcscd in tests.

vpcd (the ``libifdvpcd`` driver loaded by pcscd) listens on TCP port 35963 for slot
``Virtual PCD 00 00`` and 35964 for ``Virtual PCD 00 01``. A connected client *is* the card:
connecting inserts it, closing the socket removes it. Every message either way is a 2-byte
big-endian length followed by that many bytes. One-byte messages from vpcd are control
messages (0x00 power off, 0x01 power on, 0x02 reset: no answer; 0x04 get ATR: answer the
ATR); pcscd polls the ATR about every 400 ms to learn whether the card is still there. Any
longer message is a command APDU, answered with the response APDU.

The card behind the client is any object with ``atr: bytes`` and ``process(apdu) -> bytes``;
optional ``power_on()``, ``power_off()`` and ``reset()`` methods are called on those control
messages when the card has them (a chip drops its secure-messaging session on reset).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from types import TracebackType
from typing import Protocol

log = logging.getLogger(__name__)

VPCD_PORT = 35963
# The 2-byte length field bounds both a command and a response APDU, status word included.
MAX_MESSAGE = 0xFFFF

_CTRL_OFF = 0x00
_CTRL_ON = 0x01
_CTRL_RESET = 0x02
_CTRL_ATR = 0x04
# What a card answers when its own code fails: 6F00 "no precise diagnosis" (ISO 7816-4).
_SW_NO_DIAGNOSIS = b"\x6f\x00"


class VirtualCard(Protocol):
    atr: bytes

    def process(self, apdu: bytes) -> bytes: ...


class VpcdUnavailable(ConnectionError):
    """Nothing listens on the vpcd port: pcscd is not running or vpcd is not loaded."""


class VirtualCardClient:
    """Serves ``card`` to pcscd through vpcd from a background thread.

    ``insert()`` connects (pcscd sees the card within about half a second), ``remove()``
    closes the socket (pcscd sees it gone the same way); ``remove_after(n)`` lets the card
    answer ``n`` more command APDUs and vanish on the next one, without answering it, as a
    passport does when it is pulled off the reader mid-read.

    vpcd serves one card per slot: a second client on the same port waits in vpcd's
    backlog until the first is removed.

    ``fast_ack`` sets TCP_NODELAY and TCP_QUICKACK: Debian 12's vpcd writes the length and
    the APDU as two segments, and a delayed ACK on this side then stalls every APDU by
    ~44 ms (measured: 0.15 ms with it, 44 ms without; QUICKACK re-armed after every read is
    what matters, NODELAY alone changes nothing).
    """

    def __init__(self, card: VirtualCard, host: str = "127.0.0.1", port: int = VPCD_PORT,
                 *, fast_ack: bool = True, connect_timeout: float = 5.0) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.fast_ack = fast_ack
        self.connect_timeout = connect_timeout
        self.commands: list[bytes] = []  # every command APDU received, in order
        self.removed = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._answers_left: int | None = None

    # -- insert / remove ------------------------------------------------------------------
    def insert(self) -> VirtualCardClient:
        """Connect to vpcd: the card is in the reader from now on."""
        with self._lock:
            if self._sock is not None:
                raise RuntimeError("card already inserted")
            try:
                sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            except OSError as exc:
                raise VpcdUnavailable(
                    f"no vpcd on {self.host}:{self.port} (is pcscd running with "
                    f"/etc/reader.conf.d/vpcd?): {exc}") from exc
            sock.settimeout(None)
            if self.fast_ack:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            self._sock = sock
            self._answers_left = None
            self.removed.clear()
            self._thread = threading.Thread(target=self._serve, args=(sock,),
                                            name=f"vpcd-card:{self.port}", daemon=True)
            self._thread.start()
        return self

    def remove(self, join_timeout: float = 2.0) -> None:
        """Take the card away now, even in the middle of an exchange."""
        with self._lock:
            sock, thread = self._sock, self._thread
            self._sock = self._thread = None
        if sock is not None:
            _hang_up(sock)
        if thread is not None and thread is not threading.current_thread():
            # A card busy in process() finishes on its own; its answer then goes nowhere.
            thread.join(join_timeout)
        self.removed.set()

    def remove_after(self, n_apdus: int) -> None:
        """Answer ``n_apdus`` more command APDUs, then vanish on the next one unanswered."""
        if n_apdus < 0:
            raise ValueError("n_apdus must be >= 0")
        with self._lock:
            self._answers_left = n_apdus

    @property
    def inserted(self) -> bool:
        return self._sock is not None and not self.removed.is_set()

    def __enter__(self) -> VirtualCardClient:
        return self.insert()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()

    # -- the card side of the vpcd protocol -----------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                message = self._receive(sock)
                if message is None:
                    break  # vpcd closed the connection (pcscd stopped) or we were removed
                answer = self._handle(message)
                if answer is _VANISH:
                    break
                if answer is not None:
                    sock.sendall(struct.pack(">H", len(answer)) + answer)
        except OSError:
            pass  # the socket was closed under us by remove()
        finally:
            _hang_up(sock)
            with self._lock:
                if self._sock is sock:
                    self._sock = self._thread = None
            self.removed.set()

    def _receive(self, sock: socket.socket) -> bytes | None:
        header = self._receive_exactly(sock, 2)
        if header is None:
            return None
        (length,) = struct.unpack(">H", header)
        return self._receive_exactly(sock, length) if length else b""

    def _receive_exactly(self, sock: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if self.fast_ack:
                # Linux clears QUICKACK after it acknowledges, so set it again on every read.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _handle(self, message: bytes) -> bytes | object | None:
        if len(message) == 1:
            return self._control(message[0])
        if not message:
            return None
        with self._lock:
            if self._answers_left is not None:
                if self._answers_left == 0:
                    return _VANISH
                self._answers_left -= 1
        self.commands.append(message)
        try:
            answer = bytes(self.card.process(message))
        except Exception:  # a broken test card must answer like a broken chip, not hang
            log.exception("virtual card failed on a command APDU")
            return _SW_NO_DIAGNOSIS
        if len(answer) > MAX_MESSAGE:
            log.error("virtual card answered %d bytes; vpcd carries at most %d",
                      len(answer), MAX_MESSAGE)
            return _SW_NO_DIAGNOSIS
        return answer

    def _control(self, code: int) -> bytes | None:
        if code == _CTRL_ATR:
            return bytes(self.card.atr)
        hook = {_CTRL_OFF: "power_off", _CTRL_ON: "power_on", _CTRL_RESET: "reset"}.get(code)
        method = getattr(self.card, hook, None) if hook else None
        if callable(method):
            method()
        return None


_VANISH = object()


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
