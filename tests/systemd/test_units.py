"""The appliance's units, checked offline with systemd's own tools (PID 1 here is not systemd):
`systemd-analyze verify` on every unit and drop-in as installed into a root file system by
systemd/install.sh (what the image build runs), the security exposure of every service, and
the settings that keep a kiosk alive and locked down."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from kiosk import compositor
from tests.systemd.conftest import IMAGE_EXECUTABLES, SYSTEMD_DIR, UNIT_DIR, build_image_root

UNITS = sorted(p.name for p in (SYSTEMD_DIR / "system").iterdir() if p.is_file())
SERVICES = [u for u in UNITS if u.endswith(".service")]
# The figure the issue asks for (2.5) for the kiosk; the others do less and are held tighter.
EXPOSURE_LIMITS = {"zizhu-kiosk.service": 2.5, "zizhu-out-of-service.service": 2.0,
                   "zizhu-backoffice.service": 1.5, "zizhu-health.service": 1.5}


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", "--generators=no",
         str(root / UNIT_DIR / unit)], capture_output=True, text=True, timeout=60)


def exposure(root: Path, unit: str) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "--no-pager", unit],
        capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout + done.stderr)
    assert found, f"no exposure figure for {unit}:\n{done.stdout}{done.stderr}"
    return float(found.group(1))


def unit_values(unit: str, key: str) -> list[str]:
    """Every value given to ``key`` in the unit file (repeated keys accumulate)."""
    values = []
    for line in (SYSTEMD_DIR / "system" / unit).read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            values.append(value.strip())
    return values


def executables(unit_text: str) -> set[str]:
    """The programs a unit runs: each Exec*= command, and the app that cage is given."""
    found = set()
    for line in unit_text.splitlines():
        key, sep, command = line.partition("=")
        if not (sep and key.startswith("Exec")):
            continue
        words = command.lstrip("-@:+!").split()
        found.add(words[0])
        if words[0].endswith("/cage") and "--" in words:
            found.add(words[words.index("--") + 1])
    return found


def test_every_unit_is_in_the_install_script_and_the_test():
    installed = {p.name for p in (SYSTEMD_DIR / "system").iterdir() if p.is_file()}
    assert set(UNITS) == installed
    assert {"zizhu-kiosk.service", "zizhu-out-of-service.service", "zizhu-kiosk-retry.timer",
            "zizhu-backoffice.service", "zizhu-health.service", "zizhu-health.timer"} <= installed


@pytest.mark.parametrize("unit", UNITS + ["seatd.service"])
def test_systemd_analyze_verify_is_silent(image_root, unit):
    # verify exits 0 on an unknown key (it only warns), so any output at all is a failure.
    done = verify(image_root, unit)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", (
        f"systemd-analyze verify {unit}:\n{done.stdout}{done.stderr}")


def test_verify_catches_a_misspelt_key_and_a_missing_program(tmp_path):
    """The check above would fail on a broken unit: here is one."""
    root = build_image_root(tmp_path / "root")
    unit = root / UNIT_DIR / "zizhu-kiosk.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs=")
                    .replace("/opt/zizhu/venv/bin/kiosk ", "/opt/zizhu/venv/bin/kiosque "))
    done = verify(root, "zizhu-kiosk.service")
    assert "Unknown key 'WatchdogSecs'" in done.stderr
    assert "/opt/zizhu/venv/bin/kiosque is not executable" in done.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_units_run_only_programs_the_image_has(unit):
    text = (SYSTEMD_DIR / "system" / unit).read_text()
    assert executables(text) <= set(IMAGE_EXECUTABLES), (
        f"{unit} runs {executables(text) - set(IMAGE_EXECUTABLES)}: add it to the image and "
        f"to IMAGE_EXECUTABLES")


def test_debian_programs_are_where_the_units_look_for_them():
    for package, path in (("cage", "/usr/bin/cage"), ("seatd", "/usr/sbin/seatd")):
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True)
        if status.stdout != "install ok installed":
            continue  # not installed on this host; the image build installs it
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        files = set(listed.stdout.split())
        assert path in files or path.removeprefix("/usr") in files, (package, path)


@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure(image_root, unit):
    figure = exposure(image_root, unit)
    assert figure < EXPOSURE_LIMITS[unit], f"{unit}: exposure {figure}"


def test_security_threshold_option_agrees(image_root):
    # --threshold is in tenths: the command CI scripts can use without parsing the output.
    ok = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={image_root}",
                         "--threshold=25", "zizhu-kiosk.service"], capture_output=True)
    too_strict = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                 f"--root={image_root}", "--threshold=5", "zizhu-kiosk.service"],
                                capture_output=True)
    assert ok.returncode == 0 and too_strict.returncode != 0


def test_units_name_only_units_that_exist(image_root):
    """A typo in OnFailure=, Conflicts= or a timer's Unit= is not an error to systemd-analyze."""
    keys = ("OnFailure", "Conflicts", "Wants", "After", "PartOf", "Unit")
    for unit in UNITS:
        for key in keys:
            for value in unit_values(unit, key):
                for name in value.split():
                    template = re.sub(r"@[^.]+\.", "@.", name)
                    assert (image_root / UNIT_DIR / name).exists() or (
                        image_root / UNIT_DIR / template).exists(), f"{unit}: {key}={name}"


def test_kiosk_unit_keeps_the_kiosk_alive():
    kiosk = "zizhu-kiosk.service"
    assert unit_values(kiosk, "Type") == ["notify"]
    # cage is the main process and the kiosk its child (test_cage.py measures it).
    assert unit_values(kiosk, "NotifyAccess") == ["all"]
    assert unit_values(kiosk, "WatchdogSec") == ["30s"]
    assert unit_values(kiosk, "Restart") == ["always"]
    assert unit_values(kiosk, "OnFailure") == ["zizhu-out-of-service.service"]
    assert unit_values(kiosk, "StartLimitBurst") == ["5"]
    assert unit_values(kiosk, "PAMName") == []  # a session scope would swallow READY/WATCHDOG
    assert unit_values(kiosk, "User") == ["kiosk"]
    assert "pcscd.socket" in " ".join(unit_values(kiosk, "After"))
    assert "cups.service" in " ".join(unit_values(kiosk, "After"))
    assert unit_values(kiosk, "LimitCORE") == ["0"]  # no core file with a citizen's data
    # Only the kiosk's own data is writable; the provisioned config stays read-only to it.
    assert unit_values(kiosk, "ProtectSystem") == ["strict"]
    assert unit_values(kiosk, "StateDirectory") == ["zizhu/kiosk"]
    assert unit_values(kiosk, "ReadWritePaths") == ["-/var/lib/zizhu/metrics"]


def test_out_of_service_screen_takes_over_and_the_kiosk_is_retried():
    oos = "zizhu-out-of-service.service"
    assert "zizhu-kiosk.service" in unit_values(oos, "Conflicts")[0].split()
    assert "zizhu-kiosk-retry.timer" in unit_values(oos, "Wants")[0].split()
    assert unit_values("zizhu-kiosk-retry.timer", "Unit") == ["zizhu-kiosk.service"]
    retry = unit_values("zizhu-kiosk-retry.timer", "OnActiveSec")[0]
    window = unit_values("zizhu-kiosk.service", "StartLimitIntervalSec")[0]
    # The retry must come after the start limit has expired, or it would be refused.
    assert int(retry.removesuffix("min")) > int(window.removesuffix("min"))
    assert "out-of-service" in unit_values(oos, "ExecStart")[0].split()


def test_both_screens_start_through_the_launcher_which_runs_cage():
    """`kiosk screen APP` applies [display] from the data partition and execs cage: the unit
    file on the read-only root needs no site drop-in (kiosk/compositor.py)."""
    for unit, app in (("zizhu-kiosk.service", "run"),
                      ("zizhu-out-of-service.service", "out-of-service")):
        command = unit_values(unit, "ExecStart")[0].split()
        assert command == ["/opt/zizhu/venv/bin/kiosk", "screen", app, "--config",
                           "/var/lib/zizhu/config/kiosk.toml"]
    assert compositor.CAGE in IMAGE_EXECUTABLES


def test_an_unsupported_cpu_fails_the_kiosk_at_once_instead_of_five_restarts():
    assert unit_values("zizhu-kiosk.service", "RestartPreventExitStatus") == [
        str(compositor.EXIT_UNSUPPORTED_CPU)]
    # The out-of-service screen runs on such a CPU; it is the one that must come up.
    assert unit_values("zizhu-out-of-service.service", "RestartPreventExitStatus") == []


def test_the_back_office_takes_its_site_settings_from_the_data_partition():
    files = unit_values("zizhu-backoffice.service", "EnvironmentFile")
    assert files == ["-/var/lib/zizhu/config/backoffice.env"]  # optional: "-"
    # Environment= gives the defaults, which EnvironmentFile= overrides (it is read after).
    assert "ZIZHU_BACKOFFICE_HOST=127.0.0.1" in unit_values("zizhu-backoffice.service",
                                                            "Environment")[0]


def test_no_way_to_a_console_or_another_vt(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text("[display]\nrotation = 90\n")
    for unit in ("zizhu-kiosk.service", "zizhu-out-of-service.service"):
        app = unit_values(unit, "ExecStart")[0].split()[2]
        command = compositor.plan(app, config, environ={}).argv
        assert command[0] == "/usr/bin/cage" and "-s" not in command[:command.index("--")]
        assert "XKB_DEFAULT_OPTIONS=srvrkeys:none" in " ".join(unit_values(unit, "Environment"))
    logind = configparser.ConfigParser()
    logind.read(SYSTEMD_DIR / "logind.conf.d" / "zizhu.conf")
    assert logind["Login"]["NAutoVTs"] == "0" and logind["Login"]["ReserveVT"] == "0"
    assert logind["Login"]["HandlePowerKey"] == "ignore"
    sysctl = dict(line.replace(" ", "").split("=", 1)
                  for line in (SYSTEMD_DIR / "sysctl.d" / "90-zizhu.conf").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert sysctl["kernel.sysrq"] == "0"
    manager = configparser.ConfigParser()
    manager.read(SYSTEMD_DIR / "system.conf.d" / "zizhu-ctrl-alt-del.conf")
    assert manager["Manager"]["CtrlAltDelBurstAction"] == "none"


def test_hardware_watchdog_is_on():
    manager = configparser.ConfigParser()
    manager.read(SYSTEMD_DIR / "system.conf.d" / "zizhu-watchdog.conf")
    assert manager["Manager"]["RuntimeWatchdogSec"] == "30s"


def test_install_enables_the_kiosk_and_masks_consoles(image_root):
    etc = image_root / "etc/systemd/system"
    assert (etc / "graphical.target.wants/zizhu-kiosk.service").is_symlink()
    assert (etc / "timers.target.wants/zizhu-health.timer").is_symlink()
    assert not (etc / "multi-user.target.wants/zizhu-backoffice.service").exists()
    for masked in ("getty@tty1.service", "ctrl-alt-del.target", "debug-shell.service"):
        assert (etc / masked).resolve() == Path("/dev/null"), masked
    health = image_root / "usr/libexec/zizhu/health-check"
    assert health.read_bytes() == (SYSTEMD_DIR / "health-check.py").read_bytes()
    assert health.stat().st_mode & 0o111


def test_install_with_backoffice_enables_it(tmp_path):
    root = build_image_root(tmp_path / "root")
    subprocess.run(["bash", str(SYSTEMD_DIR / "install.sh"), "--root", str(root),
                    "--with-backoffice"], check=True, capture_output=True)
    assert (root / "etc/systemd/system/multi-user.target.wants/zizhu-backoffice.service"
            ).is_symlink()


def _entries(root: Path, database: str) -> dict[str, list[str]]:
    rows = (root / "etc" / database).read_text().splitlines()
    return {r.split(":")[0]: r.split(":") for r in rows}


def test_users_groups_and_data_folders(image_root):
    passwd = _entries(image_root, "passwd")
    groups = _entries(image_root, "group")
    kiosk_uid = int(passwd["kiosk"][2])
    assert passwd["kiosk"][6].endswith("nologin") and kiosk_uid != 0
    assert "zizhu-backoffice" in passwd
    for group in ("video", "render", "dialout"):
        assert "kiosk" in groups[group][3].split(","), group
    for group in ("input", "lp", "lpadmin", "sudo"):
        assert "kiosk" not in groups.get(group, ["", "", "", ""])[3].split(","), group
    data = image_root / "var/lib/zizhu"
    personal = (data / "kiosk").stat()
    assert (personal.st_uid, personal.st_mode & 0o777) == (kiosk_uid, 0o700)
    config = (data / "config").stat()
    assert (config.st_uid, config.st_gid, config.st_mode & 0o777) == (
        0, int(groups["kiosk"][2]), 0o750)
    backoffice = (data / "backoffice").stat()
    assert (backoffice.st_uid, backoffice.st_mode & 0o777) == (
        int(passwd["zizhu-backoffice"][2]), 0o700)


def test_install_refuses_a_missing_root(tmp_path):
    done = subprocess.run(["bash", str(SYSTEMD_DIR / "install.sh"), "--root",
                           str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "no directory" in done.stderr
