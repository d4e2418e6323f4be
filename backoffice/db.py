"""Engine and sessions for the back office: any SQLAlchemy URL, SQLite by default, PostgreSQL
(through psycopg 3) by URL: ``postgresql://user@host/db`` or ``postgresql+psycopg://...``.

The schema is Alembic's (backoffice/migrations/), brought to the newest revision at every start
by :func:`migrate`; see there for databases made before Alembic.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError as AlembicError
from sqlalchemy import Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from backoffice.models import Base

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///var/backoffice.db"


# The PostgreSQL driver we install (psycopg 3); SQLAlchemy's default for a bare postgresql://
# is psycopg2, which we do not ship, and it knows no postgres:// (Heroku's and libpq's alias).
POSTGRES_DRIVERNAME = "postgresql+psycopg"
_POSTGRES_ALIASES = {"postgres", "postgresql"}


def normalise_url(url: str | URL) -> URL:
    """``url`` parsed, with a bare PostgreSQL scheme pointed at psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in _POSTGRES_ALIASES:
        parsed = parsed.set(drivername=POSTGRES_DRIVERNAME)
    return parsed


def _is_sqlite_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and (
        not parsed.database or parsed.database == ":memory:"
        or parsed.query.get("mode") == "memory")


def sqlite_file_path(url: str) -> Path | None:
    """The file a SQLite URL points at, or None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(url):
        return None
    database = parsed.database or ""
    if database.startswith("file:"):
        database = database[len("file:"):]
    return Path(database)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; for SQLite, creates the file's folder and makes writes serialised."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, echo=echo, pool_pre_ping=True)

    kwargs: dict[str, Any] = {"echo": echo}
    # Request handlers run on a thread pool, so one connection may be used by several threads.
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
    if _is_sqlite_memory(url):
        # Each new connection would be a new, empty database: share the only one.
        kwargs["poolclass"] = StaticPool
    else:
        path = sqlite_file_path(url)
        if path is not None and path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from sqlite3 so that our BEGIN below is what runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN: a read-then-write transaction (numbering,
        # check-in) can then never interleave with another one, and a waiting writer queues on
        # the busy timeout instead of failing with "database is locked" halfway through.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# --- the schema: Alembic ------------------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
# The revision whose schema is what the create_all code of the versions before Alembic made.
INITIAL_REVISION = "bo0001"
VERSION_TABLE = "alembic_version"
# Tables an older revision created and a later one dropped: --reset must still clear them from
# a database left at that older revision, so a revision that drops a table adds its name here.
RETIRED_TABLES: frozenset[str] = frozenset()
_MIGRATION_LOCK = "zizhu-backoffice-schema"
# Alembic's ``context`` and ``op`` are module-level proxies onto the one run in progress, so
# two runs on two threads of a process (two in-process test servers) would trample each other;
# the database locks in migrate() only order runs on the same database.
_ALEMBIC = threading.RLock()


class SchemaError(Exception):
    """The database cannot be brought to this version's schema without losing data; the
    message says why and what the operator can do. Names tables and columns, never data."""


@dataclass(frozen=True)
class Migration:
    """What :func:`migrate` did: the revision found and the one left."""

    before: str | None  # None: empty, unversioned (see ``adopted``) or just reset
    after: str
    adopted: bool = False  # an unversioned database of the create_all era, stamped
    reset: bool = False

    @property
    def changed(self) -> bool:
        return self.reset or self.adopted or self.before != self.after

    def describe(self) -> str:
        """One line for the operator."""
        if self.reset:
            return f"reset: every back-office table dropped, schema created at {self.after}"
        if self.adopted:
            upgraded = f", then upgraded to {self.after}" if self.after != INITIAL_REVISION else ""
            return ("made before schema versioning; its tables match the first versioned "
                    f"schema, stamped at {INITIAL_REVISION}{upgraded}")
        if self.before is None:
            return f"schema created at {self.after}"
        if self.before != self.after:
            return f"schema upgraded from {self.before} to {self.after}"
        return f"schema already at {self.after}"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config on the packaged migrations, independent of the working directory;
    with ``connection``, env.py runs on it (inside the caller's transaction)."""
    config = Config()
    # configparser interpolation: a literal % in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    # Read once per process: the in-process test servers open hundreds of databases.
    return ScriptDirectory.from_config(alembic_config())


def script_head() -> str:
    """The newest revision of the packaged migrations."""
    head = _scripts().get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def _alembic(run: Callable[[Config, str], None], connection: Connection,
             revision: str) -> None:
    with _ALEMBIC:
        run(alembic_config(connection), revision)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision ``engine``'s database is at; None when it has no version table."""
    with engine.connect() as connection:
        return _revision(connection)


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except (AlembicError, RevisionError):
        return False


def migrate(engine: Engine, *, reset: bool = False, revision: str = HEAD) -> Migration:
    """Bring the database to ``revision`` (the newest unless a test asks for an older one).

    - Empty database: the migrations create the schema (never ``create_all``).
    - At an older revision: upgraded in place, rows kept.
    - Unversioned (back-office tables, no ``alembic_version``: made by the create_all code of
      the versions before Alembic): its tables are checked against :data:`INITIAL_REVISION`'s
      and, if they match, it is stamped at that revision and then upgraded like any other;
      if not, :class:`SchemaError` (``reset`` is the way out).
    - At a revision this version does not know (a newer back office wrote it):
      :class:`SchemaError`, nothing touched.
    - ``reset``: every back-office table is dropped first (all data lost), whatever state the
      database is in, and the schema made anew.

    All of it is one transaction, so a failure or a power cut leaves the database as it was
    (PostgreSQL and SQLite both roll DDL back). On PostgreSQL an advisory lock makes a second
    back office starting on the same database wait for the first one's migration and then
    find nothing to do.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                               {"key": _MIGRATION_LOCK})
        before = _revision(connection)
        adopted = False
        if reset:
            drop_schema(connection)
            before = None
        elif before is None:
            adopted = adopt_unversioned(connection)
        elif not _known(before):
            raise SchemaError(
                f"the database is at schema revision {before!r}, which this back office does "
                f"not know (it knows up to {script_head()!r}): a newer version wrote it; run "
                "that version, or start empty with --reset (deletes all data)")
        if revision != HEAD or _revision(connection) != script_head():
            _alembic(command.upgrade, connection, revision)
        result = Migration(before=before, after=_revision(connection) or "", adopted=adopted,
                           reset=reset)
    if result.changed:
        log.info("database: %s", result.describe())
    return result


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database down to ``revision`` ("base": no tables); for developers and tests."""
    with engine.begin() as connection:
        _alembic(command.downgrade, connection, revision)


def init_schema(engine: Engine, *, reset: bool = False) -> None:
    """The schema at the newest revision, at every start (see :func:`migrate`); ``reset``
    drops every back-office table first."""
    migrate(engine, reset=reset)


def owned_tables() -> frozenset[str]:
    """The names of every table the back office has ever made, the version table included."""
    return frozenset(Base.metadata.tables) | RETIRED_TABLES | {VERSION_TABLE}


def drop_schema(connection: Connection) -> None:
    """Drop the back-office tables present, in foreign-key order, and nothing else (a shared
    PostgreSQL database may hold other programs' tables).

    They are reflected rather than taken from the models, so whatever revision or pre-Alembic
    shape the database is in, the drop follows its real foreign keys."""
    present = MetaData()
    present.reflect(connection, only=lambda name, _meta: name in owned_tables())
    present.drop_all(connection)


# A column as compared when adopting an unversioned database: its name, whether it takes NULL,
# and its type's family, SQLAlchemy's type affinity (the notion Alembic's type comparison uses
# too): PostgreSQL's TIMESTAMP and SQLite's DATETIME are both DateTime, so a PostgreSQL
# database is compared with the reference made on SQLite. Lengths, defaults, constraints and
# indexes are not compared.
_ColumnShape = tuple[str, bool, str]


def _shape(connection: Connection, tables: Iterable[str]) -> dict[str, set[_ColumnShape]]:
    inspector = inspect(connection)
    return {table: {(column["name"], bool(column["nullable"]),
                     column["type"]._type_affinity.__name__)  # type: ignore[union-attr]
                    for column in inspector.get_columns(table)}
            for table in tables}


@functools.cache
def initial_shape() -> dict[str, frozenset[_ColumnShape]]:
    """The tables and columns :data:`INITIAL_REVISION` creates, read from a scratch in-memory
    database brought to it (so it stays right when the models move on)."""
    scratch = make_engine("sqlite://")
    try:
        with scratch.begin() as connection:
            _alembic(command.upgrade, connection, INITIAL_REVISION)
            tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
            return {table: frozenset(columns)
                    for table, columns in _shape(connection, tables).items()}
    finally:
        scratch.dispose()


def schema_differences(connection: Connection) -> list[str]:
    """How the back-office tables of ``connection``'s database differ from those of
    :data:`INITIAL_REVISION` (empty: they match), one short line each."""
    expected = initial_shape()
    present = set(inspect(connection).get_table_names())
    differences = [f"table {name} missing" for name in sorted(expected.keys() - present)]
    found = _shape(connection, sorted(expected.keys() & present))
    for table, columns in found.items():
        wanted = expected[table]
        names = {name for name, _, _ in columns}
        wanted_names = {name for name, _, _ in wanted}
        differences += [f"column {table}.{name} missing" for name in sorted(wanted_names - names)]
        differences += [f"column {table}.{name} unexpected" for name in sorted(names - wanted_names)]
        differences += [f"column {table}.{name} is {family}{'' if nullable else ' NOT NULL'}"
                        for name, nullable, family in sorted(columns - wanted)
                        if name in wanted_names]
    return differences


def adopt_unversioned(connection: Connection) -> bool:
    """Stamp a database of the create_all era at :data:`INITIAL_REVISION`, once its tables
    and columns are checked to be that revision's; True if it was one. An empty database (no
    back-office table; other programs' tables do not count) is left alone: False."""
    # The version table alone (left empty by a downgrade to base) makes no back office.
    if not set(inspect(connection).get_table_names()) & (owned_tables() - {VERSION_TABLE}):
        return False
    differences = schema_differences(connection)
    if differences:
        shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
        raise SchemaError(
            "the database has back-office tables but no schema version, and they are not the "
            f"schema this version can take over ({shown}): an older version made it. Start "
            "empty with --reset (deletes all data), or bring the tables to that schema by hand")
    _alembic(command.stamp, connection, INITIAL_REVISION)
    return True


def serialise_on(session: Session, key: str) -> None:
    """Make the rest of ``session``'s transaction wait for any other transaction that called
    this with the same ``key``, until that one ends: a check-then-insert (an idempotency key
    looked up, then its record written) then cannot interleave with a concurrent twin.

    On PostgreSQL a transaction-level advisory lock (released at COMMIT/ROLLBACK; READ
    COMMITTED, so what the twin committed is visible afterwards). SQLite needs nothing: our
    ``BEGIN IMMEDIATE`` already serialises every writing transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": key})


class SessionFactory:
    """Hands out sessions; for an in-memory SQLite database (a single shared connection) it
    also makes them take turns, since one connection cannot hold two transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._maker = sessionmaker(bind=engine, expire_on_commit=False)
        url = engine.url.render_as_string(hide_password=False)
        self._lock: threading.Lock | None = (
            threading.Lock() if _is_sqlite_memory(url) else None)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        lock = self._lock or contextlib.nullcontext()
        with lock, self._maker() as session:
            yield session
