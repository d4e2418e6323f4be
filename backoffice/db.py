"""Engine and sessions for the back office: any SQLAlchemy URL, SQLite by default, PostgreSQL
(through psycopg 3) by URL: ``postgresql://user@host/db`` or ``postgresql+psycopg://...``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from backoffice.models import Base

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


def init_schema(engine: Engine, *, reset: bool = False) -> None:
    """Create the tables (``create_all``; Alembic comes later); ``reset`` drops them first."""
    if reset:
        Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


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
