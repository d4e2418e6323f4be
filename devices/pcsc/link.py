"""A PC/SC link to one contactless reader (非接触读卡器), over pyscard's ``smartcard.scard``.

It lists readers, picks the configured one, connects with T=1 or T=0, reads the ATR,
transmits APDUs with a timeout and disconnects; every PC/SC failure comes out as one of
four exceptions the eMRTD driver can act on: :class:`NoReaderError`,
:class:`CardRemovedError`, :class:`TransmitTimeout` or the base :class:`PcscError`.

Why a worker thread per connection: pcsc-lite has no way to abort ``SCardTransmit``
(``SCardCancel`` only cancels ``SCardGetStatusChange``), and the client library holds the
context's lock for the whole exchange, so neither ``SCardDisconnect`` nor a reset can get in
while a chip is silent. The caller therefore stops *waiting* at the timeout: the connection
is given up, the worker disconnects (leaving the card as it is) and releases the context
once the stuck call returns (the reader driver's own timeout or the card leaving ends it),
and a later ``connect()`` starts afresh on a new context; ``reconnect()`` then warm-resets
the chip if it is wanted fresh.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from smartcard import scard

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TRANSMIT_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
# pcscd polls card presence every 400 ms; a failed exchange is blamed on removal only once
# pcscd has had the chance to notice, so wait a little over two polls before deciding.
DEFAULT_REMOVAL_GRACE_S = 1.0


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


_NO_READER_CODES = frozenset(_code(c) for c in (
    scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_NO_READERS_AVAILABLE,
    scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE))
_CARD_GONE_CODES = frozenset(_code(c) for c in (
    scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD))
# Codes a contactless reader gives when the chip left the field mid-exchange, before pcscd
# has seen the removal; they may also be a genuine fault, so presence decides.
_MAYBE_GONE_CODES = frozenset(_code(c) for c in (
    scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_F_COMM_ERROR, scard.SCARD_W_UNRESPONSIVE_CARD,
    scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_W_RESET_CARD, scard.SCARD_E_INVALID_HANDLE))


class PcscError(Exception):
    """A PC/SC failure; ``code`` is the PC/SC result (e.g. 0x80100016) when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = _code(code) if code is not None else None
        if self.code is not None:
            message = f"{message}: {scard.SCardGetErrorMessage(self.code).rstrip('.')} " \
                      f"(0x{self.code:08X})"
        super().__init__(message)


class NoReaderError(PcscError):
    """No PC/SC service (pcscd not running), no reader, or the chosen reader went away."""


class CardRemovedError(PcscError):
    """The card is not (or no longer) in the reader; the exchange in flight is lost."""


class NoCardError(CardRemovedError):
    """``connect()`` found the reader empty."""


class TransmitTimeout(PcscError):
    """The card did not answer in time; the connection has been given up."""


class Protocol(enum.IntFlag):
    T0 = scard.SCARD_PROTOCOL_T0
    T1 = scard.SCARD_PROTOCOL_T1


class Disposition(enum.Enum):
    """What happens to the card on disconnect (SCardDisconnect's dwDisposition)."""

    LEAVE = scard.SCARD_LEAVE_CARD
    RESET = scard.SCARD_RESET_CARD
    UNPOWER = scard.SCARD_UNPOWER_CARD


def error_for(hresult: int, action: str) -> PcscError:
    """The exception for a PC/SC result code, without asking the reader anything."""
    code = _code(hresult)
    if code in _NO_READER_CODES:
        return NoReaderError(action, code)
    if code in _CARD_GONE_CODES:
        return (NoCardError if action == "connect" else CardRemovedError)(action, code)
    if code == _code(scard.SCARD_E_TIMEOUT):
        return TransmitTimeout(action, code)
    return PcscError(action, code)


# -- readers ------------------------------------------------------------------------------

# Names PC/SC drivers give contactless readers or their contactless slot. "PCD" is ISO/IEC
# 14443's proximity coupling device (the vsmartcard virtual reader is one); "PICC" slots
# belong to dual-interface readers (ACS ACR1251/1252, Identiv uTrust); HID OMNIKEY 5x2x
# CL / 5022 / 5427, ACR122/ACR1281 and SCM SCL01x/SCL3711 are contactless-only. The SAM
# slot of a dual reader carries the same model name, so a SAM slot never counts.
_CONTACTLESS = re.compile(
    r"contactless|\bPICC\b|\bPCD\b|\bCL\b|\bNFC\b|ACR122|ACR1281|ACR1252|ACR1255|"
    r"OMNIKEY 5022|OMNIKEY 5427|OMNIKEY 5[0-9]21 CL|5422CL|SCL01[01]|SCL3711",
    re.IGNORECASE)
_SAM_SLOT = re.compile(r"\bSAM\b")


def looks_contactless(reader: str) -> bool:
    """Whether a reader name says it is (the contactless slot of) a contactless reader."""
    return bool(_CONTACTLESS.search(reader)) and not _SAM_SLOT.search(reader)


def choose_reader(readers: Sequence[str], wanted: str | None = None) -> str:
    """The reader to use: ``wanted`` by exact name, else the first whose name contains
    ``wanted`` (case-insensitive); without ``wanted``, the first contactless one."""
    if wanted:
        if wanted in readers:
            return wanted
        for name in readers:
            if wanted.casefold() in name.casefold():
                return name
        raise NoReaderError(f"no reader matches {wanted!r}; readers: {list(readers)}")
    for name in readers:
        if looks_contactless(name):
            return name
    if not readers:
        raise NoReaderError("no PC/SC reader connected")
    raise NoReaderError(f"no contactless reader among {list(readers)}; "
                        "configure the reader name")


def list_readers() -> list[str]:
    """The readers pcscd knows now; [] when none. NoReaderError when pcscd is not running."""
    context = _establish()
    try:
        return _list(context)
    finally:
        scard.SCardReleaseContext(context)


def find_reader(wanted: str | None = None) -> str:
    return choose_reader(list_readers(), wanted)


def _establish() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise error_for(hresult, "establish PC/SC context")
    return context


def _list(context: int) -> list[str]:
    hresult, readers = scard.SCardListReaders(context, [])
    if _code(hresult) == _code(scard.SCARD_E_NO_READERS_AVAILABLE):
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise error_for(hresult, "list readers")
    return list(readers)


# -- the link -----------------------------------------------------------------------------

@dataclass
class _Connection:
    """One context + card handle, used only from its own worker thread."""

    context: int
    worker: concurrent.futures.ThreadPoolExecutor
    card: int | None = None
    protocol: Protocol | None = None
    atr: bytes = b""
    finished: bool = False

    def run(self, fn: Callable[..., T], *args: object) -> concurrent.futures.Future[T]:
        return self.worker.submit(fn, *args)

    def finish(self, disposition: int) -> concurrent.futures.Future[None] | None:
        """Disconnect and release the context once the worker is free, then end the worker;
        a stuck call delays this, it never blocks the caller."""
        if self.finished:
            return None
        self.finished = True
        future = self.worker.submit(_close, self, disposition)
        self.worker.shutdown(wait=False)
        return future


class PcscLink:
    """One reader, one card at a time. Not for concurrent use from several threads.

    ``transmit`` is a plain ``Callable[[bytes], bytes]`` for the eMRTD session: it returns
    the whole response APDU, data and SW1-SW2.
    """

    def __init__(self, reader: str, *, protocols: Protocol = Protocol.T1 | Protocol.T0,
                 exclusive: bool = False,
                 transmit_timeout: float = DEFAULT_TRANSMIT_TIMEOUT_S,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
                 removal_grace: float = DEFAULT_REMOVAL_GRACE_S) -> None:
        self.reader = reader
        self.protocols = protocols
        self.exclusive = exclusive
        self.transmit_timeout = transmit_timeout
        self.connect_timeout = connect_timeout
        self.removal_grace = removal_grace
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, wanted: str | None = None, **options: Any) -> PcscLink:
        """Pick the reader (see :func:`choose_reader`) and connect to the card in it."""
        link = cls(find_reader(wanted), **options)
        link.connect()
        return link

    # -- state ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.card is not None

    @property
    def atr(self) -> bytes:
        return self._require().atr

    @property
    def protocol(self) -> Protocol:
        conn = self._require()
        assert conn.protocol is not None
        return conn.protocol

    # -- connect / disconnect -------------------------------------------------------------
    def connect(self) -> bytes:
        """Connect to the card in the reader and return its ATR."""
        with self._lock:
            if self._conn is not None:
                raise PcscError("already connected")
            context = _establish()
            conn = _Connection(context, concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"pcsc:{self.reader[:24]}"))
            try:
                self._wait(conn, conn.run(self._connect_card, conn), self.connect_timeout,
                           "connect")
            except BaseException:
                conn.finish(scard.SCARD_LEAVE_CARD)
                raise
            self._conn = conn
            return conn.atr

    def _connect_card(self, conn: _Connection) -> None:
        share = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
        hresult, card, active = scard.SCardConnect(conn.context, self.reader, share,
                                                   int(self.protocols))
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for(hresult, "connect")
        conn.card, conn.protocol = card, Protocol(active)
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(card)
        if _code(hresult) == _code(scard.SCARD_W_RESET_CARD):
            # pcscd (or another application) reset the chip just after we connected; nothing
            # of ours was lost yet, so acknowledge the reset, as PC/SC requires, and go on.
            hresult, active = scard.SCardReconnect(card, share, int(self.protocols),
                                                   scard.SCARD_LEAVE_CARD)
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for(hresult, "connect")
            conn.protocol = Protocol(active)
            hresult, _reader, _state, _protocol, atr = scard.SCardStatus(card)
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for(hresult, "read ATR")
        conn.atr = bytes(atr)

    def reconnect(self, reset: bool = True) -> bytes:
        """Warm-reset the card (or just re-negotiate) and return the ATR it now reports;
        a chip forgets its secure-messaging keys on reset."""
        with self._lock:
            conn = self._require()
            try:
                self._wait(conn, conn.run(self._reconnect_card, conn, reset),
                           self.connect_timeout, "reconnect")
            except (CardRemovedError, NoReaderError):
                self._drop(conn)
                raise
            return conn.atr

    def _reconnect_card(self, conn: _Connection, reset: bool) -> None:
        share = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
        disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
        hresult, active = scard.SCardReconnect(conn.card, share, int(self.protocols),
                                               disposition)
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._classify(conn, hresult, "reconnect")
        conn.protocol = Protocol(active)
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(conn.card)
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._classify(conn, hresult, "read ATR")
        conn.atr = bytes(atr)

    def disconnect(self, disposition: Disposition = Disposition.RESET) -> None:
        """Let go of the card; by default reset it, so no session state outlives us.
        Never raises: a card already gone is what disconnect wants anyway."""
        with self._lock:
            conn, self._conn = self._conn, None
        future = conn.finish(disposition.value) if conn is not None else None
        if future is None:
            return
        try:
            future.result(self.connect_timeout)
        except concurrent.futures.TimeoutError:
            log.warning("PC/SC disconnect from %s still pending", self.reader)

    def __enter__(self) -> PcscLink:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.disconnect()

    # -- transmit -------------------------------------------------------------------------
    def transmit(self, apdu: bytes, timeout: float | None = None) -> bytes:
        """Send a command APDU (short or extended) and return the response APDU with its
        status word. ``timeout`` defaults to ``transmit_timeout``."""
        with self._lock:
            conn = self._require()
            limit = self.transmit_timeout if timeout is None else timeout
            hresult, response = self._wait(conn, conn.run(_transmit, conn, bytes(apdu)),
                                           limit, "transmit")
            if hresult == scard.SCARD_S_SUCCESS and len(response) >= 2:
                return response
            # vpcd and some readers report a chip that vanished mid-exchange as an empty
            # "success"; both that and a failure code are settled by asking about presence.
            failure = self._wait(conn, conn.run(self._classify, conn, hresult, "transmit"),
                                 self.removal_grace + self.connect_timeout, "transmit")
            if isinstance(failure, CardRemovedError | NoReaderError):
                self._drop(conn)
            raise failure

    __call__ = transmit

    # -- internals ------------------------------------------------------------------------
    def _drop(self, conn: _Connection) -> None:
        """Forget a connection whose card or reader is gone."""
        if self._conn is conn:
            self._conn = None
        conn.finish(scard.SCARD_LEAVE_CARD)

    def _require(self) -> _Connection:
        conn = self._conn
        if conn is None or conn.card is None:
            raise PcscError(f"not connected to a card in {self.reader!r}")
        return conn

    def _wait(self, conn: _Connection, future: concurrent.futures.Future[T], timeout: float,
              action: str) -> T:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if self._conn is conn:
                self._conn = None
            # Runs whenever the stuck call returns, possibly in the middle of the next
            # connection's session, so it must not reset the chip under it; reconnect()
            # resets on purpose when the caller wants a fresh chip.
            conn.finish(scard.SCARD_LEAVE_CARD)
            raise TransmitTimeout(f"{action}: no answer from the card in {self.reader!r} "
                                  f"within {timeout:.1f} s") from None

    def _classify(self, conn: _Connection, hresult: int, action: str) -> PcscError:
        """Turn a failed exchange into the right exception, waiting up to
        ``removal_grace`` for pcscd to tell whether the card is still there."""
        if hresult == scard.SCARD_S_SUCCESS:
            error = PcscError(f"{action}: the card answered without a status word")
        else:
            error = error_for(hresult, action)
        if isinstance(error, CardRemovedError | NoReaderError) or not (
                hresult == scard.SCARD_S_SUCCESS or _code(hresult) in _MAYBE_GONE_CODES):
            return error
        presence = _await_removal(conn, self.reader, self.removal_grace)
        if presence == "absent":
            return CardRemovedError(action, hresult or scard.SCARD_W_REMOVED_CARD)
        if presence == "no reader":
            return NoReaderError(action, hresult or scard.SCARD_E_READER_UNAVAILABLE)
        return error


def _transmit(conn: _Connection, apdu: bytes) -> tuple[int, bytes]:
    pci = scard.SCARD_PCI_T1 if conn.protocol is Protocol.T1 else scard.SCARD_PCI_T0
    hresult, response = scard.SCardTransmit(conn.card, pci, list(apdu))
    return hresult, bytes(response)


def _close(conn: _Connection, disposition: int) -> None:
    if conn.card is not None:
        scard.SCardDisconnect(conn.card, disposition)
        conn.card = None
    scard.SCardReleaseContext(conn.context)


def _handle_state(conn: _Connection) -> str:
    """What pcscd says about our handle: it reports a removal even if the card is back."""
    hresult, _reader, _state, _protocol, _atr = scard.SCardStatus(conn.card)
    code = _code(hresult)
    if code in _CARD_GONE_CODES:
        return "absent"
    if code in _NO_READER_CODES:
        return "no reader"
    return "present"


def _await_removal(conn: _Connection, reader: str, grace: float) -> str:
    """'absent', 'no reader' or 'present' after waiting up to ``grace`` for a removal."""
    presence = _handle_state(conn)
    if presence != "present" or grace <= 0:
        return presence
    hresult, states = scard.SCardGetStatusChange(
        conn.context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
    if hresult != scard.SCARD_S_SUCCESS:
        return "no reader"
    event = states[0][1]
    if not event & scard.SCARD_STATE_EMPTY:
        # Blocks until pcscd's next presence poll changes the reader's state, or grace ends.
        scard.SCardGetStatusChange(conn.context, int(grace * 1000),
                                   [(reader, event & ~scard.SCARD_STATE_CHANGED)])
    return _handle_state(conn)
