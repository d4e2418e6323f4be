"""Resident ID card reader: a GA/T 467 SAM on a serial line (driver ``"ga467"``).

One background thread owns the idle line: it opens the port (and reopens it after an unplug),
checks the SAM, and polls for a card so ``status().media`` stays current and
``MediaInserted``/``MediaRemoved`` are emitted. A ``readIdentity`` command takes the line
from it for its whole find → select → read sequence; both go through ``_line``.

After a successful read the SAM leaves the card selected, and find-card answers "no card"
until the card is lifted and put back. The driver remembers that a card was read
(``_latched``) and, while it is, checks presence by asking for the card's appended-address
file (读追加住址), which only a card still on the reader can answer; the answer is dropped
unread. A new read while latched first tries the selected card directly.

Error codes (``IdentityError``) by failure:

=============================================  ===================  ===============
failure                                        completion           error code
=============================================  ===================  ===============
no card before the command deadline            timeOut              noMedia
cancelled                                      canceled             stopped
select refused (81), card rejected (32/33/40)  invalidData          invalidMedia
other card kind (permanent residence ...)      invalidData          invalidMedia
card gone after find (80/41 on select/read)    userError            mediaRemoved
record fails its checks (check digit, codes)   invalidData          badRecord
garbage/short/bad frames after every retry     hardwareError        linkError
SAM fault status (21 23 24 31 47 60 66 ...)    hardwareError        samFailure
port gone, or the SAM silent after retries     deviceNotReady       noDevice
=============================================  ===================  ===============

``invalidData``/``invalidMedia`` is what the simulated reader answers for an unreadable
card, so a flow sees the same thing from both. A SAM fault also puts the device in
``hardwareError`` (``detail["sam"] == "fault"``) until the SAM reports itself healthy;
0x10/0x11 (the SAM received our request damaged) are resent like any damaged answer.

``read_stats`` of a document: ``seconds`` (card found → record decoded), ``waitSeconds``
(command start → card found), ``frames`` (answers received), ``retries``, ``bytes``
(received) and ``noiseBytes`` (received bytes that were not part of a frame).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from devices.contract import (
    Capabilities,
    CommandContext,
    CommandFailed,
    Completion,
    DeviceState,
    EventKind,
    MediaState,
    Severity,
)
from devices.ga467 import photo as photo_plugin
from devices.ga467.link import Interrupted, LinkGone, SerialLink
from devices.ga467.protocol import (
    FIND_CARD,
    READ_APPENDIX,
    READ_BASE,
    SAM_ID,
    SAM_STATUS,
    SELECT_CARD,
    BadPayload,
    Command,
    FrameError,
    FrameTimeout,
    Outcome,
    Response,
    decode_response,
    describe,
    encode_request,
    format_sam_id,
    outcome,
    split_base_info,
)
from devices.ga467.record import OtherCardKind, RecordError, to_document
from devices.identity import IdCardReader, IdentityDocument, IdentityError, MrzAccess

log = logging.getLogger(__name__)

# How often a waiting read looks for the card: a citizen should not notice the gap.
_FIND_INTERVAL_S = 0.1
# Find-card misses in a row before a card that was seen counts as removed: a card held at
# the edge of the field sometimes misses one answer.
_MISSES_FOR_REMOVAL = 2
_CLOSE_JOIN_S = 3.0


class _NoAnswer(Exception):
    """The SAM stayed silent through every attempt."""


class _LinkFailure(Exception):
    """Answers kept arriving damaged through every attempt."""


class _SamFault(Exception):
    def __init__(self, sw3: int) -> None:
        super().__init__(describe(sw3))
        self.sw3 = sw3


@dataclass
class _ReadStats:
    frames: int = 0
    retries: int = 0
    bytes: int = 0
    noise_bytes: int = 0


class Ga467IdCardReader(IdCardReader):
    driver_name = "ga467"

    def __init__(
        self,
        device_id: str = "id_card",
        port: str = "/dev/ttyUSB0",
        baudrate: int = 115200,
        poll_interval_s: float = 0.5,
        response_timeout_s: float = 1.0,
        retries: int = 2,
        photo_decoder: str | None = None,
    ) -> None:
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        if poll_interval_s <= 0 or response_timeout_s <= 0:
            raise ValueError("poll_interval_s and response_timeout_s must be positive")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        # Before anything starts: a wrong plug-in path is a configuration error now.
        self._photo = photo_plugin.load(photo_decoder)
        super().__init__(device_id)
        self.port = port
        self.baudrate = baudrate
        self.poll_interval_s = poll_interval_s
        self.response_timeout_s = response_timeout_s
        self.retries = retries
        self._link = SerialLink(port, baudrate, write_timeout_s=response_timeout_s)
        # The line carries one exchange sequence at a time: the poller's or a command's.
        # Everything below that touches the link, the SAM state or the media runs under it.
        self._line = threading.Lock()
        self._latched = False
        self._misses = 0
        self._sam_ok: bool | None = None
        self._line_trouble = False
        self._detail: dict[str, Any] = {"sam": "unknown", "port": port}
        self._closing = threading.Event()
        self._set_status(media=MediaState.UNKNOWN, detail=dict(self._detail))
        self._watcher = threading.Thread(target=self._watch, name=f"{device_id}:ga467",
                                         daemon=True)
        self._watcher.start()

    def capabilities(self) -> Capabilities:
        features = {"residentId", "samVerified"} | ({"photo"} if self._photo else set())
        return Capabilities(self.device_class, self.driver_name, model="GA/T 467 SAM",
                            features=frozenset(features))

    def close(self) -> None:
        """Stop the poller and release the port."""
        super().close()
        self._closing.set()
        if self._watcher is not threading.current_thread():
            self._watcher.join(_CLOSE_JOIN_S)
        got_line = self._line.acquire(timeout=_CLOSE_JOIN_S)
        try:
            self._link.close()
        finally:
            if got_line:
                self._line.release()
        self._set_status(state=DeviceState.OFFLINE, media=MediaState.UNKNOWN)

    # -- background: attach, SAM health, card presence ------------------------------------
    def _watch(self) -> None:
        while not self._closing.is_set():
            if self._line.acquire(blocking=False):
                try:
                    self._tick()
                except Exception:  # the watcher must outlive any bug in one tick
                    log.exception("%s: poll failed", self.device_id)
                finally:
                    self._line.release()
            self._closing.wait(self.poll_interval_s)

    def _tick(self) -> None:
        if not self._link.is_open:
            self._attach()
            return
        try:
            if self._sam_ok is False:
                self._check_sam()
            else:
                self._poll_presence()
            self._line_trouble = False
        except Interrupted:
            return  # closing
        except (LinkGone, _NoAnswer) as exc:
            self._detach(exc)
        except _LinkFailure as exc:
            # Media and state stay as last known; said once, not at every poll.
            if not self._line_trouble:
                log.warning("%s: damaged answers while polling: %s", self.device_id, exc)
            self._line_trouble = True
        except _SamFault as fault:
            self._sam_fault(fault.sw3, announce=True)

    def _attach(self) -> bool:
        """Open the port and ask the SAM how it is; False while there is no reader."""
        before = self.status().state
        try:
            self._link.open()
            self._check_sam()
            if self._sam_ok:
                self._read_sam_id()
        except (LinkGone, _NoAnswer, _LinkFailure, Interrupted) as exc:
            self._link.close()
            self._no_device(exc)
            return False
        state = DeviceState.ONLINE if self._sam_ok else DeviceState.HARDWARE_ERROR
        if before is DeviceState.NO_DEVICE:
            log.info("%s: reader on %s is back", self.device_id, self.port)
            self._emit(EventKind.ATTACHED)
        self._set_status(state=state, detail=dict(self._detail))
        return True

    def _detach(self, reason: Exception) -> None:
        self._link.close()
        self._no_device(reason)

    def _no_device(self, reason: Exception) -> None:
        self._latched, self._misses, self._sam_ok = False, 0, None
        before = self.status().state
        if before is DeviceState.NO_DEVICE:
            return
        log.warning("%s: no reader on %s (%s)", self.device_id, self.port,
                    type(reason).__name__)
        self._detail["sam"] = "unknown"
        self._set_status(state=DeviceState.NO_DEVICE, media=MediaState.UNKNOWN,
                         detail=dict(self._detail))
        if before is not DeviceState.STARTING:
            self._emit(EventKind.DETACHED, severity=Severity.WARNING)

    def _check_sam(self) -> bool:
        response = self._exchange(SAM_STATUS)
        if outcome(response.sw3) is Outcome.SUCCESS:
            self._sam_healthy()
            return True
        self._sam_fault(response.sw3, announce=True)
        return False

    def _read_sam_id(self) -> None:
        # Only for the maintenance screen: a reader whose SAM number does not come through
        # still reads cards.
        try:
            response = self._exchange(SAM_ID)
        except _LinkFailure:
            return
        if outcome(response.sw3) is Outcome.SUCCESS:
            self._detail["samId"] = format_sam_id(response.data)

    def _sam_healthy(self) -> None:
        self._sam_ok = True
        self._detail["sam"] = "ok"
        self._detail.pop("samStatus", None)
        changes: dict[str, Any] = {"detail": dict(self._detail)}
        if self.status().state is DeviceState.HARDWARE_ERROR:
            log.info("%s: SAM answers normally again", self.device_id)
            changes["state"] = DeviceState.ONLINE
        self._set_status(**changes)

    def _sam_fault(self, sw3: int, *, announce: bool) -> None:
        """The reader needs attention until the SAM reports itself healthy (the poller asks
        every interval). ``announce`` emits the Error event when no command does."""
        self._sam_ok = False
        self._detail.update(sam="fault", samStatus=f"0x{sw3:02X}")
        was = self.status().state
        log.warning("%s: SAM fault %s", self.device_id, describe(sw3))
        self._set_status(state=DeviceState.HARDWARE_ERROR, detail=dict(self._detail),
                         last_error=(Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE))
        if announce and was is not DeviceState.HARDWARE_ERROR:
            self._emit(EventKind.ERROR, severity=Severity.ALARM,
                       error_kind=IdentityError.SAM_FAILURE, action="status")

    def _poll_presence(self) -> None:
        if self._latched:
            probe = self._exchange(READ_APPENDIX)
            result = outcome(probe.sw3)
            if result in (Outcome.SUCCESS, Outcome.NO_CONTENT):
                return  # the card that was read is still there
            if result is Outcome.SAM_FAULT:
                raise _SamFault(probe.sw3)
            self._latched = False
            found = outcome(self._exchange(FIND_CARD).sw3)
            self._media_absent()
            if found is Outcome.CARD_FOUND:  # lifted and put back (or another) between polls
                self._media_present()
            return
        response = self._exchange(FIND_CARD)
        result = outcome(response.sw3)
        if result is Outcome.CARD_FOUND:
            self._media_present()
        elif result is Outcome.NO_CARD:
            self._media_missed()
        elif result is Outcome.SAM_FAULT:
            raise _SamFault(response.sw3)

    # -- media (called with _line held) ---------------------------------------------------
    def _media_present(self) -> None:
        self._misses = 0
        if self.status().media is not MediaState.PRESENT:
            self._set_status(media=MediaState.PRESENT)
            self._emit(EventKind.MEDIA_INSERTED)

    def _media_missed(self) -> None:
        self._misses += 1
        if (self.status().media is MediaState.PRESENT
                and self._misses < _MISSES_FOR_REMOVAL):
            return
        self._media_absent()

    def _media_absent(self) -> None:
        self._latched, self._misses = False, 0
        before = self.status().media
        if before is not MediaState.NOT_PRESENT:
            self._set_status(media=MediaState.NOT_PRESENT)
            if before is MediaState.PRESENT:
                self._emit(EventKind.MEDIA_REMOVED)

    # -- the line -------------------------------------------------------------------------
    def _exchange(self, command: Command, stop: Callable[[], bool] | None = None,
                  stats: _ReadStats | None = None) -> Response:
        """One command with retries for damaged or missing answers (a status byte, even a
        "no card", is an answer and is returned as it is)."""
        request = encode_request(command)
        timeout = command.timeout_s(self.response_timeout_s, self.baudrate)
        should_stop = stop or self._closing.is_set
        failures: list[str] = []
        for _attempt in range(self.retries + 1):
            bytes_before, noise_before = self._link.bytes_received, self._link.noise_bytes
            try:
                response = decode_response(
                    self._link.exchange(request, time.monotonic() + timeout, should_stop))
            except FrameError as exc:
                failures.append(type(exc).__name__)
                continue
            finally:
                if stats is not None:
                    stats.bytes += self._link.bytes_received - bytes_before
                    stats.noise_bytes += self._link.noise_bytes - noise_before
            if outcome(response.sw3) is Outcome.LINE_FAULT:
                failures.append(f"SAM saw {describe(response.sw3)}")
                continue
            if stats is not None:
                stats.frames += 1
                stats.retries += len(failures)
            if failures:
                log.info("%s: %s answered after %s", self.device_id, command.name,
                         ", ".join(failures))
            return response
        if stats is not None:
            stats.retries += len(failures) - 1
        if all(f == FrameTimeout.__name__ for f in failures):
            raise _NoAnswer(f"{command.name}: no answer in {len(failures)} attempts")
        raise _LinkFailure(f"{command.name}: {', '.join(failures)}")

    # -- readIdentity ---------------------------------------------------------------------
    def _read_identity(self, ctx: CommandContext, access: MrzAccess | None) -> IdentityDocument:
        # ``access`` opens eMRTD chips; the SAM needs no key from the citizen.
        while not self._line.acquire(timeout=0.05):
            ctx.check()
        try:
            return self._read_holding_line(ctx)
        finally:
            self._line.release()

    def _read_holding_line(self, ctx: CommandContext) -> IdentityDocument:
        if self._closing.is_set():
            raise CommandFailed(Completion.DEVICE_NOT_READY, str(DeviceState.OFFLINE),
                                "ID card reader closed")
        if not self._link.is_open and not self._attach():
            raise CommandFailed(Completion.DEVICE_NOT_READY, IdentityError.NO_DEVICE,
                                "ID card reader not connected")
        stats = _ReadStats()
        try:
            if self._sam_ok is False and not self._check_sam():
                raise CommandFailed(Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE,
                                    f"SAM status {self._detail.get('samStatus')}")
            text, wlt, wait_s, read_s = self._find_select_read(ctx, stats)
        except Interrupted:
            self._stopped(ctx, waiting=False)
        except (LinkGone, _NoAnswer) as exc:
            self._detach(exc)
            raise CommandFailed(Completion.DEVICE_NOT_READY, IdentityError.NO_DEVICE,
                                f"ID card reader lost: {exc}") from exc
        except _LinkFailure as exc:
            raise CommandFailed(Completion.HARDWARE_ERROR, IdentityError.LINK_ERROR,
                                str(exc)) from exc
        except _SamFault as fault:
            self._sam_fault(fault.sw3, announce=False)
            raise CommandFailed(Completion.HARDWARE_ERROR, IdentityError.SAM_FAILURE,
                                f"SAM status {describe(fault.sw3)}") from fault
        except BadPayload as exc:
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.BAD_RECORD,
                                str(exc)) from exc
        decoded_at = time.monotonic()
        photo = self._photo.decode(wlt) if self._photo is not None else None
        read_stats = {"seconds": read_s + time.monotonic() - decoded_at,
                      "waitSeconds": wait_s, "frames": float(stats.frames),
                      "retries": float(stats.retries), "bytes": float(stats.bytes),
                      "noiseBytes": float(stats.noise_bytes)}
        try:
            document = to_document(text, photo, read_stats)
        except OtherCardKind as exc:
            self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                       request_id=ctx.request_id)
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.INVALID_MEDIA,
                                str(exc)) from exc
        except RecordError as exc:
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.BAD_RECORD,
                                f"card record invalid ({exc})") from exc
        log.info("%s: card read in %.3f s (%d frames, %d retries, photo %s)",
                 self.device_id, document.read_stats["seconds"], stats.frames,
                 stats.retries, document.photo_status)
        self._emit(EventKind.DATA_READ, request_id=ctx.request_id)
        return document

    def _find_select_read(self, ctx: CommandContext,
                          stats: _ReadStats) -> tuple[bytes, bytes, float, float]:
        """Wait for a card, select it, read it: (text, photo, wait seconds, read seconds)."""
        def stop() -> bool:
            return ctx.stopped or self._closing.is_set()

        waiting_since = time.monotonic()
        while True:
            attempt_at = time.monotonic()
            try:
                found = self._exchange(FIND_CARD, stop, stats)
            except Interrupted:
                self._stopped(ctx, waiting=True)
            result = outcome(found.sw3)
            if result is Outcome.CARD_FOUND:
                self._media_present()
                break
            if result is not Outcome.NO_CARD:
                self._card_refused(ctx, result, found.sw3)
            if self._latched:
                # The card read last time may still lie there, selected: read it again.
                self._latched = False
                again = self._exchange(READ_BASE, stop, stats)
                if outcome(again.sw3) is Outcome.SUCCESS:
                    self._latched = True
                    text, wlt = split_base_info(again.data)
                    return text, wlt, attempt_at - waiting_since, time.monotonic() - attempt_at
                if outcome(again.sw3) is Outcome.SAM_FAULT:
                    raise _SamFault(again.sw3)
            self._media_missed()
            if ctx.wait(_FIND_INTERVAL_S):
                self._stopped(ctx, waiting=True)
        wait_s = attempt_at - waiting_since

        selected = self._exchange(SELECT_CARD, stop, stats)
        if outcome(selected.sw3) is not Outcome.SUCCESS:
            self._card_refused(ctx, outcome(selected.sw3), selected.sw3)
        read = self._exchange(READ_BASE, stop, stats)
        if outcome(read.sw3) is not Outcome.SUCCESS:
            self._card_refused(ctx, outcome(read.sw3), read.sw3)
        self._latched = True
        text, wlt = split_base_info(read.data)
        return text, wlt, wait_s, time.monotonic() - attempt_at

    def _card_refused(self, ctx: CommandContext, result: Outcome, sw3: int) -> NoReturn:
        if result in (Outcome.NO_CARD, Outcome.READ_FAILED):
            self._media_absent()
            raise CommandFailed(Completion.USER_ERROR, IdentityError.MEDIA_REMOVED,
                                f"card removed during the read ({describe(sw3)})")
        if result in (Outcome.SELECT_FAILED, Outcome.CARD_REJECTED):
            self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                       request_id=ctx.request_id)
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.INVALID_MEDIA,
                                f"card not accepted ({describe(sw3)})")
        # A SAM fault, or an answer that does not belong to this command.
        raise _SamFault(sw3)

    def _stopped(self, ctx: CommandContext, *, waiting: bool) -> NoReturn:
        if waiting and ctx.stop_reason is None and not self._closing.is_set():
            raise CommandFailed(Completion.TIME_OUT, IdentityError.NO_MEDIA,
                                "no card was presented")
        ctx.check()
        raise CommandFailed(Completion.CANCELED, "stopped", "reader closing")
