"""The ``pcsc`` smart-card reader driver: a passport or travel-permit chip (ICAO 9303) on a
contactless PC/SC reader, opened with the MRZ, read, and checked by passive authentication.

The protocol lives in this package (BAC, secure messaging, LDS, passive authentication); the
transport is ``devices/pcsc`` (a link for the exchange, a monitor for hot-plug and card
events). Nothing read is kept once the command returns: the session keys go with the session
object, and the record goes to whoever asked.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date

from PIL import Image

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
from devices.emrtd import lds, passive_auth
from devices.emrtd.errors import (
    AccessDenied,
    CardRemoved,
    EmrtdError,
    FileNotFound,
    SecureMessagingError,
    UnknownCard,
)
from devices.emrtd.files import EF
from devices.emrtd.mrz import Mrz, MrzError, parse_mrz
from devices.emrtd.session import EXTENDED_READ_MAX, EmrtdSession
from devices.emrtd.tlv import TlvError
from devices.emrtd.trust import TrustStore
from devices.identity import (
    DocumentType,
    IdentityDocument,
    IdentityError,
    MrzAccess,
    PhotoStatus,
    SmartCardReader,
)
from devices.pcsc.link import (
    CardRemovedError,
    NoReaderError,
    PcscError,
    PcscLink,
    TransmitTimeout,
    choose_reader,
)
from devices.pcsc.monitor import PcscMonitor

log = logging.getLogger(__name__)


class PcscEmrtdReader(SmartCardReader):
    driver_name = "pcsc"

    def __init__(self, device_id: str = "smart_card", reader: str | None = None,
                 csca: str | None = None, apdu_timeout_s: float = 3.0,
                 max_read: int = EXTENDED_READ_MAX) -> None:
        """``reader``: the PC/SC reader's name or part of it (the first contactless one when
        unset); ``csca``: a CSCA certificate, folder or master list that document signers
        must chain to; without it a chip is at best ``notVerified``."""
        super().__init__(device_id)
        self.wanted = reader
        # A broken trust file is the technician's to fix now, not a surprise at the first
        # passport: TrustStoreError is a ValueError naming the path.
        self.trust = TrustStore.load(csca) if csca else None
        self.apdu_timeout_s = apdu_timeout_s
        self.max_read = max_read
        self._reader: str | None = None
        self._lock = threading.Lock()
        self._set_status(state=DeviceState.NO_DEVICE, media=MediaState.UNKNOWN,
                         detail={"trustAnchors": len(self.trust.certificates)
                                 if self.trust else 0})
        self._monitor = PcscMonitor(on_reader_added=self._reader_added,
                                    on_reader_removed=self._reader_removed,
                                    on_card_inserted=self._card_inserted,
                                    on_card_removed=self._card_removed,
                                    watch=self._watched).start()

    def capabilities(self) -> Capabilities:
        return Capabilities(self.device_class, self.driver_name, self._reader or "",
                            frozenset({"bac", "passiveAuthentication"}))

    # -- hot-plug and card events (monitor thread) ---------------------------------------------
    def _watched(self, name: str) -> bool:
        return name == self._reader

    def _reader_added(self, name: str) -> None:
        with self._lock:
            if self._reader is not None:
                return
            try:
                choose_reader([name], self.wanted)
            except NoReaderError:
                return  # not the one configured
            self._reader = name
        self._emit(EventKind.ATTACHED)
        self._set_status(state=DeviceState.ONLINE, media=MediaState.NOT_PRESENT)

    def _reader_removed(self, name: str) -> None:
        with self._lock:
            if name != self._reader:
                return
            self._reader = None
        self._set_status(state=DeviceState.NO_DEVICE, media=MediaState.UNKNOWN)
        self._emit(EventKind.DETACHED, severity=Severity.WARNING)

    def _card_inserted(self, name: str, atr: bytes) -> None:
        self._set_status(media=MediaState.PRESENT)
        self._emit(EventKind.MEDIA_INSERTED)

    def _card_removed(self, name: str) -> None:
        self._set_status(media=MediaState.NOT_PRESENT)
        self._emit(EventKind.MEDIA_REMOVED)

    # -- the read -----------------------------------------------------------------------------
    def _read_identity(self, ctx: CommandContext, access: MrzAccess | None) -> IdentityDocument:
        if access is None:
            # BAC needs the MRZ; the flow asks the citizen for it before reading.
            raise CommandFailed(Completion.USER_ERROR, IdentityError.SECURITY_FAIL,
                                "no MRZ given to open the chip")
        while True:
            if self.status().state is DeviceState.NO_DEVICE or self._reader is None:
                raise CommandFailed(Completion.DEVICE_NOT_READY, IdentityError.NO_DEVICE,
                                    "no contactless reader")
            if self.status().media is MediaState.PRESENT:
                break
            if ctx.wait(0.05):
                ctx.check()
        started = time.monotonic()
        link = PcscLink(self._reader, transmit_timeout=self.apdu_timeout_s)
        try:
            link.connect()
            files, session, phases = self._read_files(ctx, link, access)
        except (CardRemovedError, CardRemoved):
            raise CommandFailed(Completion.USER_ERROR, IdentityError.MEDIA_REMOVED,
                                "chip left the field mid-read") from None
        except NoReaderError:
            raise CommandFailed(Completion.DEVICE_NOT_READY, IdentityError.NO_DEVICE,
                                "reader gone") from None
        except TransmitTimeout:
            raise CommandFailed(Completion.HARDWARE_ERROR, IdentityError.READ_FAILED,
                                "chip did not answer in time") from None
        except AccessDenied:
            raise CommandFailed(Completion.USER_ERROR, IdentityError.SECURITY_FAIL,
                                "BAC refused: the MRZ does not open this chip") from None
        except UnknownCard:
            self._emit(EventKind.INVALID_MEDIA, severity=Severity.WARNING,
                       request_id=ctx.request_id)
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.INVALID_MEDIA,
                                "not an ICAO 9303 chip") from None
        except SecureMessagingError:
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.SM_MAC_FAILURE,
                                "secure messaging check failed") from None
        except (FileNotFound, EmrtdError, PcscError) as failed:
            raise CommandFailed(Completion.HARDWARE_ERROR, IdentityError.READ_FAILED,
                                type(failed).__name__) from None
        finally:
            link.disconnect()
        document = self._document(files)
        pa_started = time.monotonic()
        result = passive_auth.verify(files[EF.SOD], {1: files[EF.DG1], 2: files[EF.DG2]},
                                     self.trust)
        stats = {**phases, "paSeconds": round(time.monotonic() - pa_started, 4),
                 "seconds": round(time.monotonic() - started, 4),
                 "apdus": session.apdu_count, "bytes": session.bytes_read,
                 "readSize": session.read_size}
        self._emit(EventKind.DATA_READ, request_id=ctx.request_id)
        return _with(document, result, stats)

    def _read_files(self, ctx: CommandContext, link: PcscLink, access: MrzAccess,
                    ) -> tuple[dict[EF, bytes], EmrtdSession, dict[str, float]]:
        def transmit(apdu: bytes) -> bytes:
            ctx.check()  # a cancel or the deadline ends the read between two APDUs
            return link.transmit(apdu, min(self.apdu_timeout_s, max(ctx.remaining(), 0.05)))

        session = EmrtdSession(transmit, max_read=self.max_read)
        t0 = time.monotonic()
        session.open(access)
        t1 = time.monotonic()
        files = {ef: session.read_file(ef) for ef in (EF.COM, EF.DG1, EF.DG2, EF.SOD)}
        t2 = time.monotonic()
        session.close()
        return files, session, {"bacSeconds": round(t1 - t0, 4), "readSeconds": round(t2 - t1, 4)}

    @staticmethod
    def _document(files: dict[EF, bytes]) -> IdentityDocument:
        try:
            mrz = parse_mrz(lds.parse_dg1(files[EF.DG1]))
            face = lds.parse_dg2(files[EF.DG2])
            photo = face.data if face.mime == "image/jpeg" else _png(lds.decode_face(face))
        except (lds.LdsError, TlvError, MrzError, OSError) as bad:
            raise CommandFailed(Completion.INVALID_DATA, IdentityError.BAD_RECORD,
                                type(bad).__name__) from None
        return IdentityDocument(
            document_type=DocumentType.PASSPORT if mrz.document_code.startswith("P")
            else DocumentType.TRAVEL_PERMIT,
            id_number=mrz.document_number, name=_name(mrz), gender=mrz.sex,
            nationality=mrz.nationality, birth_date=_mrz_date(mrz.birth_date, past=True),
            issuer=mrz.issuing_state, valid_from=None,
            valid_until=_mrz_date(mrz.expiry_date, past=False),
            photo=photo, photo_status=PhotoStatus.AVAILABLE)

    def close(self) -> None:
        super().close()
        self._monitor.stop()
        self._set_status(state=DeviceState.OFFLINE)


def _with(document: IdentityDocument, result: passive_auth.PassiveAuthResult,
          stats: dict[str, float]) -> IdentityDocument:
    return replace(document, authenticity=result.status, authenticity_detail=result.detail,
                   read_stats=stats)


def _name(mrz: Mrz) -> str:
    return " ".join(part for part in (mrz.surname, mrz.given_names) if part)


def _mrz_date(yymmdd: str, past: bool, today: Callable[[], date] = date.today) -> date:
    """MRZ dates have two-digit years: a birth date is in the past, an expiry within the next
    decades (ICAO 9303 leaves the century to the reader)."""
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    now = today().year
    century = now - now % 100
    year = century + yy
    if past and year > now:
        year -= 100
    if not past and year < now - 50:
        year += 100
    return date(year, mm, dd)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
