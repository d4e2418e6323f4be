"""Starts the reference back office as a subprocess: the kiosk's embedded default, and the real
HTTP peer of the tests.

The kiosk never imports ``backoffice``; it runs ``python -m backoffice`` and talks HTTP to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

HOST = "127.0.0.1"
DEFAULT_DB_URL = "sqlite:///var/backoffice.db"
DEFAULT_TIMEZONE = "Asia/Shanghai"


class EmbeddedBackOfficeError(RuntimeError):
    """The back office did not come up; the message carries the tail of its stderr."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the OS's pick; someone may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


class EmbeddedBackOffice:
    """``with EmbeddedBackOffice(port, db_url, seed) as bo: ... bo.url ...``

    Starts the server bound to 127.0.0.1, waits until /api/v1/health answers, and stops it
    (SIGTERM, then SIGKILL) on exit. ``port=None`` picks a free one.
    """

    def __init__(self, port: int | None = None, db_url: str = DEFAULT_DB_URL,
                 seed: str | Path | None = None, timezone: str = DEFAULT_TIMEZONE, *,
                 reset: bool = False, startup_timeout_s: float = 20.0,
                 python: str = sys.executable, cwd: str | Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.db_url = db_url
        self.seed = Path(seed) if seed is not None else None
        self.timezone = timezone
        self.reset = reset
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.cwd = Path(cwd) if cwd is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "backoffice", "--host", HOST, "--port", str(self.port),
               "--db", self.db_url, "--timezone", self.timezone, "--log-level", "warning"]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        if self.reset:
            cmd.append("--reset")
        return cmd

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBackOffice:
        if self.running():
            return self
        if _port_answers(self.port):
            # Otherwise the health check below could be answered by that other server.
            raise EmbeddedBackOfficeError(
                f"port {self.port} on {HOST} is in use; stop the other process or pick another")
        # Output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a
        # full pipe would freeze it. The file is what the error message quotes from.
        self._log = tempfile.TemporaryFile(prefix="backoffice-", suffix=".log")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.cwd, env=env)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        health = f"{self.url}/api/v1/health"
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    raise EmbeddedBackOfficeError(
                        f"back office exited with status {code} before answering on {self.url}; "
                        f"its output ends with:\n{self.output_tail()}")
                try:
                    if http.get(health).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedBackOfficeError(
                        f"back office did not answer on {health} within "
                        f"{self.startup_timeout_s:g} s; its output ends with:\n"
                        f"{self.output_tail()}")
                time.sleep(0.05)

    def output_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the server wrote (stdout and stderr together)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace")
        self._log.seek(0, os.SEEK_END)
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """Stop the server; returns its exit status (None if it was never started)."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> EmbeddedBackOffice:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
