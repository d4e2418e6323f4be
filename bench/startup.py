"""Startup benchmark: time from process start to the attract screen, and memory right after.

The kiosk is measured next to a bare Kivy window (bench/bare_kivy.py) in the same run, on the
same machine and file cache, because the absolute figures mean little across machines while
the ratio does: the target is a kiosk that starts within 1.5x the bare window.

Both children notify over sd_notify; this script is the listener systemd would be. The bare
window sends READY=1 at its first frame. The kiosk sends STATUS= at its first frame (the
attract screen, drawn from the config alone) and READY=1 once storage, client and devices are
built and the screen takes touches; both times are reported. It is a benchmark, not a test: a missed
target is printed, not turned into an exit status. Exit 1 only means it could not measure.

    .venv/bin/python bench/startup.py --runs 5 [--json] [--display]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
DEMO_CONFIG = ROOT / "assets" / "config" / "demo.toml"
BARE = ROOT / "bench" / "bare_kivy.py"
SIZE = (1920, 1080)  # landscape, as in demo.toml; bare_kivy.py opens the same
READY_TIMEOUT_S = 60.0
TARGET_RATIO = 1.5
MIB = 1024 * 1024


class BenchError(Exception):
    """A child could not be measured; the message carries its stderr tail."""


@dataclass
class Sample:
    drawn_ms: float  # first frame on screen (the kiosk's STATUS=, or READY=1 if none came)
    ready_ms: float  # READY=1: the kiosk takes touches
    rss_mib: float


@dataclass
class Series:
    label: str
    event: str
    samples: list[Sample] = field(default_factory=list)

    def stats(self, attr: str) -> dict[str, float]:
        values = [getattr(s, attr) for s in self.samples]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --- the kiosk's config -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} to the bench config")


def _toml_tables(table: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"\n[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += _toml_tables(sub, f"{prefix}.{key}" if prefix else key)
    return lines


def write_kiosk_config(tmp: Path) -> Path:
    """demo.toml with nothing outside ``tmp`` and no embedded back office.

    Startup must not depend on the back office, so the url points at a port nobody listens
    on; the embedded server would also add a child process and its own startup to the figure.
    """
    config = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    config["kiosk"]["fullscreen"] = False
    config["kiosk"]["data_dir"] = str(tmp / "data")
    backoffice = config["backoffice"]
    backoffice["embedded"] = False
    backoffice["url"] = f"http://127.0.0.1:{free_port()}"
    # Only read when embedded; dropped so no path in the file points into the repository.
    backoffice.pop("database", None)
    backoffice.pop("seed", None)
    for name, device in config.get("devices", {}).items():
        if "output_dir" in device:
            device["output_dir"] = str(tmp / "prints" / name)
    path = tmp / "kiosk.toml"
    path.write_text("# written by bench/startup.py from assets/config/demo.toml\n"
                    + "\n".join(_toml_tables(config)) + "\n", encoding="utf-8")
    return path


# --- one measured start -------------------------------------------------------------------

def child_env(notify_socket: Path, kivy_home: Path, display: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NOTIFY_SOCKET=str(notify_socket), KIVY_NO_ARGS="1", KIVY_NO_FILELOG="1",
               KIVY_NO_CONSOLELOG="1",
               # Kivy writes config.ini and icons on its first start; a private home keeps
               # that out of the user's ~/.kivy and gives both children the same settings.
               KIVY_HOME=str(kivy_home))
    if display:
        env.pop("SDL_VIDEODRIVER", None)
    else:
        env["SDL_VIDEODRIVER"] = "offscreen"
    return env


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "(stderr empty)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _drain(listener: socket.socket) -> None:
    # A child killed just after notifying could leave a datagram for the next run to misread.
    listener.setblocking(False)
    try:
        while True:
            listener.recv(4096)
    except BlockingIOError:
        pass
    finally:
        listener.setblocking(True)


def measure(cmd: list[str], env: dict[str, str], listener: socket.socket,
            stderr_path: Path) -> Sample:
    _drain(listener)
    with stderr_path.open("wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = start + READY_TIMEOUT_S
        drawn_at: float | None = None
        while True:
            # Short waits so a child that dies before READY is noticed at once, not at 60 s.
            readable, _, _ = select.select([listener], [], [], 0.05)
            if readable:
                message = listener.recv(4096)
                ready_at = time.perf_counter()
                drawn_at = drawn_at or ready_at  # the kiosk says STATUS= at its first frame
                # One datagram may carry several newline-separated assignments (STATUS=...).
                if b"READY=1" in message.split(b"\n"):
                    break
                continue
            if proc.poll() is not None:
                raise BenchError(f"{' '.join(cmd)} exited with {proc.returncode} before "
                                 f"READY=1; stderr:\n{_tail(stderr_path)}")
            if time.perf_counter() > deadline:
                raise BenchError(f"{' '.join(cmd)} sent no READY=1 within "
                                 f"{READY_TIMEOUT_S:.0f} s; stderr:\n{_tail(stderr_path)}")
        try:
            # rss of this one process only: neither kiosk nor window should have children,
            # and if one did that would be a separate finding, not part of this figure.
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.NoSuchProcess:
            raise BenchError(f"{' '.join(cmd)} exited right after READY=1; stderr:\n"
                             f"{_tail(stderr_path)}") from None
        return Sample(drawn_ms=((drawn_at or ready_at) - start) * 1000,
                      ready_ms=(ready_at - start) * 1000, rss_mib=rss / MIB)
    finally:
        _stop(proc)


# --- the run ------------------------------------------------------------------------------

def run(runs: int, display: bool, progress: bool) -> tuple[Series, Series]:
    bare = Series("bare Kivy window", "time to first frame")
    kiosk = Series("kiosk", "time to attract screen")  # plus "ready for touch" below
    with tempfile.TemporaryDirectory(prefix="zizhu-bench-") as tmp_name:
        tmp = Path(tmp_name)
        config = write_kiosk_config(tmp)
        env = child_env(tmp / "notify", tmp / "kivy-home", display)
        commands = {
            "kiosk": [str(PYTHON), "-m", "kiosk.cli", "run", "--config", str(config),
                      "--windowed"],
            "bare": [str(PYTHON), str(BARE)],
        }
        series = {"kiosk": kiosk, "bare": bare}
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(tmp / "notify"))
            # The warm-up pair fills the file cache and lets Kivy write its home and the kiosk
            # create and migrate its database once, as on an appliance that has booted before.
            for index in range(runs + 1):
                for name in ("kiosk", "bare"):
                    sample = measure(commands[name], env, listener, tmp / f"{name}.stderr")
                    counted = index > 0
                    if counted:
                        series[name].samples.append(sample)
                    if progress:
                        which = f"run {index}/{runs}" if counted else "warm-up"
                        print(f"{which:>9} {name:<5} {sample.drawn_ms:7.0f} ms drawn "
                              f"{sample.ready_ms:7.0f} ms ready "
                              f"{sample.rss_mib:6.1f} MiB", file=sys.stderr)
    return bare, kiosk


def report(bare: Series, kiosk: Series, runs: int, display: bool) -> dict[str, Any]:
    time_ratio = kiosk.stats("drawn_ms")["median"] / bare.stats("drawn_ms")["median"]
    ready_ratio = kiosk.stats("ready_ms")["median"] / bare.stats("ready_ms")["median"]
    rss_ratio = kiosk.stats("rss_mib")["median"] / bare.stats("rss_mib")["median"]

    def figures(series: Series) -> dict[str, Any]:
        # Rounded past the timer's and the run-to-run noise, so the JSON stays readable.
        return {
            "time_to_first_frame_ms": {k: round(v, 1)
                                       for k, v in series.stats("drawn_ms").items()},
            "time_to_ready_ms": {k: round(v, 1) for k, v in series.stats("ready_ms").items()},
            "rss_mib": {k: round(v, 2) for k, v in series.stats("rss_mib").items()},
            "samples": [{"drawn_ms": round(s.drawn_ms, 1), "ready_ms": round(s.ready_ms, 1),
                         "rss_mib": round(s.rss_mib, 2)}
                        for s in series.samples],
        }

    return {
        "runs": runs,
        "video": "DISPLAY " + os.environ.get("DISPLAY", "") if display else "SDL offscreen",
        "size": list(SIZE),
        "bare": figures(bare),
        "kiosk": figures(kiosk),
        "ratio": {"time": round(time_ratio, 3), "ready": round(ready_ratio, 3),
                  "rss": round(rss_ratio, 3)},
        "target": {"time_ratio_max": TARGET_RATIO, "met": time_ratio <= TARGET_RATIO},
    }


def table(figures: dict[str, Any], bare: Series, kiosk: Series) -> str:
    head = (f"startup ({figures['runs']} runs, {figures['video']}, "
            f"{SIZE[0]}x{SIZE[1]})")
    rows = []
    for series in (bare, kiosk):
        measures = [("drawn_ms", f"{series.event} ms")]
        if series is kiosk:
            measures.append(("ready_ms", "time to ready for touch ms"))
        for attr, what in (*measures, ("rss_mib", "RSS after, MiB")):
            s = series.stats(attr)
            rows.append((series.label, what, s["median"], s["min"], s["max"]))
    width = max(len(head), *(len(f"{r[0]:<18} {r[1]}") for r in rows))
    lines = [f"{head:<{width}} {'median':>8} {'min':>8} {'max':>8}"]
    for label, what, med, lo, hi in rows:
        lines.append(f"{f'{label:<18} {what}':<{width}} {med:8.1f} {lo:8.1f} {hi:8.1f}")
    ratio = figures["ratio"]
    verdict = "met" if figures["target"]["met"] else "MISSED"
    lines.append(f"ratio kiosk/bare  time {ratio['time']:.2f}x "
                 f"(target <= {TARGET_RATIO}x: {verdict})   ready {ratio['ready']:.2f}x   "
                 f"memory {ratio['rss']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--display", action="store_true",
                        help="use the caller's $DISPLAY instead of SDL's offscreen driver")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-run lines on stderr")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.display and not os.environ.get("DISPLAY"):
        parser.error("--display needs $DISPLAY to be set")
    try:
        bare, kiosk = run(args.runs, args.display, progress=not args.quiet)
    except BenchError as failed:
        print(f"startup bench: {failed}", file=sys.stderr)
        return 1
    figures = report(bare, kiosk, args.runs, args.display)
    print(json.dumps(figures, indent=2) if args.json else table(figures, bare, kiosk))
    return 0


if __name__ == "__main__":
    sys.exit(main())
