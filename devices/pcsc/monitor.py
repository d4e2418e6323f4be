"""Reader hot-plug and card insert/remove on PC/SC, delivered as four callbacks.

pyscard's ``ReaderMonitor``/``CardMonitor`` (2.3.1) do not fit a kiosk that runs for
months: they are process-wide singletons, the card monitor's thread cannot be stopped (it
sits in a 60 s wait and ``stop()`` only sets a flag), and both threads end for good the
first time pcscd is stopped (the reader thread on an uncaught EstablishContextException,
the card thread on SCARD_E_NO_SERVICE), so readers never come back after a restart. This monitor is one thread blocked in
``SCardGetStatusChange`` on every reader plus the ``\\\\?PnP?\\Notification`` pseudo-reader,
woken by ``SCardCancel`` to stop; when pcscd goes away it reports every reader removed and
reconnects when pcscd is back.

Callbacks run on the monitor thread and must return quickly. The first pass reports what is
already there: each reader as added, each card in it as inserted. A card the reader finds
unresponsive (SCARD_STATE_MUTE) is reported inserted with an empty ATR. When pcscd goes
away every card is reported removed, then every reader; ``stop()`` reports nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from smartcard import scard

log = logging.getLogger(__name__)

PNP_NOTIFICATION = r"\\?PnP?\Notification"

ReaderCallback = Callable[[str], None]
CardCallback = Callable[[str, bytes], None]

# pcsc-lite 1.9.9 only flags reader-list changes that happen *during* a wait, so a change
# between two waits is caught by re-listing at least this often.
_RELIST_MS = 2000


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


_SERVICE_GONE = frozenset(_code(c) for c in (scard.SCARD_E_NO_SERVICE,
                                             scard.SCARD_E_SERVICE_STOPPED,
                                             scard.SCARD_E_INVALID_HANDLE,
                                             scard.SCARD_F_COMM_ERROR))


class _ServiceGone(Exception):
    pass


class PcscMonitor:
    """Watches pcscd from a background thread until :meth:`stop`.

    ``watch`` limits card events to the readers it accepts (reader events are reported for
    all); the eMRTD driver passes ``lambda name: name == link.reader``.
    """

    def __init__(self, *,
                 on_reader_added: ReaderCallback | None = None,
                 on_reader_removed: ReaderCallback | None = None,
                 on_card_inserted: CardCallback | None = None,
                 on_card_removed: ReaderCallback | None = None,
                 watch: Callable[[str], bool] | None = None,
                 retry_interval: float = 1.0) -> None:
        self._on_reader_added = on_reader_added
        self._on_reader_removed = on_reader_removed
        self._on_card_inserted = on_card_inserted
        self._on_card_removed = on_card_removed
        self._watch = watch or (lambda _name: True)
        self.retry_interval = retry_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: int | None = None
        self._context_lock = threading.Lock()
        self._readers: dict[str, int] = {}  # reader -> last event state seen
        self._cards: dict[str, bytes] = {}  # reader -> ATR of the card in it
        self._state_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> PcscMonitor:
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="pcsc-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it. No callbacks are delivered after this returns
        (unless it timed out, which is logged)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        if thread is threading.current_thread():
            return  # called from a callback: the thread ends when the callback returns
        # SCardCancel is a no-op unless the thread is inside SCardGetStatusChange right now,
        # so keep cancelling until it has left.
        waited = 0.0
        while thread.is_alive() and waited < timeout:
            with self._context_lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            thread.join(0.05)
            waited += 0.05
        if thread.is_alive():
            log.warning("PC/SC monitor did not stop within %.1f s", timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> PcscMonitor:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- snapshots ------------------------------------------------------------------------
    def readers(self) -> list[str]:
        with self._state_lock:
            return list(self._readers)

    def cards(self) -> dict[str, bytes]:
        """Reader -> ATR for every watched reader holding a card."""
        with self._state_lock:
            return dict(self._cards)

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        service_down_logged = False
        while not self._stopping.is_set():
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != scard.SCARD_S_SUCCESS:
                if not service_down_logged:
                    log.warning("PC/SC service unavailable (0x%08X); retrying", _code(hresult))
                    service_down_logged = True
                self._stopping.wait(self.retry_interval)
                continue
            service_down_logged = False
            with self._context_lock:
                self._context = context
            try:
                self._watch_loop(context)
            except _ServiceGone:
                log.warning("PC/SC service went away")
            except Exception:  # a bug must not silently end hot-plug handling for good
                log.exception("PC/SC monitor failed; restarting")
            finally:
                with self._context_lock:
                    self._context = None
                scard.SCardReleaseContext(context)
            if not self._stopping.is_set():
                self._forget_all()
                self._stopping.wait(self.retry_interval)
        # Stopping is not a removal: forget quietly.
        with self._state_lock:
            self._readers.clear()
            self._cards.clear()

    def _watch_loop(self, context: int) -> None:
        while not self._stopping.is_set():
            self._sync_readers(self._list(context))
            with self._state_lock:
                states = [(name, state) for name, state in self._readers.items()
                          if self._watch(name)]
            hresult, events = scard.SCardGetStatusChange(
                context, _RELIST_MS, [(PNP_NOTIFICATION, scard.SCARD_STATE_UNAWARE), *states])
            code = _code(hresult)
            if code in (_code(scard.SCARD_E_TIMEOUT), _code(scard.SCARD_E_CANCELLED),
                        _code(scard.SCARD_E_UNKNOWN_READER)):
                continue  # stop flag, or re-list (a reader left between list and wait)
            if code in _SERVICE_GONE:
                raise _ServiceGone
            if hresult != scard.SCARD_S_SUCCESS:
                log.warning("SCardGetStatusChange failed (0x%08X)", code)
                self._stopping.wait(self.retry_interval)
                continue
            for name, event, atr in events:
                if name != PNP_NOTIFICATION:
                    self._reader_event(name, event, bytes(atr))

    def _list(self, context: int) -> list[str]:
        hresult, readers = scard.SCardListReaders(context, [])
        code = _code(hresult)
        if code == _code(scard.SCARD_E_NO_READERS_AVAILABLE):
            return []
        if code in _SERVICE_GONE:
            raise _ServiceGone
        if hresult != scard.SCARD_S_SUCCESS:
            log.warning("SCardListReaders failed (0x%08X)", code)
            return self.readers()
        return list(readers)

    def _sync_readers(self, current: list[str]) -> None:
        with self._state_lock:
            known = list(self._readers)
        for name in known:
            if name not in current:
                self._forget(name)
        for name in current:
            if name not in known:
                with self._state_lock:
                    self._readers[name] = scard.SCARD_STATE_UNAWARE
                self._call(self._on_reader_added, name)

    def _reader_event(self, name: str, event: int, atr: bytes) -> None:
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
            return  # gone since the list; the next list reports it
        with self._state_lock:
            if name not in self._readers:
                return
            before = self._readers[name]
            self._readers[name] = event & ~scard.SCARD_STATE_CHANGED
            had_card = name in self._cards
        present = bool(event & scard.SCARD_STATE_PRESENT)
        # The high word counts insertions and removals: a card swapped between two waits
        # shows as present both times with a different count.
        swapped = (had_card and present and before != scard.SCARD_STATE_UNAWARE
                   and (before >> 16) != (event >> 16))
        if had_card and (not present or swapped):
            with self._state_lock:
                self._cards.pop(name, None)
            self._call(self._on_card_removed, name)
        if present and (not had_card or swapped):
            card_atr = b"" if event & scard.SCARD_STATE_MUTE else atr
            with self._state_lock:
                self._cards[name] = card_atr
            self._call(self._on_card_inserted, name, card_atr)

    def _forget(self, name: str) -> None:
        with self._state_lock:
            self._readers.pop(name, None)
            had_card = self._cards.pop(name, None) is not None
        if had_card:
            self._call(self._on_card_removed, name)
        self._call(self._on_reader_removed, name)

    def _forget_all(self) -> None:
        for name in self.readers():
            self._forget(name)

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None or self._stopping.is_set():
            return
        try:
            callback(*args)
        except Exception:  # a broken listener must not end monitoring
            log.exception("PC/SC monitor callback failed")
