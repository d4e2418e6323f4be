"""``kiosk screen`` (kiosk.compositor), the launcher both graphical units run: its decisions on
fake /proc/cpuinfo and /sys trees, and the real command, which must exec cage in its own place
(cage stays the unit's main process) or refuse on a CPU the app cannot run on.

The cpuinfo fixtures are a Linux guest's under qemu's ``qemu64`` and ``Nehalem`` models; the
flags that x86-64-v2 needs match what CPUID reports under ``qemu-x86_64 -cpu MODEL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import compositor
from kiosk.compositor import Display, Machine, plan
from tests.systemd.conftest import PROJECT
from tests.systemd.test_watchdog_loop import numpy_that_kills

FIXTURES = Path(__file__).with_name("fixtures")
QEMU64 = FIXTURES / "cpuinfo-qemu64"
NEHALEM = FIXTURES / "cpuinfo-nehalem"
CONFIG_HEAD = """
[kiosk]
id = "ZZ-SCREEN-1"
centre_id = "TEST-01"
[backoffice]
url = "http://127.0.0.1:9"
"""


def fake_sysfs(root: Path, cards: dict[str, tuple[str | None, bool]]) -> Path:
    """/sys/class/drm with ``cards`` (name -> kernel driver, boot VGA), each with a connector
    and a render node beside it as on a real machine."""
    drm = root / "sys/class/drm"
    drm.mkdir(parents=True)
    for name, (driver, boot_vga) in cards.items():
        device = root / "sys/devices/pci0000:00" / name
        device.mkdir(parents=True)
        (device / "boot_vga").write_text("1\n" if boot_vga else "0\n")
        if driver is not None:
            target = root / "sys/bus/pci/drivers" / driver
            target.mkdir(parents=True, exist_ok=True)
            (device / "driver").symlink_to(target)
        (drm / name).mkdir()
        (drm / name / "device").symlink_to(device)
        (drm / f"{name}-HDMI-A-1").mkdir()
    (drm / "renderD128").mkdir()
    return root / "sys"


def machine(tmp_path: Path, cards: dict[str, tuple[str | None, bool]] | None = None,
            cpuinfo: Path = NEHALEM, firmware: tuple[str, ...] = ()) -> Machine:
    sysfs = fake_sysfs(tmp_path, cards) if cards is not None else tmp_path / "no-sys"
    for folder in firmware:
        (tmp_path / "firmware" / folder).mkdir(parents=True)
    return Machine(cpuinfo=cpuinfo, sysfs=sysfs, firmware=tmp_path / "firmware", arch="x86_64")


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(CONFIG_HEAD + extra, encoding="utf-8")
    return path


# --- the CPU ------------------------------------------------------------------------------


def test_qemu64_lacks_what_x86_64_v2_needs():
    missing = compositor.missing_cpu_flags(Machine(cpuinfo=QEMU64, arch="x86_64"))
    assert missing == ["popcnt", "sse4_1", "sse4_2", "ssse3"]


def test_nehalem_has_everything():
    assert compositor.missing_cpu_flags(Machine(cpuinfo=NEHALEM, arch="x86_64")) == []


def test_other_architectures_and_unreadable_cpuinfo_are_not_refused(tmp_path):
    assert compositor.missing_cpu_flags(Machine(cpuinfo=QEMU64, arch="aarch64")) == []
    assert compositor.missing_cpu_flags(Machine(cpuinfo=tmp_path / "none", arch="x86_64")) == []
    no_flags = tmp_path / "cpuinfo"
    no_flags.write_text("processor\t: 0\nmodel name\t: something\n")
    assert compositor.missing_cpu_flags(Machine(cpuinfo=no_flags, arch="x86_64")) == []


def test_an_old_cpu_refuses_the_kiosk_but_not_the_out_of_service_screen(tmp_path):
    old = machine(tmp_path, cpuinfo=QEMU64)
    kiosk = plan("run", config_file(tmp_path), machine=old, environ={})
    screen = plan("out-of-service", config_file(tmp_path), machine=old, environ={})
    assert kiosk.refuse and not screen.refuse
    assert kiosk.cpu_problem == screen.cpu_problem
    assert "popcnt, sse4_1, sse4_2, ssse3" in kiosk.cpu_problem
    assert "x86-64-v2" in kiosk.cpu_problem
    assert not plan("run", config_file(tmp_path), machine=machine(tmp_path / "new"),
                    environ={}).refuse


# --- rotation and the command -------------------------------------------------------------


@pytest.mark.parametrize(("rotation", "turns"), [(0, 0), (90, 1), (180, 2), (270, 3)])
def test_rotation_is_cages_r_once_per_quarter_turn(tmp_path, rotation, turns):
    config = config_file(tmp_path, f"[display]\nrotation = {rotation}\n")
    launch = plan("run", config, machine=machine(tmp_path), environ={},
                  command=["/opt/zizhu/venv/bin/kiosk"])
    assert launch.argv == ("/usr/bin/cage", "-d", *["-r"] * turns, "--",
                           "/opt/zizhu/venv/bin/kiosk", "run", "--config", str(config))


def test_no_vt_switching_in_either_screen(tmp_path):
    for app in compositor.APPS:
        argv = plan(app, config_file(tmp_path), machine=machine(tmp_path / app),
                    environ={}).argv
        assert "-s" not in argv[:argv.index("--")]
        assert argv[argv.index("--") + 1:][-3:] == (app, "--config",
                                                     str(config_file(tmp_path)))


def test_a_config_that_does_not_load_gives_the_defaults(tmp_path):
    broken = tmp_path / "kiosk.toml"
    broken.write_text("[kiosk\n")
    launch = plan("run", broken, machine=machine(tmp_path), environ={})
    assert "-r" not in launch.argv
    assert any(note.startswith(f"display defaults: {broken}:1:") for note in launch.notes)
    missing = plan("run", tmp_path / "absent.toml", machine=machine(tmp_path / "b"), environ={})
    assert "-r" not in missing.argv and "cannot read" in " ".join(missing.notes)


def test_a_bad_display_table_gives_the_defaults_and_says_which_key(tmp_path):
    config = config_file(tmp_path, "[display]\nrotation = 45\nrenderer = \"pixman\"\n")
    launch = plan("run", config, machine=machine(tmp_path, {"card0": ("i915", True)}),
                  environ={})
    assert "-r" not in launch.argv and launch.env == {}  # renderer "auto", not the table's
    assert any("display.rotation: must be one of 0, 90, 180, 270 (got 45)" in note
               for note in launch.notes)


def test_the_rotation_holds_when_another_part_of_the_config_is_wrong(tmp_path):
    """The app then shows its problem (or the out-of-service screen) the right way up."""
    config = tmp_path / "kiosk.toml"
    config.write_text("[kiosk]\nid = \"bad id!\"\n[display]\nrotation = 90\n")
    launch = plan("out-of-service", config, machine=machine(tmp_path), environ={})
    assert launch.argv.count("-r") == 1


# --- the renderer -------------------------------------------------------------------------


@pytest.mark.parametrize(("cards", "firmware", "renderer"), [
    ({"card0": ("virtio_gpu", True)}, (), "pixman"),     # qemu -vga virtio: crashed under gles2
    ({"card0": ("bochs-drm", True)}, (), "pixman"),
    ({"card0": ("simple-framebuffer", False)}, (), "pixman"),
    ({"card0": (None, True)}, (), "pixman"),
    ({"card0": ("i915", True)}, (), None),               # wlroots' own choice: gles2
    ({"card0": ("amdgpu", True)}, ("amdgpu",), None),
    ({"card0": ("radeon", True)}, (), "pixman"),         # no firmware: no acceleration
    ({"card0": ("radeon", True)}, ("radeon",), None),
    ({"card0": ("ast", False), "card1": ("i915", True)}, (), None),    # boot VGA first
    ({"card0": ("i915", False), "card1": ("ast", True)}, (), "pixman"),
    ({"card1": ("i915", False), "card0": ("mgag200", False)}, (), "pixman"),  # else lowest
], ids=["virtio", "bochs", "simpledrm", "unbound", "i915", "amdgpu", "radeon-no-fw",
        "radeon-fw", "boot-vga-i915", "boot-vga-ast", "lowest-number"])
def test_auto_picks_pixman_unless_mesa_accelerates_the_gpu(tmp_path, cards, firmware, renderer):
    launch = plan("run", config_file(tmp_path), environ={},
                  machine=machine(tmp_path, cards, firmware=firmware))
    assert launch.env.get("WLR_RENDERER") == renderer
    why = next(n for n in launch.notes if n.startswith("renderer "))
    assert why.startswith(f"renderer {renderer or 'gles2'} (auto: ")


def test_no_drm_card_at_all_means_pixman(tmp_path):
    launch = plan("run", config_file(tmp_path), machine=machine(tmp_path), environ={})
    assert launch.env == {"WLR_RENDERER": "pixman"}


def test_the_environment_is_kept_under_auto_and_the_config_wins_when_explicit(tmp_path):
    gpu = machine(tmp_path, {"card0": ("virtio_gpu", True)})
    auto = plan("run", config_file(tmp_path), machine=gpu, environ={"WLR_RENDERER": "gles2"})
    assert auto.env == {}  # a drop-in or the kernel command line said so: left alone
    explicit = config_file(tmp_path, "[display]\nrenderer = \"gles2\"\n")
    forced = plan("run", explicit, machine=gpu, environ={"WLR_RENDERER": "pixman"})
    assert forced.env == {"WLR_RENDERER": "gles2"}


# --- the real command ---------------------------------------------------------------------


def screen(tmp_path: Path, *args: str, cpuinfo: Path = NEHALEM,
           sysfs: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command, with a NumPy that dies on import as on a CPU without x86-64-v2: the
    launcher must get as far as saying so."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WLR_RENDERER", "JOURNAL_STREAM", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(numpy_that_kills(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "screen", *args, "--cpuinfo", str(cpuinfo),
         "--sysfs", str(sysfs or tmp_path / "no-sys"), "--firmware", str(tmp_path / "fw")],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=60)


def fake_cage(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for cage that records its PID, argv and WLR_RENDERER."""
    record = tmp_path / "cage.record"
    cage = tmp_path / "cage"
    cage.write_text(f'#!/bin/sh\necho "$$ $WLR_RENDERER $*" > {record}\n')
    cage.chmod(0o755)
    return cage, record


def test_screen_execs_cage_in_its_own_place(tmp_path):
    """cage must be the process systemd started (its main PID, whose watchdog PID the app
    accepts as its parent's), so the launcher execs rather than forks."""
    cage, record = fake_cage(tmp_path)
    config = config_file(tmp_path, "[display]\nrotation = 270\n")
    sysfs = fake_sysfs(tmp_path, {"card0": ("virtio_gpu", True)})
    env = {k: v for k, v in os.environ.items() if k != "WLR_RENDERER"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk.cli", "screen", "run", "--config", str(config),
         "--cage", str(cage), "--cpuinfo", str(NEHALEM), "--sysfs", str(sysfs)],
        cwd=PROJECT, env=env, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    pid, renderer, *argv = record.read_text().split()
    assert int(pid) == process.pid
    assert renderer == "pixman"
    assert argv == ["-d", "-r", "-r", "-r", "--", sys.executable, "-m", "kiosk.cli", "run",
                    "--config", str(config)]
    assert "renderer pixman (auto: card0 is driven by virtio_gpu" in stderr


def test_screen_refuses_the_kiosk_on_an_old_cpu_with_one_line(tmp_path):
    cage, record = fake_cage(tmp_path)
    done = screen(tmp_path, "run", "--config", str(config_file(tmp_path)), "--cage", str(cage),
                  cpuinfo=QEMU64)
    assert done.returncode == compositor.EXIT_UNSUPPORTED_CPU == 69
    assert not record.exists()  # cage never started
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("kiosk screen: this CPU lacks popcnt, sse4_1, sse4_2, ssse3: "
                               "the kiosk needs an x86-64-v2 CPU")


def test_screen_shows_the_out_of_service_screen_on_an_old_cpu(tmp_path):
    config = config_file(tmp_path)
    done = screen(tmp_path, "out-of-service", "--config", str(config), "--dry-run",
                  cpuinfo=QEMU64)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"kiosk.cli out-of-service --config {config}")
    assert done.stdout.startswith("WLR_RENDERER=pixman /usr/bin/cage -d -- ")
    assert "this CPU lacks popcnt" in done.stderr
    assert "showing the out-of-service screen" in done.stderr


def test_screen_says_why_when_cage_is_missing(tmp_path):
    done = screen(tmp_path, "run", "--config", str(config_file(tmp_path)), "--cage",
                  str(tmp_path / "no-cage"))
    assert done.returncode == 2
    assert f"cannot start {tmp_path / 'no-cage'}" in done.stderr


def test_display_defaults_are_what_the_dataclass_says():
    # The launcher's fallback and the config's defaults must be the same screen.
    from kiosk.config import DisplaySection

    assert Display() == Display(DisplaySection().rotation, DisplaySection().renderer)
