#!/usr/bin/python3
"""Zizhu health check, run every minute by zizhu-health.timer as the kiosk user.

Asks systemd whether the kiosk (and the out-of-service screen, and the local back office) are
up, calls the back office's /api/v1/health the way the kiosk would (its URL, CA and client
certificate from the kiosk's config), has `kiosk metrics` write the kiosk's own figures, and
writes the answers as a Prometheus text file for node_exporter's textfile collector:

    <textfile-dir>/zizhu_health.prom   this script's figures (zizhu_unit_*, zizhu_backoffice_*, ...)
    <textfile-dir>/zizhu_kiosk.prom    the running kiosk keeps it fresh; when it has stopped doing so
                                       (--if-stale), `kiosk metrics` writes what it can offline

Exit status: 0 healthy, 1 unhealthy (the kiosk is not running or the back office does not
answer; one line on stdout says why), 2 the text file could not be written. Python's standard
library only, so that it runs with the system's python3 even when the kiosk's venv is broken.
Installed as /usr/libexec/zizhu/health-check (systemd/install.sh).
"""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

UNITS = ("zizhu-kiosk.service", "zizhu-out-of-service.service", "zizhu-backoffice.service")
KIOSK_UNIT = UNITS[0]
HEALTH_FILE = "zizhu_health.prom"
KIOSK_FILE = "zizhu_kiosk.prom"
PROBE_TIMEOUT_S = 5.0
METRICS_TIMEOUT_S = 30.0
# The running app rewrites zizhu_kiosk.prom every few seconds; two missed health runs mean it
# no longer does, and the offline figures take over.
STALE_AFTER_S = 120.0


@dataclass(frozen=True)
class UnitState:
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    restarts: int

    @property
    def loaded(self) -> bool:
        return self.load_state == "loaded"


@dataclass(frozen=True)
class Probe:
    up: bool
    seconds: float
    detail: str


@dataclass(frozen=True)
class BackOfficeSettings:
    url: str
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


def unit_states(systemctl: str, units: tuple[str, ...] = UNITS) -> list[UnitState]:
    """One `systemctl show` for all units; a unit systemd does not know is "not-found"."""
    try:
        out = subprocess.run(
            [systemctl, "show", "--property=Id,LoadState,ActiveState,SubState,NRestarts",
             *units], capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError) as problem:
        print(f"health-check: systemctl show failed: {problem}", file=sys.stderr)
        return [UnitState(u, "unknown", "unknown", "unknown", 0) for u in units]
    blocks = [b for b in out.split("\n\n") if b.strip()]
    states = []
    for unit, block in zip(units, blocks, strict=False):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        restarts = props.get("NRestarts", "0")
        states.append(UnitState(unit, props.get("LoadState", "unknown"),
                                props.get("ActiveState", "unknown"),
                                props.get("SubState", "unknown"),
                                int(restarts) if restarts.isdigit() else 0))
    return states


def backoffice_settings(config: Path) -> BackOfficeSettings:
    """[backoffice] of the kiosk's config; relative paths as the kiosk resolves them, against
    the working directory (the unit sets the kiosk's)."""
    with config.open("rb") as f:
        section = tomllib.load(f).get("backoffice", {})
    url = section.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError(f"{config}: no [backoffice] url")

    def path(key: str) -> Path | None:
        value = section.get(key)
        return Path(value).absolute() if isinstance(value, str) and value else None

    return BackOfficeSettings(url.rstrip("/"), path("ca_file"), path("client_cert"),
                              path("client_key"))


def probe_backoffice(settings: BackOfficeSettings, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """GET <url>/api/v1/health with the kiosk's TLS settings, no proxy from the environment."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if settings.url.startswith("https:"):
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.client_cert is not None:
            context.load_cert_chain(settings.client_cert, settings.client_key)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    started = time.monotonic()
    try:
        with opener.open(f"{settings.url}/api/v1/health", timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as problem:
        reason = getattr(problem, "reason", problem)
        return Probe(False, time.monotonic() - started, f"no answer: {reason}")
    seconds = time.monotonic() - started
    return Probe(status == 200, seconds, f"HTTP {status}")


def export_kiosk_metrics(kiosk: str, config: Path, out: Path,
                         stale_after_s: float = STALE_AFTER_S) -> bool:
    """`kiosk metrics --config FILE --out FILE --if-stale S` (kiosk/metrics.py): leaves the
    running app's live file alone, else writes the offline figures. False if it failed."""
    command = [kiosk, "metrics", "--config", str(config), "--out", str(out),
               "--if-stale", f"{stale_after_s:g}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=METRICS_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as problem:
        print(f"health-check: {kiosk} metrics did not run: {problem}", file=sys.stderr)
        return False
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"status {done.returncode}"]
        print(f"health-check: {kiosk} metrics failed: {tail[0]}", file=sys.stderr)
    return done.returncode == 0


def render(units: list[UnitState], probe: Probe | None, metrics_ok: bool, healthy: bool,
           now: float) -> str:
    """The Prometheus text exposition format, one HELP/TYPE per metric family."""
    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    loaded = [u for u in units if u.loaded]
    family("zizhu_unit_active", "Whether the systemd unit is active (1) or not (0).",
           [(f'{{unit="{u.unit}"}}', float(u.active_state == "active")) for u in loaded])
    family("zizhu_unit_failed", "Whether the systemd unit is in the failed state.",
           [(f'{{unit="{u.unit}"}}', float(u.active_state == "failed")) for u in loaded])
    family("zizhu_unit_restarts", "Automatic restarts since the unit was last started by hand.",
           [(f'{{unit="{u.unit}"}}', u.restarts) for u in loaded])
    if probe is not None:
        family("zizhu_backoffice_up", "Whether the back office answered its health check.",
               [("", float(probe.up))])
        family("zizhu_backoffice_probe_seconds", "How long the back office took to answer.",
               [("", round(probe.seconds, 6))])
    family("zizhu_kiosk_metrics_ok", "Whether `kiosk metrics` wrote its text file.",
           [("", float(metrics_ok))])
    family("zizhu_healthy", "Kiosk running and back office answering.", [("", float(healthy))])
    family("zizhu_health_check_timestamp_seconds", "When this check ran (Unix time).",
           [("", round(now, 3))])
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """node_exporter never sees half a file: a temporary file in the same directory, fsync'd,
    renamed over the old one. Its name does not end in .prom, so it is never collected."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="health-check", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the kiosk's config file")
    parser.add_argument("--textfile-dir", type=Path, required=True,
                        help="node_exporter's textfile collector directory")
    parser.add_argument("--kiosk-command", default="kiosk",
                        help="the kiosk's CLI, for `kiosk metrics` (default: kiosk on PATH)")
    parser.add_argument("--systemctl", default="systemctl", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    units = unit_states(args.systemctl)
    problems = [f"{u.unit} is {u.active_state} ({u.sub_state})" for u in units
                if u.unit == KIOSK_UNIT and u.active_state != "active"]
    probe: Probe | None = None
    try:
        settings = backoffice_settings(args.config)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as problem:
        problems.append(f"the config cannot be read: {problem}")
    else:
        probe = probe_backoffice(settings)
        if not probe.up:
            problems.append(f"back office {settings.url}: {probe.detail}")
    metrics_ok = export_kiosk_metrics(args.kiosk_command, args.config,
                                      args.textfile_dir / KIOSK_FILE)
    healthy = not problems
    try:
        write_atomically(args.textfile_dir / HEALTH_FILE,
                         render(units, probe, metrics_ok, healthy, time.time()))
    except OSError as problem:
        print(f"health-check: cannot write {args.textfile_dir / HEALTH_FILE}: {problem}",
              file=sys.stderr)
        return 2
    print("healthy" if healthy else "unhealthy: " + "; ".join(problems))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
