"""systemd/health-check.py (installed as /usr/libexec/zizhu/health-check) against the real back
office over loopback, with systemctl and `kiosk metrics` played by small scripts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.launcher import free_port
from tests.systemd.conftest import SYSTEMD_DIR

SCRIPT = SYSTEMD_DIR / "health-check.py"
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(\{(?P<labels>[a-z_]+=\"[^\"]*\")\})? "
                    r"(?P<value>-?[0-9.]+(e[+-]?[0-9]+)?)$")


def unit_block(unit: str, load: str, active: str, sub: str, restarts: int) -> str:
    return (f"Id={unit}\nLoadState={load}\nActiveState={active}\nSubState={sub}\n"
            f"NRestarts={restarts}\n")


def fake_systemctl(tmp_path: Path, kiosk: str = "active", oos: str = "inactive") -> Path:
    """Answers `systemctl show ...` as systemd 252 does: one block per unit, in order."""
    blocks = "\n".join([
        unit_block("zizhu-kiosk.service", "loaded", kiosk,
                   "running" if kiosk == "active" else "dead", 2),
        unit_block("zizhu-out-of-service.service", "loaded", oos,
                   "running" if oos == "active" else "dead", 0),
        unit_block("zizhu-backoffice.service", "not-found", "inactive", "dead", 0)])
    script = tmp_path / "systemctl"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = show ] || exit 3\ncat <<'EOF'\n{blocks}EOF\n")
    script.chmod(0o755)
    return script


def fake_kiosk(tmp_path: Path, status: int = 0) -> Path:
    """`kiosk metrics --config FILE --out FILE --if-stale S`: writes its arguments into the
    out file (the argument after --out)."""
    script = tmp_path / "kiosk"
    script.write_text('#!/bin/sh\nout=$(echo "$*" | sed "s/.*--out \\([^ ]*\\).*/\\1/")\n'
                      f'echo "# args: $*" > "$out"\nexit {status}\n')
    script.chmod(0o755)
    return script


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[kiosk]\nid = "ZZ-T"\ncentre_id = "T"\n[backoffice]\nurl = "{url}/"\n')
    return config


def run(tmp_path: Path, config: Path, systemctl: Path, kiosk: Path,
        textfile_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    out = textfile_dir or tmp_path / "metrics"
    out.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config), "--textfile-dir", str(out),
         "--kiosk-command", str(kiosk), "--systemctl", str(systemctl)],
        capture_output=True, text=True, timeout=60)


def samples(path: Path) -> dict[str, float]:
    """``name{labels}`` -> value, checking the text format on the way."""
    found: dict[str, float] = {}
    declared: set[str] = set()
    for line in path.read_text().splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        assert match["name"] in declared, f"{match['name']} has no # TYPE line before it"
        key = match["name"] + (f"{{{match['labels']}}}" if match["labels"] else "")
        found[key] = float(match["value"])
    return found


def test_healthy_kiosk(tmp_path, backoffice_server):
    config = write_config(tmp_path, backoffice_server.url)
    done = run(tmp_path, config, fake_systemctl(tmp_path), fake_kiosk(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "healthy"
    got = samples(tmp_path / "metrics" / "zizhu_health.prom")
    assert got['zizhu_unit_active{unit="zizhu-kiosk.service"}'] == 1
    assert got['zizhu_unit_active{unit="zizhu-out-of-service.service"}'] == 0
    assert got['zizhu_unit_restarts{unit="zizhu-kiosk.service"}'] == 2
    assert not any("zizhu-backoffice.service" in k for k in got)  # not installed here
    assert got["zizhu_backoffice_up"] == 1 and "zizhu_backoffice_probe_seconds" in got
    assert got["zizhu_kiosk_metrics_ok"] == 1 and got["zizhu_healthy"] == 1
    kiosk_file = tmp_path / "metrics" / "zizhu_kiosk.prom"
    assert kiosk_file.read_text().strip() == (
        f"# args: metrics --config {config} --out {kiosk_file} --if-stale 120")


def test_out_of_service_kiosk_and_silent_back_office(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = run(tmp_path, write_config(tmp_path, url),
               fake_systemctl(tmp_path, kiosk="failed", oos="active"), fake_kiosk(tmp_path))
    assert done.returncode == 1
    assert "zizhu-kiosk.service is failed" in done.stdout and url in done.stdout
    got = samples(tmp_path / "metrics" / "zizhu_health.prom")
    assert got['zizhu_unit_failed{unit="zizhu-kiosk.service"}'] == 1
    assert got['zizhu_unit_active{unit="zizhu-out-of-service.service"}'] == 1
    assert got["zizhu_backoffice_up"] == 0 and got["zizhu_healthy"] == 0


def test_metrics_command_failing_is_reported_not_fatal(tmp_path, backoffice_server):
    done = run(tmp_path, write_config(tmp_path, backoffice_server.url), fake_systemctl(tmp_path),
               fake_kiosk(tmp_path, status=1))
    assert done.returncode == 0
    got = samples(tmp_path / "metrics" / "zizhu_health.prom")
    assert got["zizhu_kiosk_metrics_ok"] == 0 and got["zizhu_healthy"] == 1
    missing = run(tmp_path, write_config(tmp_path, backoffice_server.url),
                  fake_systemctl(tmp_path), tmp_path / "no-such-kiosk")
    assert missing.returncode == 0 and "did not run" in missing.stderr


def test_unreadable_config_is_unhealthy(tmp_path):
    done = run(tmp_path, tmp_path / "missing.toml", fake_systemctl(tmp_path),
               fake_kiosk(tmp_path))
    assert done.returncode == 1 and "config cannot be read" in done.stdout
    got = samples(tmp_path / "metrics" / "zizhu_health.prom")
    assert "zizhu_backoffice_up" not in got and got["zizhu_healthy"] == 0


def test_file_is_replaced_whole_and_no_temporary_file_is_left(tmp_path, backoffice_server):
    config = write_config(tmp_path, backoffice_server.url)
    run(tmp_path, config, fake_systemctl(tmp_path), fake_kiosk(tmp_path))
    target = tmp_path / "metrics" / "zizhu_health.prom"
    first = target.stat().st_ino
    run(tmp_path, config, fake_systemctl(tmp_path), fake_kiosk(tmp_path))
    assert target.stat().st_ino != first  # renamed over, never rewritten in place
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "zizhu_health.prom", "zizhu_kiosk.prom"]
    assert target.stat().st_mode & 0o777 == 0o644  # node_exporter runs as another user


def test_unwritable_directory_exits_2(tmp_path):
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(tmp_path / "k.toml"), "--textfile-dir",
         str(missing), "--kiosk-command", str(fake_kiosk(tmp_path)),
         "--systemctl", str(fake_systemctl(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 2 and "cannot write" in done.stderr


@pytest.mark.parametrize("broken", ["", "not systemctl output"])
def test_systemctl_trouble_counts_as_kiosk_down(tmp_path, backoffice_server, broken):
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!/bin/sh\necho '{broken}'\nexit {1 if not broken else 0}\n")
    systemctl.chmod(0o755)
    done = run(tmp_path, write_config(tmp_path, backoffice_server.url), systemctl,
               fake_kiosk(tmp_path))
    assert done.returncode == 1 and "zizhu-kiosk.service" in done.stdout


def test_with_the_real_kiosk_metrics_command(tmp_path, backoffice_server):
    """The contract with kiosk/metrics.py: the offline figures are written when the file is
    missing, and a fresh file (the running app's) is left alone."""
    kiosk = Path(sys.executable).with_name("kiosk")
    if not kiosk.exists():
        pytest.skip("the kiosk console script is not installed in this environment")
    config = write_config(tmp_path, backoffice_server.url)
    config.write_text(config.read_text().replace(
        "[backoffice]", f'data_dir = "{tmp_path / "data"}"\n[backoffice]'))
    done = run(tmp_path, config, fake_systemctl(tmp_path), kiosk)
    assert done.returncode == 0, done.stdout + done.stderr
    live = tmp_path / "metrics" / "zizhu_kiosk.prom"
    assert 'kiosk_id="ZZ-T"' in live.read_text()
    assert samples(tmp_path / "metrics" / "zizhu_health.prom")["zizhu_kiosk_metrics_ok"] == 1
    live.write_text("# the running app's live figures\n")
    run(tmp_path, config, fake_systemctl(tmp_path), kiosk)
    assert live.read_text() == "# the running app's live figures\n"
