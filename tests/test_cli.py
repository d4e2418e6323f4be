"""What a technician sees when something is wrong before the kiosk starts: one line, exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import cli

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets/config/demo.toml"


def test_check_config_accepts_the_demo(capsys):
    assert cli.main(["check-config", str(DEMO)]) == 0
    assert "ok" in capsys.readouterr().out


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_driver_names_file_line_and_key(tmp_path, capsys):
    text = DEMO.read_text(encoding="utf-8")
    start = text.index("[devices.barcode]")
    text = text[:start] + text[start:].replace('driver = "sim"', 'driver = "usb-hid"', 1)
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"kiosk: {path}:{line_of(text, 'usb-hid')}: devices.barcode.driver: "
                   "unknown driver 'usb-hid' (known: sim, serial, camera)")


def test_a_setting_the_driver_does_not_take(tmp_path, capsys):
    from kiosk.config import ConfigError, load_config
    from kiosk.drivers import build_device

    text = DEMO.read_text(encoding="utf-8").replace(
        "[devices.barcode]\n", "[devices.barcode]\nbaudrate = 9600\n", 1)
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    with pytest.raises(ConfigError) as error:
        build_device(config, "barcode", config.devices["barcode"])
    assert str(error.value) == (f"{path}:{line_of(text, 'baudrate')}: devices.barcode.baudrate: "
                                "not a setting of the 'sim' driver")


def test_missing_font_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setattr("kiosk.fonts.FONT_PATH", Path("/nonexistent/wqy-microhei.ttc"))
    assert cli.main(["run", "--config", str(DEMO)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install fonts-wqy-microhei" in err


def test_embedded_back_office_port_in_use_is_one_clear_line(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    text = DEMO.read_text(encoding="utf-8").replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    text = text.replace('"var/', f'"{tmp_path}/').replace("sqlite:///var/", f"sqlite:///{tmp_path}/")
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "run", "--config", str(path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "SDL_VIDEODRIVER": "offscreen"})
    finally:
        holder.close()
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kiosk: ") and f"port {port}" in last and "in use" in last
    assert "Traceback" not in done.stderr


def test_read_id_with_the_simulated_reader_prints_a_masked_record(capsys):
    import json

    assert cli.main(["devices", "read-id", "--driver", "sim", "--json", "--timeout", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["completion"] == "success"
    assert out["record"]["id_number"] == "5301**********0026"  # the demo card, masked
    assert out["record"]["birth_date"] == "1985-**-**"
    assert out["record"]["photo"] == {"status": "unavailable", "bytes": 0}
    assert out["passive_authentication"]["status"] == "verified"


def test_read_id_unmasked_and_a_passport_by_mrz(capsys):
    code = cli.main(["devices", "read-id", "--driver", "sim", "--unmask", "--timeout", "5",
                     "--mrz", "L898902C3,740812,340415"])
    assert code == 0
    out = capsys.readouterr().out
    assert "L898902C3" in out and "ERIKSSON ANNA MARIA" in out
    assert "authenticity: notVerified" in out


def test_read_id_failures_exit_non_zero_with_the_completion(capsys):
    # A wrong MRZ: the simulated chip refuses access (BAC would).
    assert cli.main(["devices", "read-id", "--driver", "sim", "--timeout", "5",
                     "--mrz", "L898902C3,740812,350415"]) == 1
    assert "read failed: userError/securityFail" in capsys.readouterr().out
    # A malformed MRZ is a usage error, said in one line.
    assert cli.main(["devices", "read-id", "--driver", "sim", "--mrz", "L898902C3,7408,1"]) == 2
    assert "--mrz:" in capsys.readouterr().err
