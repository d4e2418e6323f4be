"""A private PostgreSQL 15 cluster as a test peer, plus pytest fixtures.

Nothing of the system's PostgreSQL is used or changed: :class:`PostgresCluster` runs
``initdb`` into a new directory under /tmp and starts ``postgres`` on that directory, listening
only on a unix socket in the same directory (no TCP port, so nothing to collide with a system
cluster or another test run). PostgreSQL refuses to run as root, so when the tests run as root
(CI) the cluster runs as the ``postgres`` system user that Debian's ``postgresql`` package
creates (``nobody`` otherwise), and its directory belongs to that user; pytest's own tmp dirs
are private to root, hence /tmp.

The server is our child process (not daemonised through ``pg_ctl``) started under
``setpriv --pdeathsig``, so it dies with the test process even on SIGKILL; at the end it gets a
fast shutdown (SIGINT) and its directory is removed. Durability settings are off (``fsync``,
``full_page_writes``, ``synchronous_commit``): a test cluster is thrown away, only speed counts.

Each user of the cluster gets its own database (``create_database``), so tests never see
each other's rows and a second run never sees the first's.

Fixture: ``postgres`` (session): the running cluster, started on first use. When PostgreSQL is
not installed it fails with what to install if the ``CI`` environment variable is set, and
skips otherwise.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_VERSION = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PORT = 5432  # only names the socket file, inside our private directory
SUPERUSER = "zizhu"
RUN_AS_CANDIDATES = ("postgres", "nobody")
_START_TIMEOUT_S = 30.0
DIR_PREFIX = "zizhu-pg-"
_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """The cluster cannot be brought up; the message says what to install or fix."""


def _driver() -> str:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailable("psycopg not installed: pip install -e '.[dev]' "
                                  "(pyproject.toml pins psycopg[binary])") from exc
    return "postgresql+psycopg"


def remove_stale_clusters(parent: Path | None = None) -> None:
    """Remove the directories of clusters whose test run died without cleaning up (SIGKILL):
    a live run holds an exclusive lock on ``<root>/lock``. A directory without the lock file
    is a run between ``mkdtemp`` and taking its lock, so it is left alone."""
    for root in (parent or Path(tempfile.gettempdir())).glob(f"{DIR_PREFIX}*"):
        try:
            fd = os.open(root / "lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run
        finally:
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)


class PostgresCluster:
    """A throwaway cluster in ``root`` (``data/``, socket, ``postgres.log``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None
        self._databases: list[str] = []
        self._before_stop: list[Callable[[], object]] = []
        self._lock_fd: int | None = None  # held while the cluster lives: see remove_stale_clusters

    # -- bring up -------------------------------------------------------------------------
    def start(self) -> PostgresCluster:
        """initdb and start; return once the server accepts connections."""
        if self.process is not None:
            return self
        for tool in ("initdb", "postgres"):
            if not (PG_BIN / tool).exists():
                raise PostgresUnavailable(
                    f"{PG_BIN / tool} missing: apt-get install postgresql "
                    "(scripts/bootstrap.sh does)")
        _driver()
        self._run_as = self._pick_user()
        if self.root is None:
            remove_stale_clusters()
            self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        os.chmod(self.root, 0o700)
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self._initdb()
        self._launch()
        try:
            self._wait_ready()
        except PostgresUnavailable:
            self.stop()
            raise
        return self

    @staticmethod
    def _pick_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None  # an ordinary user may run its own cluster
        for name in RUN_AS_CANDIDATES:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run "
                                  "PostgreSQL as (it refuses root): apt-get install postgresql")

    def _as_user(self, command: list[str], *, pdeathsig: bool = False) -> list[str]:
        prefix = []
        setpriv = shutil.which("setpriv")
        if self._run_as is not None:
            if setpriv is None:
                raise PostgresUnavailable("setpriv missing (util-linux): needed to run "
                                          "PostgreSQL as an unprivileged user")
            prefix = [setpriv, f"--reuid={self._run_as.pw_uid}",
                      f"--regid={self._run_as.pw_gid}", "--clear-groups"]
        elif setpriv is not None and pdeathsig:
            prefix = [setpriv]
        if prefix and pdeathsig:
            prefix += ["--pdeathsig", "INT"]  # INT: fast shutdown
        return [*prefix, "--", *command] if prefix else command

    def _env(self) -> dict[str, str]:
        home = self._run_as.pw_dir if self._run_as else os.environ.get("HOME", "/")
        # LC_ALL=C.UTF-8: UTF-8 databases whatever the caller's locale (Chinese text).
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def _initdb(self) -> None:
        command = [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        result = subprocess.run(self._as_user(command), env=self._env(), cwd=self.root,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({result.returncode}):\n"
                                      f"{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def _launch(self) -> None:
        command = [str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(PORT),
                   "-k", str(self.socket_dir), "-c", "listen_addresses=",
                   "-c", "fsync=off", "-c", "full_page_writes=off",
                   "-c", "synchronous_commit=off", "-c", "max_connections=200"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            self.process = subprocess.Popen(self._as_user(command, pdeathsig=True),
                                            env=self._env(), cwd=self.root, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {self.process.returncode}:\n"
                                          f"{self.log_tail()}")
            try:
                with psycopg.connect(**self._connect_args("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            time.sleep(0.05)
        raise PostgresUnavailable(f"postgres not ready within {_START_TIMEOUT_S:.0f} s "
                                  f"({last}); log:\n{self.log_tail()}")

    # -- databases ------------------------------------------------------------------------
    def _connect_args(self, dbname: str) -> dict[str, object]:
        return {"host": str(self.socket_dir), "port": PORT, "user": SUPERUSER,
                "dbname": dbname}

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (over the private unix socket)."""
        return (f"{_driver()}://{SUPERUSER}@/{database}"
                f"?host={self.socket_dir}&port={PORT}")

    def create_database(self, prefix: str = "zizhu") -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        name = f"{prefix}_{os.getpid()}_{next(_names)}".lower()
        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.append(name)
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database made by ``create_database``, closing whatever is still connected."""
        import psycopg
        from psycopg import sql

        name = url_or_name.split("/")[-1].split("?")[0]
        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
        if name in self._databases:
            self._databases.remove(name)

    # -- take down ------------------------------------------------------------------------
    def before_stop(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` (stop a server using the cluster) before the cluster stops."""
        self._before_stop.append(callback)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the cluster's registered users, fast shutdown, remove the cluster's directory."""
        while self._before_stop:
            self._before_stop.pop()()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown: disconnect clients, no waiting for them.
            # Sent to setpriv's child through setpriv itself, which execs (same pid).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def unavailable(reason: str) -> None:
    """Fail in CI (a missing peer there is a broken build), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL test peer unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL test peer unavailable: {reason}")


# -- pytest fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the whole session; ``create_database()`` per user."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        cluster.stop()
        unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


__all__ = ["PostgresCluster", "PostgresUnavailable", "postgres", "unavailable"]
