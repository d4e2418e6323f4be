"""``kiosk-backoffice``: run the reference back office under uvicorn.

    kiosk-backoffice [--host 127.0.0.1] [--port 8765] [--db sqlite:///var/backoffice.db]
                     [--seed PATH] [--reset] [--timezone Asia/Shanghai]

Problems the operator can fix (port taken, bad seed file, unknown timezone) end in one line on
stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from backoffice import __version__
from backoffice.app import DEFAULT_TIMEZONE, create_app
from backoffice.db import DEFAULT_DATABASE_URL
from backoffice.seed import SeedError

PROG = "kiosk-backoffice"
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Zizhu reference back office.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--db", default=DEFAULT_DATABASE_URL, metavar="URL",
                        help=f"SQLAlchemy database URL (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--seed", metavar="PATH",
                        help="seed JSON to load (only what is missing is inserted)")
    parser.add_argument("--reset", action="store_true",
                        help="drop all tables first, then load --seed")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE,
                        help=f"where 'today' is decided (default {DEFAULT_TIMEZONE})")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves and hand it to uvicorn, so "port in use" is known
    before anything starts and is reported in our words rather than as uvicorn's traceback."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _canon, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        # Lets a restart reuse the port while old connections sit in TIME_WAIT; a live listener
        # still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        return _fail(f"--port {args.port} is not a TCP port (1-65535)")
    try:
        # The URL may carry a password: only this rendering of it is ever printed.
        shown_db = make_url(args.db).render_as_string(hide_password=True)
    except ArgumentError:
        return _fail("--db is not a database URL (e.g. sqlite:///var/backoffice.db)")
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"unknown timezone {args.timezone!r} (try Asia/Shanghai)")

    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(f"port {args.port} on {args.host} is in use; "
                         "stop the other process or pass --port")
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")

    import uvicorn  # here, so that --help and argument errors stay fast

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(args.db, timezone=args.timezone, seed=args.seed, reset=args.reset)
    except SeedError as exc:
        sock.close()
        return _fail(str(exc))
    except ImportError as exc:
        sock.close()
        return _fail(f"database {shown_db}: its driver is not installed ({exc.name or exc})")
    except OSError as exc:
        sock.close()
        return _fail(f"database {shown_db}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except SQLAlchemyError as exc:
        sock.close()
        return _fail(f"database {shown_db}: {type(exc).__name__}: {exc.args[0] if exc.args else ''}")

    config = uvicorn.Config(app, log_level=args.log_level, lifespan="off")
    server = uvicorn.Server(config)
    print(f"{PROG}: serving on http://{args.host}:{args.port}/api/v1 (database {shown_db})",
          file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
