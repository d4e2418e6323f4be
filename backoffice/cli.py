"""``kiosk-backoffice``: run the reference back office under uvicorn, or work with its
signed appointment codes.

    kiosk-backoffice [--host 127.0.0.1] [--port 8765] [--db sqlite:///var/backoffice.db]
                     [--seed PATH] [--reset] [--timezone Asia/Shanghai] [--signing-key FILE]
    kiosk-backoffice migrate [--db URL] [--reset]
                                        bring the database to this version's schema and exit
    kiosk-backoffice issue-code ...     print a signed appointment code, for testers
    kiosk-backoffice public-key ...     print the [appointment_codes.keys] line for kiosks

The server migrates its database at every start too (backoffice.db.migrate); ``migrate`` does
only that, e.g. from an install script before the new version's server starts.

Problems the operator can fix (port taken, bad seed file, unknown timezone, a signing key
others can read, a database this version cannot take over) end in one line on stderr and exit
status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from backoffice import __version__, models
from backoffice.app import DEFAULT_TIMEZONE, create_app
from backoffice.appointment_codes import (
    DEMO_KEY_ID,
    CodeFields,
    SigningKey,
    SigningKeyError,
    demo_signing_key,
    end_of_day,
    fields_for_appointment,
    issue_code,
    load_or_create_signing_key,
    mask_holder,
)
from backoffice.db import (
    DEFAULT_DATABASE_URL,
    SchemaError,
    SessionFactory,
    make_engine,
    migrate,
    sqlite_file_path,
)
from backoffice.seed import SeedError

PROG = "kiosk-backoffice"
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Zizhu reference back office.",
        epilog=f"Other commands: {PROG} migrate | issue-code | public-key (each with --help).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--db", default=DEFAULT_DATABASE_URL, metavar="URL",
                        help=f"SQLAlchemy database URL (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--seed", metavar="PATH",
                        help="seed JSON to load (only what is missing is inserted)")
    parser.add_argument("--reset", action="store_true",
                        help="drop every back-office table first (all data lost), create the "
                             "schema anew, then load --seed")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE,
                        help=f"where 'today' is decided (default {DEFAULT_TIMEZONE})")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    _signing_key_option(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _signing_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="FILE", type=Path,
                        help="serve HTTPS with this certificate (PEM); needs --tls-key")
    parser.add_argument("--tls-key", metavar="FILE", type=Path, help="the key of --tls-cert")
    parser.add_argument("--client-ca", metavar="FILE", type=Path,
                        help="require every kiosk to present a certificate signed by this CA "
                             "(mutual TLS); needs --tls-cert")
    parser.add_argument("--staff-token", metavar="TOKEN",
                        help="the staff web page (/staff) asks for this token; default: "
                             "$ZIZHU_STAFF_TOKEN, else no token (the page says so)")
    parser.add_argument("--signing-key", metavar="FILE",
                        help="Ed25519 key (PEM) that signs appointment codes; created, mode "
                             "0600, if missing. Default: the published demo key (key id "
                             f"{DEMO_KEY_ID!r}), which only demo kiosk configs trust")


def _signing_key(path: str | None) -> SigningKey:
    return demo_signing_key() if path is None else load_or_create_signing_key(path)


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


def _tls(args: argparse.Namespace) -> dict[str, object]:
    if args.tls_cert is None:
        return {}
    tls: dict[str, object] = {"ssl_certfile": str(args.tls_cert),
                              "ssl_keyfile": str(args.tls_key)}
    if args.client_ca is not None:
        tls |= {"ssl_ca_certs": str(args.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return tls


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["issue-code"]:
        return issue_code_main(argv[1:])
    if argv[:1] == ["public-key"]:
        return public_key_main(argv[1:])
    if argv[:1] == ["migrate"]:
        return migrate_main(argv[1:])
    return serve(argv)


def serve(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        return _fail(f"--port {args.port} is not a TCP port (1-65535)")
    if (args.tls_cert is None) != (args.tls_key is None):
        return _fail("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        return _fail("--client-ca needs --tls-cert: client certificates are a TLS feature")
    for given in (args.tls_cert, args.tls_key, args.client_ca):
        if given is not None and not given.is_file():
            return _fail(f"{given}: no such file")
    shown_db = _shown_db(args.db)
    if shown_db is None:
        return _fail(_NOT_A_URL)
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"unknown timezone {args.timezone!r} (try Asia/Shanghai)")

    try:
        signing_key = _signing_key(args.signing_key)
    except SigningKeyError as exc:
        return _fail(str(exc))

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
        app = create_app(args.db, timezone=args.timezone, seed=args.seed, reset=args.reset,
                         signing_key=signing_key, staff_token=args.staff_token)
    except SeedError as exc:
        sock.close()
        return _fail(str(exc))
    except (SchemaError, ImportError, OSError, SQLAlchemyError) as exc:
        sock.close()
        return _fail(_database_problem(shown_db, exc))

    config = uvicorn.Config(app, log_level=args.log_level, lifespan="off", **_tls(args))
    server = uvicorn.Server(config)
    scheme = "https" if args.tls_cert else "http"
    print(f"{PROG}: serving on {scheme}://{args.host}:{args.port}/api/v1 (database {shown_db}"
          f"{', client certificates required' if args.client_ca else ''})",
          file=sys.stderr, flush=True)
    if signing_key.key_id == DEMO_KEY_ID:
        print(f"{PROG}: appointment codes are signed with the published demo key; pass "
              "--signing-key FILE for codes only your kiosks trust", file=sys.stderr, flush=True)
    else:
        print(f"{PROG}: appointment codes are signed with key {signing_key.key_id}; kiosks "
              f"trust it with: {PROG} public-key --signing-key {args.signing_key}",
              file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


# --- the database -----------------------------------------------------------------------------

_NOT_A_URL = "--db is not a database URL (e.g. sqlite:///var/backoffice.db)"


def _shown_db(url: str) -> str | None:
    """``url`` as it may be printed (the password hidden: only this rendering is ever shown);
    None if it is not a database URL."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return None


def _database_problem(shown_db: str, exc: Exception) -> str:
    """One line for what went wrong opening or migrating the database."""
    if isinstance(exc, SchemaError):
        return f"database {shown_db}: {exc}"
    if isinstance(exc, ImportError):
        return f"database {shown_db}: its driver is not installed ({exc.name or exc})"
    if isinstance(exc, OSError):
        return f"database {shown_db}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return f"database {shown_db}: {type(exc).__name__}: {exc.args[0] if exc.args else ''}"


def build_migrate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} migrate",
        description="Bring the back-office database to this version's schema (Alembic) and "
                    "exit; the server does the same at every start. A database made before "
                    "schema versioning is taken over when its tables are the first versioned "
                    "schema's, and refused otherwise (then --reset starts it empty).")
    parser.add_argument("--db", default=DEFAULT_DATABASE_URL, metavar="URL",
                        help=f"SQLAlchemy database URL (default {DEFAULT_DATABASE_URL})")
    parser.add_argument("--reset", action="store_true",
                        help="drop every back-office table first (all data lost; other tables "
                             "in the database are left alone), then create the schema")
    return parser


def migrate_main(argv: Sequence[str]) -> int:
    args = build_migrate_parser().parse_args(argv)
    shown_db = _shown_db(args.db)
    if shown_db is None:
        return _fail(_NOT_A_URL)
    try:
        engine = make_engine(args.db)
    except (ImportError, OSError, SQLAlchemyError) as exc:
        return _fail(_database_problem(shown_db, exc))
    try:
        result = migrate(engine, reset=args.reset)
    except (SchemaError, ImportError, OSError, SQLAlchemyError) as exc:
        return _fail(_database_problem(shown_db, exc))
    finally:
        engine.dispose()
    print(f"{PROG}: database {shown_db}: {result.describe()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --- public-key -------------------------------------------------------------------------------

def public_key_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} public-key",
        description="Print the TOML that makes a kiosk trust the codes this key signs.")
    _signing_key_option(parser)
    args = parser.parse_args(argv)
    try:
        key = _signing_key(args.signing_key)
    except SigningKeyError as exc:
        return _fail(str(exc))
    sys.stdout.write(key.kiosk_config())
    return 0


# --- issue-code -------------------------------------------------------------------------------

def build_issue_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} issue-code",
        description="Print a signed appointment code (docs/appointment-code.md) for testers: "
                    "from the fields given, or for an appointment stored in the back office "
                    "(--appointment), the given fields overriding its own.",
        epilog="Examples: issue-code --appointment APT-DEMO-0001 --slot now --png code.png; "
               "issue-code --appointment-id X1 --expired; "
               "issue-code --appointment-id X2 --centre 530111-01")
    _signing_key_option(parser)
    stored = parser.add_argument_group("from a stored appointment")
    stored.add_argument("--appointment", metavar="CODE_OR_ID",
                        help="an appointment in the back-office database")
    stored.add_argument("--db", default=DEFAULT_DATABASE_URL, metavar="URL",
                        help=f"its database (default {DEFAULT_DATABASE_URL})")
    fields = parser.add_argument_group("fields (each overrides the stored appointment's)")
    fields.add_argument("--appointment-id", help="required without --appointment")
    fields.add_argument("--centre", help="service centre id (default 530102-01, the demo's)")
    fields.add_argument("--item", help="service item code, 事项编码 (default SB001)")
    fields.add_argument("--service-name", help="事项名称 shown on the kiosk")
    fields.add_argument("--date", help="YYYY-MM-DD, today, tomorrow or yesterday "
                                       "(default today)")
    fields.add_argument("--slot", help="HH:MM-HH:MM, or 'now' for a half hour from the current "
                                       "quarter (default now)")
    fields.add_argument("--place", help='window/area hint, e.g. "二楼 B区 5号窗"')
    fields.add_argument("--holder", help="a name; only its masked form goes in the code")
    when = fields.add_mutually_exclusive_group()
    when.add_argument("--expires", metavar="DATETIME",
                      help="ISO 8601; without an offset, in --timezone (default: the end of "
                           "the appointment's day)")
    when.add_argument("--expired", action="store_true",
                      help="expired a minute ago: the kiosk says 'expired'")
    when.add_argument("--too-early", action="store_true",
                      help="for tomorrow: the kiosk says 'too early'")
    parser.add_argument("--forge", action="store_true",
                        help="sign with a throwaway key under the real key's id: the kiosk "
                             "says 'forged'")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE,
                        help=f"the centre's zone (default {DEFAULT_TIMEZONE})")
    parser.add_argument("--png", metavar="FILE", help="also write the QR code as a PNG")
    return parser


class _Usage(ValueError):
    """A field the tester gave cannot be used; the message says which and why."""


def _parse_date(text: str, today: dt.date) -> dt.date:
    named = {"today": 0, "tomorrow": 1, "yesterday": -1}
    if text in named:
        return today + dt.timedelta(days=named[text])
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _Usage(f"--date {text!r} is not YYYY-MM-DD, today, tomorrow or yesterday") \
            from None


def _parse_slot(text: str, now: dt.datetime) -> tuple[dt.time, dt.time]:
    if text == "now":
        start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        end = min(start + dt.timedelta(minutes=30),
                  start.replace(hour=23, minute=59))
        return start.time(), end.time()
    try:
        first, last = text.split("-")
        return dt.time.fromisoformat(first), dt.time.fromisoformat(last)
    except ValueError:
        raise _Usage(f"--slot {text!r} is not HH:MM-HH:MM or now") from None


def _parse_expiry(text: str, tz: ZoneInfo) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(f"--expires {text!r} is not an ISO 8601 date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _stored_fields(db_url: str, ref: str, tz: ZoneInfo) -> CodeFields:
    path = sqlite_file_path(db_url)
    if path is not None and not path.exists():
        # Connecting would create an empty database and then report a missing table.
        raise _Usage(f"no back-office database at {path} (start the back office once, or "
                     "pass --db)")
    factory = SessionFactory(make_engine(db_url))
    try:
        with factory.session() as session:
            for column in (models.Appointment.code, models.Appointment.id):
                appt = session.scalar(select(models.Appointment).where(column == ref))
                if appt is not None:
                    return fields_for_appointment(session, appt, tz)
    finally:
        factory.engine.dispose()
    raise _Usage(f"no appointment {ref!r} in the database")


def code_fields(args: argparse.Namespace, now: dt.datetime) -> CodeFields:
    """The fields of the code ``args`` describe; ``now`` is aware, in the centre's zone."""
    tz = ZoneInfo(args.timezone)
    today = now.date()
    if args.appointment:
        base = _stored_fields(args.db, args.appointment, tz)
    elif args.appointment_id:
        start, end = _parse_slot("now", now)
        base = CodeFields(appointment_id=args.appointment_id, centre_id="530102-01",
                          service_item_code="SB001", date=today, slot_start=start,
                          slot_end=end, expires_at=end_of_day(today, tz))
    else:
        raise _Usage("give --appointment CODE (a stored appointment) or --appointment-id ID")
    changes: dict[str, object] = {}
    for option, name in (("appointment_id", "appointment_id"), ("centre", "centre_id"),
                         ("item", "service_item_code"), ("service_name", "service_name"),
                         ("place", "place")):
        if getattr(args, option) is not None:
            changes[name] = getattr(args, option)
    if args.holder is not None:
        changes["holder"] = mask_holder(args.holder)
    if args.slot is not None:
        changes["slot_start"], changes["slot_end"] = _parse_slot(args.slot, now)
    date = base.date
    if args.date is not None:
        date = _parse_date(args.date, today)
    if args.too_early:
        date = today + dt.timedelta(days=1)
    if date != base.date:
        changes["date"] = date
        changes["expires_at"] = end_of_day(date, tz)
    if args.expires is not None:
        changes["expires_at"] = _parse_expiry(args.expires, tz)
    if args.expired:
        changes["expires_at"] = now - dt.timedelta(minutes=1)
    return replace(base, **changes)  # type: ignore[arg-type]


def issue_code_main(argv: Sequence[str], now: dt.datetime | None = None) -> int:
    args = build_issue_parser().parse_args(argv)
    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"unknown timezone {args.timezone!r} (try Asia/Shanghai)")
    try:
        key = _signing_key(args.signing_key)
        fields = code_fields(args, (now or dt.datetime.now(tz)).astimezone(tz))
        if args.forge:
            key = SigningKey(key.key_id, Ed25519PrivateKey.generate())
        text = issue_code(fields, key)
    except (SigningKeyError, _Usage, ValueError) as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(f"database: {type(exc).__name__}: {exc.args[0] if exc.args else ''}")
    print(text, flush=True)
    if args.png:
        import segno  # here: only this option needs it

        segno.make(text, error="m", micro=False).save(args.png, scale=6, border=4)
        print(f"{PROG}: wrote {Path(args.png)}", file=sys.stderr, flush=True)
    return 0
