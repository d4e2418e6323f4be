"""``kiosk``: run the kiosk, or check a config file, for technicians and testers.

Imports are made where they are needed: ``kiosk screen`` runs on a CPU the app cannot run on,
so nothing built for x86-64-v2 (NumPy, OpenCV) may load on its way (what the parser loads,
pydantic and cryptography, is built for the baseline: checked under ``qemu-x86_64 -cpu
qemu64``), and ``kiosk run`` must reach systemd before Kivy loads.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kiosk.app import Kiosk
    from kiosk.config import KioskConfig

DEFAULT_CONFIG = Path("assets/config/demo.toml")
log = logging.getLogger("kiosk")


class StartupError(Exception):
    """Something the technician must fix before the kiosk can start; one line says what."""


def _fail(message: str) -> int:
    print(f"kiosk: {message}", file=sys.stderr)
    return 2


def setup_logging(verbose: bool = False) -> None:
    from kiosk.privacy import install_log_masking

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_masking()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is enough


@contextlib.contextmanager
def embedded_backoffice(config: KioskConfig) -> Iterator[None]:
    """Start the reference back office when the config asks for the embedded default."""
    if not config.backoffice.embedded:
        yield
        return
    from kiosk.launcher import EmbeddedBackOffice, EmbeddedBackOfficeError

    url = urlsplit(config.backoffice.url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise StartupError(f"backoffice.embedded needs a loopback url, not {url.hostname}")
    seed = Path(config.backoffice.seed) if config.backoffice.seed else None
    try:
        server = EmbeddedBackOffice(port=url.port or 80, db_url=config.backoffice.database,
                                    seed=seed, timezone=config.kiosk.timezone)
        with server:
            log.info("embedded back office on %s", config.backoffice.url)
            yield
    except EmbeddedBackOfficeError as busy:
        raise StartupError(str(busy)) from busy


def check_font() -> None:
    from kiosk.fonts import FONT_PATH

    if not FONT_PATH.exists():
        raise StartupError(f"Chinese font missing ({FONT_PATH}): "
                           "apt-get install fonts-wqy-microhei (or run `make run`)")


def cmd_run(args: argparse.Namespace) -> int:
    from kiosk import notify

    setup_logging(args.verbose)
    # First: building the kiosk blocks the UI loop that pings the watchdog (kiosk.notify).
    notify.extend_watchdog_for_startup()
    from kiosk.config import ConfigError, load_config
    from kiosk.drivers import check_drivers

    try:
        config = load_config(args.config)
        check_drivers(config)
        check_font()
        from kiosk.ui.app import configure_window

        configure_window(config.kiosk.screen_size, config.kiosk.fullscreen and not args.windowed)
        with embedded_backoffice(config):
            from kiosk.ui.app import make_app

            def build() -> Kiosk:
                # Imported here: storage, HTTP and drivers load after the first frame is shown.
                from kiosk.app import build_kiosk

                return build_kiosk(config)

            app = make_app(config, build)
            try:
                app.run()  # type: ignore[attr-defined]
            finally:
                app.close_kiosk()  # type: ignore[attr-defined]
    except (ConfigError, StartupError) as problem:
        return _fail(str(problem))
    return 0


def cmd_out_of_service(args: argparse.Namespace) -> int:
    """暂停服务: the static screen systemd shows when the kiosk keeps failing to start."""
    from kiosk import notify

    setup_logging()
    notify.extend_watchdog_for_startup()
    from kiosk.ui.app import run_out_of_service

    return run_out_of_service(args.config, fullscreen=not args.windowed)


def cmd_screen(args: argparse.Namespace) -> int:
    """What the units start: cage with the app in it (kiosk.compositor)."""
    from kiosk import compositor

    setup_logging()
    machine = compositor.Machine(cpuinfo=args.cpuinfo, sysfs=args.sysfs,
                                 firmware=args.firmware)
    return compositor.start(args.app, args.config, cage=args.cage, machine=machine,
                            dry_run=args.dry_run)


def cmd_check_config(args: argparse.Namespace) -> int:
    from kiosk.config import ConfigError, load_config
    from kiosk.drivers import check_drivers

    try:
        config = load_config(args.config)
        check_drivers(config)
    except ConfigError as problem:
        return _fail(str(problem))
    devices = ", ".join(f"{n}={d.driver}" for n, d in config.devices.items()) or "none"
    print(f"{args.config}: ok — kiosk {config.kiosk.id} at {config.kiosk.centre_id}, "
          f"back office {config.backoffice.url}, devices: {devices}")
    return 0


def _read_pin(args: argparse.Namespace, needed: bool) -> str | None:
    """The new maintenance PIN: from stdin (scripts), else asked twice on the terminal when
    one is needed or --new-pin asks; never from the command line, where ps and the shell
    history would keep it."""
    if args.pin_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not (args.new_pin or needed) or not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("maintenance PIN (6-12 digits): ")
    if getpass.getpass("the same PIN again: ") != first:
        raise StartupError("the two PINs differ; nothing was changed")
    return first


def cmd_provision(args: argparse.Namespace) -> int:
    from kiosk import provision as p

    try:
        answers = p.read_answers(args.answers) if args.answers else p.Answers()
        given = p.Answers(
            kiosk_id=args.kiosk_id, centre_id=args.centre_id, centre_name=args.centre_name,
            backoffice_url=args.backoffice_url, ca_file=args.ca_file,
            client_cert=args.client_cert, client_key=args.client_key,
            qr_keys=dict(_pair(spec, "--qr-key") for spec in args.qr_key),
            drop_qr_keys=args.drop_qr_key, orientation=args.orientation,
            rotation=args.rotation, renderer=args.renderer,
            data_dir=args.data_dir, outbox_key=args.outbox_key,
            devices=dict(p.parse_device(spec) for spec in args.device),
            drop_devices=args.no_device)
        answers = answers.overridden_by(given)
        if answers.pin is None or args.new_pin or args.pin_stdin:
            needed = answers.pin is None and not _has_pin(args.config, args.template)
            pin = _read_pin(args, needed)
            if pin is not None:
                answers.pin = pin
        report = p.provision(answers, args.config, template=args.template, user=args.user,
                             tls_dir=args.tls_dir, probe=not args.offline,
                             probe_timeout_s=args.probe_timeout)
    except p.ProvisionError as problem:
        for warning in problem.warnings:
            print(f"kiosk: warning: {warning}", file=sys.stderr)
        print("kiosk: provisioning refused, nothing was changed:", file=sys.stderr)
        for line in problem.problems:
            print(f"  - {line}", file=sys.stderr)
        return 2
    except (ValueError, StartupError) as problem:
        return _fail(f"{problem}; nothing was changed")
    for warning in report.warnings:
        print(f"kiosk: warning: {warning}", file=sys.stderr)
    print("provisioned:")
    for line in report.summary:
        print(f"  {line}")
    return 0


def _pair(spec: str, option: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"{option} {spec!r}: expected ID=VALUE")
    return key, value


def _has_pin(config: Path, template: Path | None) -> bool:
    import tomllib

    for path in (template, config):
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            maintenance = data.get("maintenance")
            return isinstance(maintenance, dict) and "pin_hash" in maintenance
    return False


def add_provision_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--config", type=Path, required=True, help="the config file to write (created or updated)")
    a("--answers", type=Path, help="TOML answers file; the options below override it")
    a("--from", dest="template", type=Path,
      help="start from this config (e.g. assets/config/kiosk.example.toml) instead of --config")
    a("--kiosk-id")
    a("--centre-id")
    a("--centre-name")
    a("--backoffice-url")
    a("--ca-file", type=Path, help="PEM bundle the back office's certificate chains to")
    a("--client-cert", type=Path, help="the kiosk's own certificate (PEM) for mutual TLS")
    a("--client-key", type=Path, help="its private key (PEM, unencrypted)")
    a("--qr-key", action="append", default=[], metavar="ID=BASE64",
      help="trust this Ed25519 key for signed appointment codes (repeatable)")
    a("--drop-qr-key", action="append", default=[], metavar="ID", help="stop trusting a key")
    a("--orientation", choices=("landscape", "portrait"), help="how the screens are laid out")
    a("--rotation", type=int, choices=(0, 90, 180, 270),
      help="degrees clockwise the picture is turned, for a panel mounted turned")
    a("--renderer", choices=("auto", "gles2", "pixman"),
      help="how cage draws: auto (by the GPU's driver), gles2 (GPU), pixman (CPU)")
    a("--data-dir", type=Path)
    a("--outbox-key", type=Path, help="outbox key file (default: <data_dir>/outbox.key)")
    a("--device", action="append", default=[], metavar="NAME=DRIVER[,SETTING=VALUE...]",
      help="e.g. receipt_printer=escpos,port=/dev/ttyUSB1,baudrate=115200 (repeatable)")
    a("--no-device", action="append", default=[], metavar="NAME", help="remove a device")
    a("--new-pin", action="store_true", help="ask for a new maintenance PIN")
    a("--pin-stdin", action="store_true", help="read the new maintenance PIN from stdin")
    a("--user", default="kiosk", help="the user the kiosk runs as (owner of its keys)")
    a("--tls-dir", type=Path, help="where the TLS files go (default: tls/ beside --config)")
    a("--offline", action="store_true", help="do not try to reach the back office")
    a("--probe-timeout", type=float, default=3.0, metavar="SECONDS")


def cmd_metrics(args: argparse.Namespace) -> int:
    from kiosk import metrics
    from kiosk.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as problem:
        return _fail(str(problem))
    if args.if_stale is not None and metrics.is_fresh(args.out, args.if_stale):
        return 0  # the running app keeps the file fresh; do not overwrite its live figures
    from sqlalchemy.exc import SQLAlchemyError

    try:
        snapshot = metrics.offline_snapshot(config.kiosk.id, config.kiosk.centre_id,
                                            config.kiosk.data_dir)
    except SQLAlchemyError as problem:
        return _fail(f"{config.kiosk.data_dir}: cannot read the kiosk's databases: "
                     f"{type(problem.orig or problem).__name__}: {problem.orig or problem}")
    try:
        metrics.MetricsWriter(args.out, lambda: snapshot).write()
    except (OSError, ValueError) as problem:
        return _fail(f"{args.out}: {problem}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the kiosk")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--windowed", action="store_true", help="not full-screen (development)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=cmd_run)
    out = sub.add_parser("out-of-service", help="show the out-of-service screen (systemd's "
                         "fallback when the kiosk keeps failing)")
    out.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    out.add_argument("--windowed", action="store_true", help="not full-screen (development)")
    out.set_defaults(func=cmd_out_of_service)
    screen = sub.add_parser(
        "screen", help="start cage with the kiosk or its out-of-service screen in it (what the "
        "systemd units run): checks the CPU, applies [display]")
    screen.add_argument("app", choices=("run", "out-of-service"),
                        help="the kiosk command cage runs")
    screen.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    screen.add_argument("--cage", default="/usr/bin/cage", help="the compositor (cage 0.1.4)")
    screen.add_argument("--dry-run", action="store_true",
                        help="print the command instead of running it")
    screen.add_argument("--cpuinfo", type=Path, default=Path("/proc/cpuinfo"),
                        help=argparse.SUPPRESS)
    screen.add_argument("--sysfs", type=Path, default=Path("/sys"), help=argparse.SUPPRESS)
    screen.add_argument("--firmware", type=Path, default=Path("/lib/firmware"),
                        help=argparse.SUPPRESS)
    screen.set_defaults(func=cmd_screen)
    check = sub.add_parser("check-config", help="validate a config file and its drivers")
    check.add_argument("config", type=Path)
    check.set_defaults(func=cmd_check_config)
    devices = sub.add_parser("devices", help="technician tools for the devices")
    device_sub = devices.add_subparsers(dest="device_command", required=True)
    read_id = device_sub.add_parser(
        "read-id", help="read an ID card or passport chip and print the record (masked)")
    from kiosk import read_id as read_id_tool

    read_id_tool.add_arguments(read_id, DEFAULT_CONFIG)
    read_id.set_defaults(func=read_id_tool.run)
    provision = sub.add_parser("provision", help="set this kiosk up for its site (technician)")
    add_provision_arguments(provision)
    provision.set_defaults(func=cmd_provision)
    metrics = sub.add_parser("metrics", help="write the Prometheus text file once")
    metrics.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    metrics.add_argument("--out", type=Path, required=True,
                         help="the .prom file in node_exporter's textfile directory")
    metrics.add_argument("--if-stale", type=float, metavar="SECONDS",
                         help="write only if the file is older than this (the app stopped)")
    metrics.set_defaults(func=cmd_metrics)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
