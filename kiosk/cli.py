"""``kiosk``: run the kiosk, or check a config file, for technicians and testers."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.drivers import check_drivers

if TYPE_CHECKING:
    from kiosk.app import Kiosk

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
    setup_logging(args.verbose)
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


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        check_drivers(config)
    except ConfigError as problem:
        return _fail(str(problem))
    devices = ", ".join(f"{n}={d.driver}" for n, d in config.devices.items()) or "none"
    print(f"{args.config}: ok — kiosk {config.kiosk.id} at {config.kiosk.centre_id}, "
          f"back office {config.backoffice.url}, devices: {devices}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the kiosk")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--windowed", action="store_true", help="not full-screen (development)")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=cmd_run)
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
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
