"""The outbox's own SQLite file: the kiosk database's pragmas (WAL, ``synchronous=FULL``,
foreign keys, busy timeout, BEGIN handled by the engine) plus three of its own, and its own
Alembic history.

A file of its own because its life is different: it holds sealed personal data for as long as
the network is down, and nothing else may keep it busy or copy it around (diagnostics exports
and backups of ``kiosk.db`` never carry an applicant's documents).

- ``secure_delete=ON``: a delivered submission's pages are overwritten with zeros, not left in
  the free list (PIPL: nothing stays on disk after delivery, even sealed).
- ``auto_vacuum=INCREMENTAL``: set before the first table exists, so that after a long outage
  the file can give its space back (:func:`compact`) instead of staying at its peak size.
- ``journal_size_limit``: the WAL file is truncated back after checkpoints instead of keeping
  the size a burst of large materials gave it.

Acknowledgement bookkeeping (delete a delivered row, count a failed attempt, quarantine) goes
through a second pool with ``synchronous=NORMAL``: commits are ordered and atomic but not
fsync'd one by one. Losing one to a power cut is harmless by construction: the row is still
pending, is sent again with its stored idempotency key, and the back office replays its first
answer. Only enqueue, where "received" is promised to a citizen, pays for an fsync.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import event

from kiosk.durable import fsync_dir
from kiosk.storage.db import (
    Database,
    alembic_config,
    create_sqlite_engine,
    current_revision,
    upgrade,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
OUTBOX_FILE = "outbox.db"
HEAD = "head"
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def _outbox_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Must precede journal_mode=WAL on a new file, hence this hook runs first (insert=True).
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    finally:
        cursor.close()


@functools.cache
def script_head() -> str | None:
    """The newest revision in the packaged scripts (read once per process: running Alembic's
    environment at every open costs more than the rest of opening together)."""
    scripts = ScriptDirectory.from_config(alembic_config(migrations_dir=MIGRATIONS_DIR))
    return scripts.get_current_head()


def open_outbox_database(path: Path, revision: str = HEAD) -> Database:
    """Open (creating if needed) the outbox file at ``path`` and migrate it to ``revision``
    (the newest unless a test asks for an old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_sqlite_engine(path)
    event.listen(engine, "connect", _outbox_pragmas, insert=True)
    try:
        if revision != HEAD or current_revision(engine) != script_head():
            upgrade(engine, revision, migrations_dir=MIGRATIONS_DIR)
        # The file's directory entry (and the WAL's) must be durable before the first
        # submission is called received.
        fsync_dir(path.parent)
    except BaseException:
        engine.dispose()
        raise
    return Database(engine, path)


def _lazy_sync(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def open_bookkeeping(db: Database) -> Database:
    """A second handle on an open outbox file, for writes that need no fsync of their own."""
    engine = create_sqlite_engine(db.path)
    event.listen(engine, "connect", _outbox_pragmas, insert=True)
    event.listen(engine, "connect", _lazy_sync)  # after the standard pragmas (FULL)
    return Database(engine, db.path)


def outbox_revision(db: Database) -> str | None:
    return current_revision(db.engine)


COMPACT_STEP_PAGES = 1024  # 4 MiB a transaction: an enqueue never waits long behind it


def compact(db: Database, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Give free pages back to the file system, a step at a time, then truncate the WAL.

    One ``incremental_vacuum`` over gigabytes would hold the write lock for seconds (an
    enqueue waiting behind it could time out) and copy every moved page into one huge WAL.
    In steps, each commit is short and the auto-checkpoint keeps the WAL small. Returns the
    pages freed; stops early when ``should_stop()`` says so.
    """
    freed = 0
    connection = db.engine.raw_connection()
    try:
        sqlite = connection.driver_connection
        assert sqlite is not None
        while not should_stop():
            (free,) = sqlite.execute("PRAGMA freelist_count").fetchone()
            if not free:
                break
            # executescript steps the pragma to the end (a plain execute frees one page) and
            # commits it on its own.
            sqlite.executescript(f"PRAGMA incremental_vacuum({COMPACT_STEP_PAGES});")
            freed += min(free, COMPACT_STEP_PAGES)
        sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()
    return freed
