"""Documents a citizen could not get printed, kept for staff to reprint (issue 5 §3).

A journey whose print failed twice hands the document here (``flows.print_job.HeldPrints``)
and tells the citizen to ask staff, giving the reference. Staff list what waits and reprint it
(maintenance screen); a reprinted document is removed, and nothing stays longer than
``keep_for`` (72 hours by default): a certificate is personal data, and a print nobody came
back for within three days will be issued again at the window.

At rest every held document is sealed with the outbox's AES-GCM key (``kiosk.outbox.crypto``)
and the associated data names the file's reference, so a file copied or renamed does not open.
File names are random references; nothing personal is in a name or a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devices.contract import CommandResult, Completion
from devices.printer import (
    Block,
    Field,
    Heading,
    ItemList,
    Media,
    Paragraph,
    PdfDocument,
    Printable,
    PrintDocument,
    Printer,
    PrintReceipt,
    QrCode,
    Rule,
    Signature,
    Spacer,
    Table,
    TextSize,
)
from flows.print_job import derived_key, is_definite
from kiosk.durable import fsync_dir
from kiosk.outbox.crypto import SealedDataError, Sealer

log = logging.getLogger(__name__)

DEFAULT_KEEP_FOR = timedelta(hours=72)
FOLDER_NAME = "held_prints"
_SUFFIX = ".held"
_TABLE = "held_prints"
_COLUMN = "document"
_REFERENCE = re.compile(r"^[0-9a-f]{16}$")
_FORMAT = 1
_BLOCKS: dict[str, type] = {cls.__name__: cls for cls in (
    Heading, Paragraph, Field, ItemList, Table, Rule, Spacer, QrCode, Signature)}


class HeldPrintError(Exception):
    """A held document that is not there, or does not open (wrong key, altered file). The
    message names the reference, never the content."""


@dataclass(frozen=True)
class HeldPrint:
    """One waiting document as the staff list shows it: no personal data."""

    reference: str
    held_at: datetime
    expires_at: datetime
    kind: str  # certificate, progress_query ...
    title: str  # 户籍证明, 办件进度
    media: Media
    reason: str  # the printer's error code on the last attempt
    session_id: str | None
    meta: dict[str, str]


class HeldPrintStore:
    """``HeldPrints`` in a folder of sealed files (one per document)."""

    def __init__(self, folder: Path, sealer: Sealer, *, keep_for: timedelta = DEFAULT_KEEP_FOR,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if keep_for <= timedelta(0):
            raise ValueError("keep_for must be positive")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.sealer = sealer
        self.keep_for = keep_for
        self.now = now
        self._lock = threading.Lock()
        # reference -> key of the next staff reprint, after a definite failure of the last one
        self._next_key: dict[str, str] = {}

    @classmethod
    def open(cls, data_dir: Path, key_file: Path, *,
             keep_for: timedelta = DEFAULT_KEEP_FOR) -> HeldPrintStore:
        """The store under ``data_dir``, sealed with the outbox key in ``key_file``."""
        return cls(Path(data_dir) / FOLDER_NAME, Sealer.from_key_file(key_file),
                   keep_for=keep_for)

    # -- HeldPrints ------------------------------------------------------------------------
    def hold(self, document: Printable, *, reason: str, session_id: str | None) -> str:
        reference = secrets.token_hex(8)
        record = {"format": _FORMAT, "held_at": self.now().isoformat(), "reason": reason,
                  "session_id": session_id, "document": encode_document(document)}
        sealed = self.sealer.seal(json.dumps(record, ensure_ascii=False).encode("utf-8"),
                                  _TABLE, _COLUMN, int(reference, 16))
        path = self._path(reference)
        temporary = path.with_suffix(".part")
        with self._lock:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, sealed)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
            fsync_dir(self.folder)
        log.info("held print %s kept (%s, %s)", reference, document.kind, reason)
        return reference

    # -- staff -----------------------------------------------------------------------------
    def list(self) -> list[HeldPrint]:
        """What waits, oldest first (expired documents are removed first)."""
        self.expire()
        found = []
        for reference, record in self._records():
            found.append(self._summary(reference, record))
        return sorted(found, key=lambda h: h.held_at)

    def document(self, reference: str) -> Printable:
        return decode_document(self._open(reference)["document"])

    def reprint(self, reference: str, printer: Printer,
                timeout_s: float = 60.0) -> CommandResult[PrintReceipt]:
        """Print the held document (staff at the kiosk); removed once it came out. A reprint
        after an unclear outcome uses the same key, after a definite failure a new one (the
        rule of flows.print_job)."""
        document = self.document(reference)
        key = self._next_key.get(reference, f"held:{reference}")
        result = printer.print_document(dataclasses.replace(document, job_key=key),
                                        timeout_s).wait()
        if result.ok:
            self._next_key.pop(reference, None)
            self.remove(reference)
            log.info("held print %s reprinted and removed", reference)
        elif result.completion is not Completion.CANCELED and is_definite(result):
            attempt = int(key.rpartition("#r")[2]) + 1 if "#r" in key else 2
            self._next_key[reference] = derived_key(f"held:{reference}", attempt)
        return result

    def remove(self, reference: str) -> bool:
        with self._lock:
            try:
                self._path(reference).unlink()
            except FileNotFoundError:
                return False
            fsync_dir(self.folder)
        return True

    def expire(self) -> int:
        """Remove what is older than ``keep_for`` (and files that no longer open, by their
        age on disk); returns how many went."""
        cutoff = self.now() - self.keep_for
        removed = 0
        for path in self.folder.glob(f"*{_SUFFIX}"):
            reference = path.stem
            try:
                held_at = datetime.fromisoformat(self._open(reference)["held_at"])
            except HeldPrintError:
                held_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if held_at <= cutoff and self.remove(reference):
                removed += 1
                log.info("held print %s expired", reference)
        for stale in self.folder.glob("*.part"):  # a write a power cut interrupted
            stale.unlink(missing_ok=True)
        return removed

    # -- files -----------------------------------------------------------------------------
    def _path(self, reference: str) -> Path:
        if not _REFERENCE.fullmatch(reference):
            raise HeldPrintError("not a held-print reference")
        return self.folder / f"{reference}{_SUFFIX}"

    def _open(self, reference: str) -> dict[str, Any]:
        try:
            sealed = self._path(reference).read_bytes()
        except FileNotFoundError:
            raise HeldPrintError(f"no held print {reference}") from None
        try:
            record = json.loads(self.sealer.open(sealed, _TABLE, _COLUMN, int(reference, 16)))
        except (SealedDataError, ValueError) as exc:
            raise HeldPrintError(f"held print {reference} does not open: "
                                 f"{type(exc).__name__}") from None
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            raise HeldPrintError(f"held print {reference} has an unknown format")
        return record

    def _records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            try:
                yield path.stem, self._open(path.stem)
            except HeldPrintError as exc:
                log.warning("%s", exc)

    def _summary(self, reference: str, record: dict[str, Any]) -> HeldPrint:
        document = record["document"]
        held_at = datetime.fromisoformat(record["held_at"])
        return HeldPrint(reference, held_at, held_at + self.keep_for, document["kind"],
                         document["title"], Media(document["media"]), record["reason"],
                         record.get("session_id"), dict(document.get("meta", {})))


# -- documents as JSON ---------------------------------------------------------------------------
def encode_document(document: Printable) -> dict[str, Any]:
    common = {"kind": document.kind, "job_key": document.job_key, "title": document.title,
              "media": str(document.media), "meta": dict(document.meta)}
    if isinstance(document, PdfDocument):
        return {"format": "pdf", **common,
                "pdf": base64.b64encode(document.pdf).decode("ascii")}
    return {"format": "blocks", **common, "header": document.header,
            "blocks": [_encode_block(block) for block in document.blocks]}


def decode_document(data: dict[str, Any]) -> Printable:
    try:
        common = {"kind": data["kind"], "job_key": data["job_key"], "title": data["title"],
                  "media": Media(data["media"]), "meta": data["meta"]}
        if data["format"] == "pdf":
            return PdfDocument(pdf=base64.b64decode(data["pdf"], validate=True), **common)
        return PrintDocument(header=data["header"],
                             blocks=tuple(_decode_block(b) for b in data["blocks"]), **common)
    except (KeyError, TypeError, ValueError) as exc:
        raise HeldPrintError(f"a held document does not decode ({type(exc).__name__})") from None


def _encode_block(block: Block) -> dict[str, Any]:
    return {"type": type(block).__name__,
            **{f.name: _plain(getattr(block, f.name)) for f in dataclasses.fields(block)}}


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _decode_block(data: dict[str, Any]) -> Block:
    fields = dict(data)
    cls = _BLOCKS[fields.pop("type")]
    values = {name: _tuples(value) for name, value in fields.items()}
    if cls is Paragraph and "size" in values:
        values["size"] = TextSize(values["size"])
    return cls(**values)  # type: ignore[no-any-return]


def _tuples(value: object) -> object:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
