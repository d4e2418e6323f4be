"""``kiosk screen``: what systemd starts for the kiosk and for its out-of-service screen. It
looks at the machine and the ``[display]`` settings, then replaces itself with cage running
the app, so cage stays the unit's main process (systemd/README.md).

- **CPU.** NumPy 2 (the camera, documents, QR) is built for x86-64-v2 and kills the app on an
  older CPU (qemu's default ``qemu64`` model: measured). The kiosk unit would restart it five
  times before its out-of-service screen; instead one journal line names the missing flags and
  the launcher exits with :data:`EXIT_UNSUPPORTED_CPU`, which the unit does not restart
  (``RestartPreventExitStatus=``): it fails at once and ``OnFailure=`` shows the out-of-service
  screen, whose app needs no NumPy.
- **Rotation.** ``[display] rotation`` becomes cage's ``-r`` (90 degrees clockwise, up to three
  times: cage 0.1.4).
- **Renderer.** cage's GLES2 renderer dies (SIGSEGV) on Mesa's software fallback, which is what
  a GPU without a Mesa hardware driver gets (qemu's virtio GPU without 3D: measured);
  ``WLR_RENDERER=pixman`` draws on the CPU and works everywhere. ``auto`` keeps GLES2 only for
  the kernel drivers in :data:`MESA_GL_DRIVERS`.

This module imports the standard library only (the config module for [display], after the CPU
check), and Kivy never: the launcher must run, and say why, on the machine the app cannot run
on.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CAGE = "/usr/bin/cage"
APPS = ("run", "out-of-service")
# sysexits' EX_UNAVAILABLE; systemd/system/zizhu-kiosk.service lists it in
# RestartPreventExitStatus= (tests/systemd/test_units.py checks the two agree).
EXIT_UNSUPPORTED_CPU = 69

# x86-64-v2 (the psABI's level above the 2003 baseline), as /proc/cpuinfo spells the flags:
# SSE3 is "pni", LAHF/SAHF in 64-bit mode "lahf_lm", CMPXCHG16B "cx16".
X86_64_V2_FLAGS = ("cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3")

# Kernel DRM drivers whose GPUs Mesa (Debian 12: 22.3) renders on in hardware, and the folder
# under /lib/firmware the GPU needs for that (None: none needed). Without its firmware a Radeon
# or a newer NVIDIA card still lights the screen but has no acceleration, and Mesa falls back
# to software; the image ships no non-free firmware. Left out on purpose, so pixman:
# - virtio_gpu, vmwgfx: Mesa's virgl/svga work only when the VM enables 3D, which sysfs does not
#   show; qemu's default virtio GPU has none and gles2 crashes there (measured);
# - simpledrm, bochs, cirrus, qxl, ast, mgag200, hyperv_drm, vboxvideo, udl, gud, vkms:
#   display-only or virtual GPUs that Mesa has no driver for;
# - xe: newer Intel GPUs, after Debian 12's kernel and Mesa.
# Wrongly choosing pixman costs some CPU; wrongly choosing gles2 is a crash loop. Hence a short
# list, and ``renderer = "gles2"`` in the config for a GPU known to work.
MESA_GL_DRIVERS: dict[str, str | None] = {
    "i915": None,
    "amdgpu": "amdgpu",
    "radeon": "radeon",
    "nouveau": "nvidia",
}

_CARD = re.compile(r"card(\d+)")


@dataclass(frozen=True)
class Machine:
    """Where the launcher reads the facts it decides on (tests point these at fixtures)."""

    cpuinfo: Path = Path("/proc/cpuinfo")
    sysfs: Path = Path("/sys")
    firmware: Path = Path("/lib/firmware")
    arch: str = field(default_factory=platform.machine)


@dataclass(frozen=True)
class Display:
    """The ``[display]`` settings (kiosk.config.DisplaySection, without importing pydantic)."""

    rotation: int = 0
    renderer: str = "auto"


@dataclass(frozen=True)
class Launch:
    """What to exec: cage's argv and the variables set on top of the inherited environment;
    ``notes`` say why, for the journal. ``cpu_problem`` is set (one line) when the CPU cannot
    run the kiosk app; ``refuse`` when the app asked for is that one."""

    app: str
    argv: tuple[str, ...]
    env: dict[str, str]
    notes: tuple[str, ...]
    cpu_problem: str | None = None

    @property
    def refuse(self) -> bool:
        return self.cpu_problem is not None and self.app == "run"


def missing_cpu_flags(machine: Machine) -> list[str]:
    """The x86-64-v2 flags this CPU lacks; none on another architecture, or when /proc/cpuinfo
    cannot be read (better to try the app than to refuse a kiosk on a guess)."""
    if machine.arch not in ("x86_64", "AMD64"):
        return []
    try:
        text = machine.cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        log.warning("cannot read %s (%s): CPU not checked", machine.cpuinfo, e.strerror or e)
        return []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "flags":
            have = set(value.split())
            return [f for f in X86_64_V2_FLAGS if f not in have]
    log.warning("no flags line in %s: CPU not checked", machine.cpuinfo)
    return []


def primary_gpu(sysfs: Path) -> tuple[str, str | None] | None:
    """(card, kernel driver) of the GPU wlroots renders on, or None without a DRM card. Like
    wlroots 0.15 (wlr_session_find_gpus), the firmware's boot VGA device first, else the
    lowest-numbered card."""
    cards: list[tuple[bool, int, str, Path]] = []
    drm = sysfs / "class" / "drm"
    try:
        entries = list(drm.iterdir())
    except OSError:
        return None
    for entry in entries:
        m = _CARD.fullmatch(entry.name)
        if not m:
            continue  # connectors (card0-HDMI-A-1) and render nodes
        try:
            boot_vga = (entry / "device" / "boot_vga").read_text().strip() == "1"
        except OSError:
            boot_vga = False
        cards.append((not boot_vga, int(m.group(1)), entry.name, entry))
    if not cards:
        return None
    _, _, name, path = min(cards)
    driver = path / "device" / "driver"
    return name, Path(os.path.realpath(driver)).name if driver.exists() else None


def choose_renderer(setting: str, machine: Machine,
                    environ: Mapping[str, str]) -> tuple[str | None, str]:
    """(WLR_RENDERER to set, or None to leave the environment's/wlroots' own; why)."""
    if setting in ("gles2", "pixman"):
        return setting, f"renderer {setting} (display.renderer)"
    if "WLR_RENDERER" in environ:
        return None, f"renderer {environ['WLR_RENDERER']} (WLR_RENDERER from the environment)"
    gpu = primary_gpu(machine.sysfs)
    if gpu is None:
        return "pixman", "renderer pixman (auto: no DRM card)"
    card, driver = gpu
    if driver not in MESA_GL_DRIVERS:
        return "pixman", (f"renderer pixman (auto: {card} is driven by {driver or 'no driver'}, "
                          "which Mesa has no hardware GL driver for)")
    firmware = MESA_GL_DRIVERS[driver]
    if firmware is not None and not (machine.firmware / firmware).is_dir():
        return "pixman", (f"renderer pixman (auto: {card} is {driver} without its firmware "
                          f"{machine.firmware / firmware}, so without acceleration)")
    return None, f"renderer gles2 (auto: {card} is {driver})"


def display_settings(config: Path) -> tuple[Display, str | None]:
    """The ``[display]`` table, or the defaults and a one-line reason when it cannot be used;
    the app itself reports what is wrong with the config, on screen and in the journal."""
    try:
        from kiosk.config import ConfigError, load_display
    except Exception as e:  # a broken install must still get a screen up
        return Display(), f"display defaults: the config module does not load ({e})"
    try:
        section = load_display(config)
    except ConfigError as e:
        first = str(e).splitlines()[0]
        return Display(), f"display defaults: {first}"
    return Display(section.rotation, section.renderer), None


def app_command() -> list[str]:
    """How cage starts the app: this same ``kiosk`` script (the venv's console script on the
    appliance), else this interpreter with the CLI module."""
    script = Path(sys.argv[0])
    if script.name == "kiosk" and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [sys.executable, "-m", "kiosk.cli"]


def plan(app: str, config: Path, *, cage: str = CAGE, machine: Machine | None = None,
         environ: Mapping[str, str] | None = None, display: Display | None = None,
         command: list[str] | None = None) -> Launch:
    """Everything ``kiosk screen`` decides, without side effects."""
    if app not in APPS:
        raise ValueError(f"unknown app {app!r} (known: {', '.join(APPS)})")
    machine = machine or Machine()
    environ = os.environ if environ is None else environ
    notes: list[str] = []
    missing = missing_cpu_flags(machine)
    cpu_problem = None
    if missing:
        cpu_problem = (f"this CPU lacks {', '.join(missing)}: the kiosk needs an x86-64-v2 CPU "
                       "(SSE4.2, POPCNT; NumPy 2 is built for it)")
    if display is None:
        display, problem = display_settings(config)
        if problem:
            notes.append(problem)
    env: dict[str, str] = {}
    renderer, why = choose_renderer(display.renderer, machine, environ)
    if renderer is not None:
        env["WLR_RENDERER"] = renderer
    notes.append(why)
    # No -s: without it cage does not switch VTs, the way out to a console (systemd/README.md).
    argv = (cage, "-d", *["-r"] * (display.rotation // 90 % 4), "--",
            *(command or app_command()), app, "--config", str(config))
    if display.rotation:
        notes.append(f"rotated {display.rotation} degrees clockwise (display.rotation)")
    return Launch(app, tuple(argv), env, tuple(notes), cpu_problem)


def describe(launch: Launch) -> str:
    """The launch as one shell line: variables, then cage's command."""
    return shlex.join([*(f"{k}={v}" for k, v in launch.env.items()), *launch.argv])


def start(app: str, config: Path, *, cage: str = CAGE, machine: Machine | None = None,
          dry_run: bool = False) -> int:
    """Decide, say why in the journal, and exec cage (only returns when it cannot)."""
    launch = plan(app, config, cage=cage, machine=machine)
    if launch.cpu_problem is not None:
        # One line, with the priority prefix journald reads from a unit's stderr.
        prefix = "<3>" if os.environ.get("JOURNAL_STREAM") else ""
        then = ("not starting the kiosk; the out-of-service screen follows" if launch.refuse
                else "showing the out-of-service screen")
        print(f"{prefix}kiosk screen: {launch.cpu_problem}; {then}", file=sys.stderr,
              flush=True)
        if launch.refuse:
            return EXIT_UNSUPPORTED_CPU
    for note in launch.notes:
        log.info("screen: %s", note)
    if dry_run:
        print(describe(launch))
        return 0
    log.info("screen: exec %s", describe(launch))
    logging.shutdown()
    try:
        os.execve(launch.argv[0], list(launch.argv), {**os.environ, **launch.env})
    except OSError as e:
        print(f"kiosk screen: cannot start {launch.argv[0]}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    return 0  # not reached: exec replaced this process


__all__ = [
    "APPS",
    "CAGE",
    "EXIT_UNSUPPORTED_CPU",
    "MESA_GL_DRIVERS",
    "X86_64_V2_FLAGS",
    "Display",
    "Launch",
    "Machine",
    "choose_renderer",
    "describe",
    "display_settings",
    "missing_cpu_flags",
    "plan",
    "primary_gpu",
    "start",
]
