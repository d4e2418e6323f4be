"""The kiosk database on a real SQLite file: migrations, pragmas, audit trail, used codes."""

from __future__ import annotations

import enum
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import StatementError

from kiosk.storage import AuditLog, Database, UsedCodeStore, is_personal_key, open_database
from kiosk.storage.db import _on_connect, current_revision, downgrade, upgrade
from kiosk.storage.models import AuditEvent, Base

TABLES = {"audit_events", "used_appointment_codes"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "kiosk.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path)
    yield database
    database.close()


def tables(database: Database) -> set[str]:
    return set(sa.inspect(database.engine).get_table_names()) - {"alembic_version"}


# --- opening and migrating -----------------------------------------------------------------


def test_open_creates_folder_and_migrates_to_head(db: Database, db_path: Path) -> None:
    assert db_path.is_file()
    assert tables(db) == TABLES
    assert current_revision(db.engine) == "0001"


def test_migrations_do_not_depend_on_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_database(Path("rel") / "kiosk.db") as database:
        assert tables(database) == TABLES
    assert (tmp_path / "rel" / "kiosk.db").is_file()


def test_pragmas_on_a_fresh_connection(db: Database) -> None:
    db.engine.dispose()  # so the next connection is a new one, not one left by the migration
    with db.engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 5000


def test_connect_hook_overrides_sqlite_defaults(tmp_path: Path) -> None:
    # SQLite (and Python's sqlite3) may already default to some of these values, so the test
    # above cannot tell whether the hook ran; here every pragma starts elsewhere.
    raw = sqlite3.connect(tmp_path / "raw.db", timeout=0)
    try:
        raw.execute("PRAGMA synchronous=OFF")
        raw.execute("PRAGMA foreign_keys=OFF")
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        _on_connect(raw, None)
        values = [raw.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
        assert values == ["wal", 2, 1, 5000]
    finally:
        raw.close()


def test_wal_is_recorded_in_the_file(db: Database, db_path: Path) -> None:
    # A tool opening the file without our hooks sees WAL too: the mode is persistent.
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_downgrade_to_base_and_up_again(db: Database) -> None:
    downgrade(db.engine, "base")
    assert tables(db) == set()
    assert current_revision(db.engine) is None
    upgrade(db.engine, "head")
    assert tables(db) == TABLES
    assert current_revision(db.engine) == "0001"


def test_reopening_a_migrated_database_is_a_no_op(db_path: Path) -> None:
    with open_database(db_path) as first:
        AuditLog(first).record("first.open")
    with open_database(db_path) as second:
        assert current_revision(second.engine) == "0001"
        assert [r.kind for r in AuditLog(second).recent(10)] == ["first.open"]


def test_models_match_the_migrations(db: Database) -> None:
    # A model changed without a new revision would make this non-empty.
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_ddl_is_transactional(db: Database) -> None:
    # The engine emits BEGIN itself, so a migration that fails half-way rolls back its DDL;
    # with sqlite3's default handling this table would survive the rollback.
    with db.engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
        connection.rollback()
    assert "scratch" not in tables(db)


def test_write_session_takes_the_lock_at_begin(db: Database, db_path: Path) -> None:
    # Only a read has run, yet another writer is already shut out: BEGIN IMMEDIATE.
    with db.write_session() as session, session.begin():
        session.execute(sa.select(1))
        blocker = sqlite3.connect(db_path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                blocker.execute("BEGIN IMMEDIATE")
        finally:
            blocker.close()


def test_plain_session_does_not_lock_on_read(db: Database, db_path: Path) -> None:
    with db.session() as session, session.begin():
        session.execute(sa.select(1))
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_data_survives_reopening(db_path: Path) -> None:
    with open_database(db_path) as database:
        AuditLog(database).record("kiosk.started", device_id="kiosk", detail={"version": "0.1"})
        assert UsedCodeStore(database).mark_used("APT-1", "s1") is True
    with open_database(db_path) as database:
        records = AuditLog(database).recent(10)
        assert [(r.kind, r.device_id, r.detail) for r in records] == [
            ("kiosk.started", "kiosk", {"version": "0.1"})
        ]
        store = UsedCodeStore(database)
        assert store.is_used("APT-1") is True
        assert store.mark_used("APT-1", "s2") is False


# --- audit trail ---------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


def test_record_and_recent_newest_first(db: Database) -> None:
    audit = AuditLog(db)
    for i in range(5):
        audit.record(f"event.{i}", session_id="s1")
    assert [r.kind for r in audit.recent(3)] == ["event.4", "event.3", "event.2"]
    assert len(audit.recent(100)) == 5
    assert audit.recent(0) == []


def test_record_fields_and_utc_time(db: Database) -> None:
    at = datetime(2026, 11, 22, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    audit = AuditLog(db, clock=lambda: at)
    audit.record("checkin.ok", session_id="s1", device_id="barcode",
                 detail={"appointment_id": "id-APT-1", "count": 2, "ok": True, "none": None,
                         "when": at, "colour": Colour.RED, "items": ("a", 1)})
    (record,) = audit.recent(1)
    assert record.at == datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    assert record.at.tzinfo is not None
    assert (record.kind, record.session_id, record.device_id) == ("checkin.ok", "s1", "barcode")
    assert record.detail == {"appointment_id": "id-APT-1", "count": 2, "ok": True, "none": None,
                             "when": "2026-11-22T09:30:00+08:00", "colour": "red",
                             "items": ["a", 1]}


def test_detail_values_are_masked(db: Database) -> None:
    audit = AuditLog(db)
    audit.record("card.rejected", detail={
        "error": "bad checksum in 530102199001011234",
        "nested": {"contact": ["call 13812345678"]},
    })
    (record,) = audit.recent(1)
    assert record.detail == {
        "error": "bad checksum in 5301**********1234",
        "nested": {"contact": ["call 138****5678"]},
    }
    with db.engine.connect() as connection:
        raw = connection.execute(sa.select(AuditEvent.detail)).scalar_one()
    assert "199001011234" not in raw and "12345678" not in raw


@pytest.mark.parametrize("key", [
    "name", "applicant_name", "id_number", "address", "phone", "face", "photo", "birth_date",
    "Name", "applicant-phone", "holder_id_number", "contact_mobile",
])
def test_personal_keys_are_refused(db: Database, key: str) -> None:
    audit = AuditLog(db)
    with pytest.raises(ValueError, match="personal"):
        audit.record("oops", detail={key: "x"})
    with pytest.raises(ValueError, match="personal"):
        audit.record("oops", detail={"inner": {key: "x"}})
    assert audit.recent(10) == []  # nothing half-written


@pytest.mark.parametrize("key", ["service_name", "centre_name", "ip_address", "kind",
                                 "appointment_id", "photo_count"])
def test_ordinary_keys_are_allowed(key: str) -> None:
    assert is_personal_key(key) is False


def test_database_failure_is_logged_not_raised(db: Database,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # A lost audit line must not end a citizen's transaction; the failure shows in the log.
    downgrade(db.engine, "base")
    with caplog.at_level("ERROR", logger="kiosk.storage.audit"):
        AuditLog(db).record("after.disk.failure", detail={"code": "x"})
    assert any("after.disk.failure" in r.getMessage() for r in caplog.records)


def test_naive_timestamps_are_refused(db: Database) -> None:
    audit = AuditLog(db, clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(StatementError, match="naive"):
        audit.record("x")


# --- used appointment codes ----------------------------------------------------------------


def test_mark_used_once(db: Database) -> None:
    store = UsedCodeStore(db)
    assert store.is_used("APT-1") is False
    assert store.mark_used("APT-1", "s1") is True
    assert store.is_used("APT-1") is True
    assert store.mark_used("APT-1", "s2") is False
    assert store.is_used("APT-2") is False


def test_first_session_is_kept(db: Database) -> None:
    store = UsedCodeStore(db)
    store.mark_used("APT-1", "s1")
    store.mark_used("APT-1", "s2")
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT appointment_id, session_id FROM used_appointment_codes").fetchall()
    assert rows == [("APT-1", "s1")]


def test_racing_marks_give_exactly_one_winner(db: Database, db_path: Path) -> None:
    # Separate Database objects: separate connections, as two processes would have.
    others = [open_database(db_path) for _ in range(3)]
    stores = [UsedCodeStore(d) for d in (db, *others)]
    start = threading.Barrier(8)

    def attempt(i: int) -> bool:
        start.wait()
        return stores[i % len(stores)].mark_used("APT-RACE", f"s{i}")

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(attempt, range(8)))
    finally:
        for other in others:
            other.close()
    assert results.count(True) == 1
