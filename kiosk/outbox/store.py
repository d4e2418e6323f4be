"""The outbox: applications the citizen was told are received, kept until the back office has
acknowledged them.

:meth:`OutboxStore.enqueue` returns only after the submission and all its materials are
committed in one SQLite transaction (WAL, ``synchronous=FULL``: the log is fsync'd at commit),
so "received" on the screen survives a power cut at any later instant. Personal data and
materials are sealed (:mod:`kiosk.outbox.crypto`) before they reach the file.

The idempotency key is made here, at enqueue, and stored with the row: every attempt to deliver
the row sends the same key, so a resend after a crash or a lost answer is a replay at the back
office, never a second application.

Rows leave the outbox in two ways only: acknowledged (the row and its materials are deleted in
the transaction that records the 办件编号 in ``outbox_receipts``), or discarded by staff after a
quarantine. A quarantined row (the back office refused it as invalid) keeps its place out of
the queue so later submissions are not held up behind it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from kiosk.client import Applicant, ApplicationSubmission, Commitment, Material
from kiosk.outbox.crypto import OutboxKeyError, SealedDataError, Sealer
from kiosk.outbox.db import OUTBOX_FILE, compact, open_bookkeeping, open_outbox_database
from kiosk.outbox.models import (
    PENDING,
    QUARANTINED,
    OutboxMaterial,
    OutboxReceipt,
    OutboxSubmission,
)
from kiosk.storage.db import Database

log = logging.getLogger(__name__)

SUBMISSIONS = OutboxSubmission.__tablename__
MATERIALS = OutboxMaterial.__tablename__
PAYLOAD_VERSION = 1

DOCUMENT_TYPES = frozenset({"residentId", "passport", "travelPermit"})
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})
MAX_MATERIALS = 20
MAX_MATERIAL_BYTES = 10 * 1024 * 1024
MAX_FORM_BYTES = 64 * 1024
_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Crockford's base32: no I, L, O, U, so a number read aloud or typed is not misread.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NUMBER_RANDOM_CHARS = 10  # 50 bits: collisions between kiosks on one day are negligible

EntryState = Literal["pending", "quarantined", "delivered"]


class InvalidSubmission(ValueError):
    """The kiosk itself can tell the submission is incomplete or malformed: it is refused at
    enqueue rather than quarantined later. The message names the field, never its value."""


class UnreadableSubmission(SealedDataError):
    """A waiting row's sealed data does not open (altered or moved bytes)."""

    def __init__(self, row_id: int, local_tracking_number: str, message: str) -> None:
        super().__init__(message)
        self.row_id = row_id
        self.local_tracking_number = local_tracking_number


@dataclass(frozen=True, repr=False)
class PendingDelivery:
    """The head of the queue, opened, ready to be sent."""

    row_id: int
    local_tracking_number: str
    idempotency_key: str
    attempts: int
    submission: ApplicationSubmission

    def __repr__(self) -> str:
        return f"PendingDelivery({self.row_id}, {self.local_tracking_number})"


@dataclass(frozen=True, repr=False)
class PendingBatch:
    """The oldest pending submissions, opened (``deliveries``, in queue order), and those among
    them whose sealed data did not open (``unreadable``: to be quarantined, never sent)."""

    deliveries: list[PendingDelivery]
    unreadable: list[UnreadableSubmission]

    def __repr__(self) -> str:
        return f"PendingBatch({len(self.deliveries)} deliveries, {len(self.unreadable)} unreadable)"

    def __bool__(self) -> bool:
        return bool(self.deliveries or self.unreadable)


@dataclass(frozen=True)
class OutboxEntry:
    """What the kiosk can say about a local tracking number, without personal data."""

    local_tracking_number: str
    state: EntryState
    tracking_number: str | None = None  # 办件编号, once delivered
    service_item_code: str | None = None
    created_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class OutboxStats:
    """For the heartbeat: how much waits and since when."""

    pending: int
    quarantined: int
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float | None


def new_local_tracking_number(now: datetime) -> str:
    """``ZZ-20300102-K7M2Q9XW4T``: the day (kiosk local) and 50 random bits."""
    bits = secrets.randbits(5 * _NUMBER_RANDOM_CHARS)
    tail = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(_NUMBER_RANDOM_CHARS))
    return f"ZZ-{now:%Y%m%d}-{tail}"


def _default_clock() -> datetime:
    return datetime.now(UTC).astimezone()


def _check(submission: ApplicationSubmission) -> bytes:
    """Validate ``submission`` and return its sealed-payload plaintext."""
    if not isinstance(submission, ApplicationSubmission):
        raise InvalidSubmission("not an ApplicationSubmission")
    for name in ("centre_id", "kiosk_id", "service_item_code"):
        value = getattr(submission, name)
        if not isinstance(value, str) or not _CODE_RE.fullmatch(value):
            raise InvalidSubmission(f"{name} must be 1-64 of A-Z a-z 0-9 . _ -")
    if not isinstance(submission.session_id, str) or not 1 <= len(submission.session_id) <= 128:
        raise InvalidSubmission("session_id must be 1-128 characters")
    applicant = submission.applicant
    if applicant.document_type not in DOCUMENT_TYPES:
        raise InvalidSubmission(f"applicant.document_type must be one of {sorted(DOCUMENT_TYPES)}")
    if not applicant.id_number or not applicant.name:
        raise InvalidSubmission("applicant.id_number and applicant.name are required")
    signed_at = submission.commitment.signed_at
    if signed_at.tzinfo is None or signed_at.utcoffset() is None:
        raise InvalidSubmission("commitment.signed_at must be an aware datetime")
    if not submission.commitment.text_version:
        raise InvalidSubmission("commitment.text_version is required")
    if len(submission.materials) > MAX_MATERIALS:
        raise InvalidSubmission(f"at most {MAX_MATERIALS} materials")
    for position, material in enumerate(submission.materials):
        if not _CODE_RE.fullmatch(material.code or ""):
            raise InvalidSubmission(f"materials[{position}].code is malformed")
        if material.media_type not in MEDIA_TYPES:
            raise InvalidSubmission(f"materials[{position}].media_type must be one of "
                                    f"{sorted(MEDIA_TYPES)}")
        if not isinstance(material.content, bytes) or not material.content:
            raise InvalidSubmission(f"materials[{position}] is empty")
        if len(material.content) > MAX_MATERIAL_BYTES:
            raise InvalidSubmission(f"materials[{position}] is larger than "
                                    f"{MAX_MATERIAL_BYTES} bytes")
    for code in submission.deferred_materials:
        if not _CODE_RE.fullmatch(code or ""):
            raise InvalidSubmission("deferred_materials holds a malformed code")
    try:
        form = json.dumps(dict(submission.form), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidSubmission("form must be JSON (str keys; str, number, bool, null, "
                                "list, dict values)") from None
    if len(form.encode("utf-8")) > MAX_FORM_BYTES:
        raise InvalidSubmission(f"form is larger than {MAX_FORM_BYTES} bytes")
    payload = {
        "v": PAYLOAD_VERSION,
        "centre_id": submission.centre_id,
        "kiosk_id": submission.kiosk_id,
        "applicant": {"document_type": applicant.document_type,
                      "id_number": applicant.id_number, "name": applicant.name},
        "form": json.loads(form),
        "commitment": {"text_version": submission.commitment.text_version,
                       "signed_at": signed_at.isoformat()},
        "deferred_materials": list(submission.deferred_materials),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OutboxStore:
    """The durable, sealed queue of submissions. Thread-safe: the UI enqueues while the worker
    delivers, each on its own connection."""

    def __init__(self, db: Database, sealer: Sealer, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock or _default_clock
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()
        self._compacting = threading.Lock()
        self._check_key()
        # Acknowledgements without an fsync each: see kiosk.outbox.db.
        self._lazy = open_bookkeeping(db)

    @classmethod
    def open(cls, data_dir: Path, key_file: Path, *,
             clock: Callable[[], datetime] | None = None) -> OutboxStore:
        """The outbox in ``data_dir/outbox.db``, sealed with the key in ``key_file``. Raises
        :class:`OutboxKeyError` (a bad key file, or not the key the waiting rows were sealed
        with) before any submission is read or written."""
        sealer = Sealer.from_key_file(key_file)
        db = open_outbox_database(Path(data_dir) / OUTBOX_FILE)
        try:
            return cls(db, sealer, clock=clock)
        except BaseException:
            db.close()
            raise

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        self._lazy.close()
        self._db.close()

    def __enter__(self) -> OutboxStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments, must not block) after each enqueue commits."""
        with self._listeners_lock:
            self._listeners.append(listener)

    # -- the citizen's side --

    def enqueue(self, submission: ApplicationSubmission) -> str:
        """Commit ``submission`` durably and return its local tracking number.

        Raises :class:`InvalidSubmission` for what the kiosk can see is wrong, and SQLAlchemy's
        errors if the file cannot be written (disk full): then nothing was stored and the
        citizen must not be told it was received.
        """
        plaintext = _check(submission)
        for _ in range(3):
            try:
                number = self._insert(submission, plaintext)
                break
            except IntegrityError:
                # A random number or uuid already in use: astronomically rare, try fresh ones.
                log.warning("outbox: number collision at enqueue; retrying with a new one")
        else:
            raise RuntimeError("outbox: could not allocate a unique local tracking number")
        log.info("outbox: enqueued %s (%s, %d materials)", number,
                 submission.service_item_code, len(submission.materials))
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                # Stored is stored: a failing listener must not make the caller believe
                # otherwise (the citizen would submit again, and then it is there twice).
                log.exception("outbox: enqueue listener failed")
        return number

    def _insert(self, submission: ApplicationSubmission, plaintext: bytes) -> str:
        now = self._clock()
        number = new_local_tracking_number(now)
        seal = self._sealer.seal
        key_id = self._sealer.key_id
        with self._db.write_session() as session, session.begin():
            row = OutboxSubmission(
                local_tracking_number=number, idempotency_key=str(uuid.uuid4()),
                created_at=now, service_item_code=submission.service_item_code,
                session_id=submission.session_id, state=PENDING, key_id=key_id, payload=b"",
                attempts=0)
            session.add(row)
            session.flush()  # the row id is part of the associated data
            row.payload = seal(plaintext, SUBMISSIONS, "payload", row.id)
            for position, material in enumerate(submission.materials):
                item = OutboxMaterial(submission_id=row.id, position=position,
                                      code=material.code, media_type=material.media_type,
                                      size=len(material.content), key_id=key_id, content=b"")
                session.add(item)
                session.flush()
                item.content = seal(material.content, MATERIALS, "content", item.id)
        return number

    def lookup(self, local_tracking_number: str) -> OutboxEntry | None:
        """Where a local tracking number stands here: waiting, set aside, or delivered (with
        the 办件编号). None if this kiosk does not know it (or the receipt was pruned)."""
        with self._db.session() as session:
            row = session.scalar(select(OutboxSubmission).where(
                OutboxSubmission.local_tracking_number == local_tracking_number))
            if row is not None:
                state: EntryState = "quarantined" if row.state == QUARANTINED else "pending"
                return OutboxEntry(row.local_tracking_number, state,
                                   service_item_code=row.service_item_code,
                                   created_at=row.created_at, attempts=row.attempts,
                                   last_error=row.last_error)
            receipt = session.get(OutboxReceipt, local_tracking_number)
            if receipt is not None:
                return OutboxEntry(receipt.local_tracking_number, "delivered",
                                   tracking_number=receipt.tracking_number)
        return None

    # -- the worker's side --

    def next_pending(self) -> PendingDelivery | None:
        """The oldest pending submission, opened; None when nothing waits. Raises
        :class:`UnreadableSubmission` when its sealed data does not open."""
        batch = self.pending_batch(max_items=1)
        if batch.unreadable:
            raise batch.unreadable[0]
        return batch.deliveries[0] if batch.deliveries else None

    def pending_batch(self, max_items: int, max_bytes: int = 0,
                      after_id: int = 0) -> PendingBatch:
        """The oldest pending submissions after row ``after_id``, opened: at most
        ``max_items``, and no more materials than ``max_bytes`` together (0: no limit) unless
        the first alone is larger. A row whose sealed data does not open comes back in
        ``unreadable`` instead of raising, so one bad row does not keep the rows behind it from
        being read."""
        with self._db.session() as session, session.begin():
            sizes = session.execute(
                select(OutboxSubmission.id, func.coalesce(func.sum(OutboxMaterial.size), 0))
                .outerjoin(OutboxMaterial, OutboxMaterial.submission_id == OutboxSubmission.id)
                .where(OutboxSubmission.state == PENDING, OutboxSubmission.id > after_id)
                .group_by(OutboxSubmission.id).order_by(OutboxSubmission.id)
                .limit(max(1, max_items))).all()
            ids: list[int] = []
            total = 0
            for row_id, size in sizes:
                if ids and max_bytes and total + size > max_bytes:
                    break
                ids.append(row_id)
                total += size
            if not ids:
                return PendingBatch([], [])
            rows = session.scalars(select(OutboxSubmission).where(OutboxSubmission.id.in_(ids))
                                   .order_by(OutboxSubmission.id)).all()
            materials: dict[int, list[OutboxMaterial]] = {row_id: [] for row_id in ids}
            for material in session.scalars(
                    select(OutboxMaterial).where(OutboxMaterial.submission_id.in_(ids))
                    .order_by(OutboxMaterial.submission_id, OutboxMaterial.position)):
                materials[material.submission_id].append(material)
            batch = PendingBatch([], [])
            for row in rows:
                try:
                    batch.deliveries.append(self._open(row, materials[row.id]))
                except UnreadableSubmission as exc:
                    batch.unreadable.append(exc)
            return batch

    def _open(self, row: OutboxSubmission, materials: list[OutboxMaterial]) -> PendingDelivery:
        try:
            payload = json.loads(self._sealer.open(row.payload, SUBMISSIONS, "payload", row.id))
            opened = tuple(
                Material(code=m.code, media_type=m.media_type,
                         content=self._sealer.open(m.content, MATERIALS, "content", m.id))
                for m in materials)
        except SealedDataError as exc:
            raise UnreadableSubmission(row.id, row.local_tracking_number, str(exc)) from None
        if any(len(m.content) != s.size for m, s in zip(opened, materials, strict=True)):
            raise UnreadableSubmission(row.id, row.local_tracking_number,
                                       f"row {row.id}: a material's size does not match")
        submission = ApplicationSubmission(
            centre_id=payload["centre_id"], kiosk_id=payload["kiosk_id"],
            session_id=row.session_id, service_item_code=row.service_item_code,
            applicant=Applicant(**payload["applicant"]), form=payload["form"],
            commitment=Commitment(payload["commitment"]["text_version"],
                                  datetime.fromisoformat(payload["commitment"]["signed_at"])),
            materials=opened, deferred_materials=tuple(payload["deferred_materials"]))
        return PendingDelivery(row.id, row.local_tracking_number, row.idempotency_key,
                               row.attempts, submission)

    def mark_delivered(self, row_id: int, tracking_number: str) -> None:
        """The back office acknowledged the row: record the 办件编号 and delete the row with its
        materials, in one transaction."""
        self.mark_delivered_many([(row_id, tracking_number)])

    def mark_delivered_many(self, acknowledged: list[tuple[int, str]]) -> None:
        """``mark_delivered`` for several (row id, 办件编号) pairs in one transaction: a batch's
        acknowledgements cost one commit."""
        if not acknowledged:
            return
        now = self._clock()
        tracking = dict(acknowledged)
        with self._lazy.write_session() as session, session.begin():
            numbers: dict[int, str] = {row_id: number for row_id, number in session.execute(
                select(OutboxSubmission.id, OutboxSubmission.local_tracking_number)
                .where(OutboxSubmission.id.in_(tracking)))}
            if not numbers:
                return  # already done (a second worker, or a retried call)
            upsert = sqlite_insert(OutboxReceipt)
            session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[OutboxReceipt.local_tracking_number],
                    set_={"tracking_number": upsert.excluded.tracking_number,
                          "delivered_at": upsert.excluded.delivered_at}),
                [{"local_tracking_number": number, "tracking_number": tracking[row_id],
                  "delivered_at": now} for row_id, number in numbers.items()])
            session.execute(delete(OutboxMaterial)
                            .where(OutboxMaterial.submission_id.in_(numbers)))
            session.execute(delete(OutboxSubmission).where(OutboxSubmission.id.in_(numbers)))
        for row_id, number in numbers.items():
            log.info("outbox: %s delivered as %s", number, tracking[row_id])

    def record_failure(self, row_id: int, error: str) -> None:
        """An attempt that may succeed later (network, 5xx, garbage): count it."""
        self.record_failures([row_id], error)

    def record_failures(self, row_ids: list[int], error: str) -> None:
        """``record_failure`` for every row of a batch that was sent together."""
        if not row_ids:
            return
        with self._lazy.write_session() as session, session.begin():
            session.execute(update(OutboxSubmission).where(OutboxSubmission.id.in_(row_ids))
                            .values(attempts=OutboxSubmission.attempts + 1,
                                    last_attempt_at=self._clock(), last_error=error[:100]))

    def quarantine(self, row_id: int, error: str) -> None:
        """Set a row aside: the back office refused it as invalid, or it cannot be opened."""
        now = self._clock()
        with self._lazy.write_session() as session, session.begin():
            session.execute(update(OutboxSubmission).where(OutboxSubmission.id == row_id)
                            .values(state=QUARANTINED, quarantined_at=now, last_attempt_at=now,
                                    attempts=OutboxSubmission.attempts + 1,
                                    last_error=error[:100]))
        log.warning("outbox: row %d quarantined (%s)", row_id, error)

    # -- staff and heartbeat --

    def stats(self, now: datetime | None = None) -> OutboxStats:
        now = now or self._clock()
        with self._db.session() as session:
            counts: Mapping[str, int] = {
                state: count for state, count in session.execute(
                    select(OutboxSubmission.state, func.count())
                    .group_by(OutboxSubmission.state))}
            oldest = session.scalar(select(func.min(OutboxSubmission.created_at))
                                    .where(OutboxSubmission.state == PENDING))
        if oldest is not None:
            oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest
        return OutboxStats(
            pending=counts.get(PENDING, 0), quarantined=counts.get(QUARANTINED, 0),
            oldest_pending_at=oldest,
            oldest_pending_age_s=(max(0.0, (now - oldest).total_seconds())
                                  if oldest is not None else None))

    def quarantined(self) -> list[OutboxEntry]:
        with self._db.session() as session:
            rows = session.scalars(select(OutboxSubmission)
                                   .where(OutboxSubmission.state == QUARANTINED)
                                   .order_by(OutboxSubmission.id)).all()
        return [OutboxEntry(r.local_tracking_number, "quarantined",
                            service_item_code=r.service_item_code, created_at=r.created_at,
                            attempts=r.attempts, last_error=r.last_error) for r in rows]

    def requeue(self, local_tracking_number: str) -> bool:
        """Staff: send a quarantined submission again (the back office was fixed). It goes
        back to its place in the queue by age, and is sent when the worker next starts from
        the queue's head (at once when idle, after the current pass when draining)."""
        return self._set_state(local_tracking_number, QUARANTINED, PENDING)

    def discard(self, local_tracking_number: str) -> bool:
        """Staff: delete a quarantined submission (handled at a window instead)."""
        with self._db.write_session() as session, session.begin():
            row_id = session.scalar(select(OutboxSubmission.id).where(
                OutboxSubmission.local_tracking_number == local_tracking_number,
                OutboxSubmission.state == QUARANTINED))
            if row_id is None:
                return False
            session.execute(delete(OutboxMaterial).where(OutboxMaterial.submission_id == row_id))
            session.execute(delete(OutboxSubmission).where(OutboxSubmission.id == row_id))
        log.warning("outbox: quarantined %s discarded by staff", local_tracking_number)
        return True

    def prune_receipts(self, older_than: timedelta) -> int:
        """Forget delivered numbers older than ``older_than`` (the back office still knows)."""
        cutoff = self._clock() - older_than
        with self._db.write_session() as session, session.begin():
            result = session.execute(delete(OutboxReceipt)
                                     .where(OutboxReceipt.delivered_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def compact(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Return the space of delivered submissions to the file system (when the queue has
        emptied). One at a time; a second caller returns at once. Returns pages freed."""
        if not self._compacting.acquire(blocking=False):
            return 0
        try:
            return compact(self._db, should_stop)
        finally:
            self._compacting.release()

    # -- internals --

    def _set_state(self, number: str, old: str, new: str) -> bool:
        with self._db.write_session() as session, session.begin():
            result = session.execute(
                update(OutboxSubmission)
                .where(OutboxSubmission.local_tracking_number == number,
                       OutboxSubmission.state == old)
                .values(state=new, quarantined_at=None))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _check_key(self) -> None:
        """Refuse a key that is not the one the waiting rows were sealed with."""
        with self._db.session() as session:
            ids: set[Any] = set(session.scalars(select(OutboxSubmission.key_id).distinct()))
            ids |= set(session.scalars(select(OutboxMaterial.key_id).distinct()))
        foreign = sorted(i for i in ids if i != self._sealer.key_id)
        if foreign:
            raise OutboxKeyError(
                f"the outbox holds data sealed with key id(s) {', '.join(foreign)} but the key "
                f"file has key id {self._sealer.key_id}: wrong key file; waiting submissions "
                "cannot be read with it")
