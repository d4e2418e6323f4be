"""The kiosk's SQLite database: one file, WAL, fsync on every commit, schema by Alembic.

Durability is the point: a submission is committed here before the citizen is told it was
received, and a power cut at any moment must lose nothing. Hence, on every connection:

- ``journal_mode=WAL``: readers (the UI, diagnostics) never block the writer, and a crash
  mid-write leaves the last committed state intact.
- ``synchronous=FULL``: in WAL mode NORMAL may lose the last commits on power loss; FULL
  fsyncs the log at every commit, which is what "received" has to mean.
- ``foreign_keys=ON``: SQLite leaves them off unless asked, per connection.
- ``busy_timeout=5000``: a writer waits for another instead of failing at once.

Python 3.11's sqlite3 module only opens a transaction before INSERT/UPDATE/DELETE, so DDL
(migrations) and SELECTs would run outside any transaction. SQLAlchemy's documented recipe is
used instead: the driver's own BEGIN is switched off and the engine emits BEGIN itself, which
makes each migration atomic and reads repeatable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

PRAGMAS: tuple[tuple[str, str], ...] = (
    # busy_timeout first: switching to WAL needs a lock another process may hold briefly.
    ("busy_timeout", "5000"),
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
)

# Execution option read by the "begin" hook: a write transaction takes the write lock at
# BEGIN, so a read-then-write transaction cannot fail half-way with SQLITE_BUSY_SNAPSHOT
# (which busy_timeout does not retry) when another connection wrote in between.
_IMMEDIATE = "zizhu_begin_immediate"


def _on_connect(dbapi_connection: Any, _record: object) -> None:
    # isolation_level None: sqlite3 stops issuing its own BEGIN; _on_begin takes over.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for name, value in PRAGMAS:
            cursor.execute(f"PRAGMA {name}={value}")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        cursor.close()
    if str(mode).lower() != "wal":
        # Happens on file systems without shared memory (network mounts); the kiosk still
        # works but readers block writers, so make it visible in diagnostics.
        log.error("SQLite refused WAL mode (journal_mode=%s); check the data partition", mode)


def _on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def configure_sqlite_engine(engine: Engine) -> Engine:
    """Install the pragmas and transaction hooks on ``engine``; also used by migrations/env.py
    when Alembic is run from the command line."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def create_sqlite_engine(path: Path) -> Engine:
    return configure_sqlite_engine(create_engine(URL.create("sqlite", database=str(path))))


def alembic_config(connection: Connection | None = None,
                   migrations_dir: Path = MIGRATIONS_DIR) -> Config:
    """An Alembic config pointing at packaged migrations (the kiosk database's unless another
    folder is given, e.g. the outbox's), independent of the cwd."""
    cfg = Config()
    # configparser interpolation: a literal % in the install path must be doubled.
    cfg.set_main_option("script_location", str(migrations_dir).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head",
            migrations_dir: Path = MIGRATIONS_DIR) -> None:
    # One transaction for the whole run: a power cut mid-migration leaves the old schema.
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection, migrations_dir), revision)


def downgrade(engine: Engine, revision: str = "base",
              migrations_dir: Path = MIGRATIONS_DIR) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection, migrations_dir), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An open kiosk database: the engine, session factories, and close()."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self.write_sessions: sessionmaker[Session] = sessionmaker(
            engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False
        )

    def session(self) -> Session:
        """A session for reads and simple writes (``with db.session() as s, s.begin(): ...``)."""
        return self.sessions()

    def write_session(self) -> Session:
        """A session whose transactions take the write lock at BEGIN (BEGIN IMMEDIATE): use it
        when a transaction reads and then writes depending on what it read."""
        return self.write_sessions()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_database(path: Path) -> Database:
    """Open (creating if needed) the database file at ``path`` and migrate it to the newest
    schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_sqlite_engine(path)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Database(engine, path)
