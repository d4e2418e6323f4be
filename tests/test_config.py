"""The config file: what loads, and that every error points at the right line and key."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from kiosk.config import DEVICE_NAMES, ConfigError, KioskConfig, load_config, load_display

REPO = Path(__file__).resolve().parent.parent

# Line numbers below are counted in this text; keep them in step when editing it.
VALID = """\
[kiosk]
id = "ZZ-530102-001"
centre_id = "530102-01"
orientation = "landscape"
fullscreen = true

[backoffice]
url = "http://127.0.0.1:8765"

[timeouts]
idle_s = 60

[devices.receipt_printer]
driver = "sim"
output_dir = "var/prints/receipt"

[devices.camera]
driver = "sim"
"""


def write(tmp_path: Path, text: str, name: str = "kiosk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``: keeps tests readable."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the shipped configs -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo.toml", "kiosk.example.toml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "assets" / "config" / name)
    assert config.kiosk.id == "ZZ-530102-001"
    assert config.kiosk.centre_id == "530102-01"
    assert set(config.devices) == set(DEVICE_NAMES)


def test_demo_config_is_what_make_run_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "assets" / "config" / "demo.toml")
    assert {d.driver for d in config.devices.values()} == {"sim"}
    assert all(d.enabled for d in config.devices.values())
    assert config.backoffice.embedded is True
    assert config.backoffice.url == "http://127.0.0.1:8765"
    assert (config.backoffice.host, config.backoffice.port) == ("127.0.0.1", 8765)
    assert config.backoffice.database == "sqlite:///var/backoffice.db"
    assert config.backoffice.seed == tmp_path.resolve() / "assets/seed/demo.json"
    assert config.kiosk.data_dir == tmp_path.resolve() / "var/kiosk"
    assert config.kiosk.fullscreen is True
    assert config.devices["receipt_printer"].options == {"output_dir": "var/prints/receipt"}
    assert config.devices["document_printer"].options == {"output_dir": "var/prints/document"}


def test_example_lists_every_key_of_the_schema() -> None:
    # The example is the technicians' reference: a key added to the schema must appear there.
    text = (REPO / "assets" / "config" / "kiosk.example.toml").read_text(encoding="utf-8")
    config = load_config(REPO / "assets" / "config" / "kiosk.example.toml")
    for section in ("kiosk", "backoffice", "timeouts", "display"):
        assert f"[{section}]" in text
        for key in type(getattr(config, section)).model_fields:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key}"


# --- what a valid file gives --------------------------------------------------------------


def test_defaults_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, VALID)
    config = load_config(path)
    assert isinstance(config, KioskConfig)
    assert config.source == path
    assert config.kiosk.language == "zh_CN"
    assert config.kiosk.timezone == "Asia/Shanghai"
    assert config.kiosk.tz.key == "Asia/Shanghai"
    assert config.kiosk.data_dir == tmp_path.resolve() / "var" / "kiosk"
    assert config.kiosk.screen_size == (1920, 1080)
    assert config.backoffice.timeout_s == 5.0
    assert config.backoffice.embedded is False
    assert config.backoffice.seed is None
    assert (config.timeouts.idle_s, config.timeouts.countdown_s) == (60, 15)
    assert (config.timeouts.scan_s, config.timeouts.print_s, config.timeouts.take_s) == (60, 20, 20)
    assert set(config.devices) == {"receipt_printer", "camera"}


def test_portrait_screen_size(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID.replace('"landscape"', '"portrait"')))
    assert config.kiosk.screen_size == (1080, 1920)


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "data"
    text = VALID.replace('fullscreen = true', f'fullscreen = true\ndata_dir = "{target}"')
    assert load_config(write(tmp_path, text)).kiosk.data_dir == target


def test_device_options_pass_through(tmp_path: Path) -> None:
    text = VALID + """
[devices.document_printer]
driver = "cups"
enabled = false
queue = "a4"
copies = 2
duplex = true
margins = { top = 5, bottom = 7 }
trays = ["upper", "lower"]
"""
    device = load_config(write(tmp_path, text)).devices["document_printer"]
    assert device.driver == "cups"
    assert device.enabled is False
    assert device.options == {
        "queue": "a4",
        "copies": 2,
        "duplex": True,
        "margins": {"top": 5, "bottom": 7},
        "trays": ["upper", "lower"],
    }


def test_url_trailing_slash_removed(tmp_path: Path) -> None:
    text = VALID.replace('"http://127.0.0.1:8765"', '"https://bo.example.cn/api/"')
    backoffice = load_config(write(tmp_path, text)).backoffice
    assert backoffice.url == "https://bo.example.cn/api"
    assert backoffice.port == 443


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    with pytest.raises(pydantic.ValidationError):
        config.kiosk.id = "other"  # type: ignore[misc]


# --- [display]: read by the launcher before cage starts ------------------------------------


def test_display_defaults_and_values(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, VALID)).display.model_dump() == {
        "rotation": 0, "renderer": "auto"}
    path = write(tmp_path, VALID + '\n[display]\nrotation = 270\nrenderer = "pixman"\n')
    assert load_config(path).display.model_dump() == {"rotation": 270, "renderer": "pixman"}
    assert load_display(path).model_dump() == {"rotation": 270, "renderer": "pixman"}


@pytest.mark.parametrize(("value", "message"), [
    ("45", "must be one of 0, 90, 180, 270 (got 45)"),
    ("-90", "must be one of 0, 90, 180, 270 (got -90)"),
    ('"90"', "must be one of 0, 90, 180, 270 (got '90')"),
    ("true", "expected an integer (got true)"),  # TOML's true is Python's 1
    ("false", "expected an integer (got false)"),  # and false would be 0 degrees
])
def test_display_rotation_errors(tmp_path: Path, value: str, message: str) -> None:
    text = VALID + f"\n[display]\nrotation = {value}\n"
    path = write(tmp_path, text)
    expected = f"{path}:{line_of(text, 'rotation =')}: display.rotation: {message}"
    assert error_of(path) == expected
    with pytest.raises(ConfigError) as info:
        load_display(path)
    assert str(info.value) == expected  # the launcher's message is the app's


def test_display_renderer_and_unknown_key(tmp_path: Path) -> None:
    text = VALID + '\n[display]\nrenderer = "vulkan"\nrotate = 90\n'
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line_of(text, 'renderer =')}: display.renderer: must be one of auto, gles2, "
        f"pixman (got 'vulkan')\n"
        f"{path}:{line_of(text, 'rotate =')}: display.rotate: unknown key (allowed: rotation, "
        f"renderer)")


def test_load_display_ignores_problems_elsewhere(tmp_path: Path) -> None:
    """A config the kiosk refuses still turns the screen the right way (the app reports the
    problem on that screen)."""
    path = write(tmp_path, '[kiosk]\nid = "no spaces allowed"\n[display]\nrotation = 90\n')
    with pytest.raises(ConfigError):
        load_config(path)
    assert load_display(path).rotation == 90
    assert load_display(write(tmp_path, "[kiosk]\n", "bare.toml")).rotation == 0
    for text, fragment in (("[kiosk\n", "TOML syntax error"), ("display = 3\n", "expected a table")):
        with pytest.raises(ConfigError) as info:
            load_display(write(tmp_path, text, "broken.toml"))
        assert fragment in str(info.value)


# --- errors: file, line, key ---------------------------------------------------------------


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("fullscreen = true", 'fullscreen = "yes"'))
    assert error_of(path) == f"{path}:5: kiosk.fullscreen: expected true or false (got 'yes')"


def test_number_as_string_is_not_coerced(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("idle_s = 60", 'idle_s = "60"'))
    assert error_of(path) == f"{path}:11: timeouts.idle_s: expected an integer (got '60')"


def test_bad_enum(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('"landscape"', '"sideways"'))
    assert error_of(path) == (
        f"{path}:4: kiosk.orientation: must be one of landscape, portrait (got 'sideways')"
    )


def test_missing_required_device_driver_points_at_its_table(tmp_path: Path) -> None:
    text = VALID.replace('driver = "sim"\noutput_dir', 'output_dir')
    path = write(tmp_path, text)
    line = line_of(text, "[devices.receipt_printer]")
    assert line == 13
    assert error_of(path) == f"{path}:13: devices.receipt_printer.driver: field required"


def test_missing_required_kiosk_id_points_at_kiosk_table(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('id = "ZZ-530102-001"\n', ""))
    assert error_of(path) == f"{path}:1: kiosk.id: field required"


def test_missing_table_points_at_top_of_file(tmp_path: Path) -> None:
    text = VALID.replace('[backoffice]\nurl = "http://127.0.0.1:8765"\n', "")
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:1: backoffice: field required"


def test_unknown_key_in_kiosk(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("fullscreen = true", "fullscreen = true\nfulscreen = false"))
    message = error_of(path)
    assert message.startswith(f"{path}:6: kiosk.fulscreen: unknown key (allowed: id, centre_id,")
    assert "fullscreen" in message and "timezone" in message


def test_unknown_top_level_table(tmp_path: Path) -> None:
    text = VALID + "\n[printer]\nx = 1\n"
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line_of(text, '[printer]')}: printer: unknown table "
        "(allowed: kiosk, backoffice, timeouts, appointment_codes, maintenance, outbox, display, "
        "devices)"
    )


def test_unknown_device_name(tmp_path: Path) -> None:
    text = VALID + '\n[devices.scanner]\ndriver = "sim"\n'
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line_of(text, '[devices.scanner]')}: devices.scanner: unknown device "
        "(allowed: id_card, smart_card, camera, barcode, receipt_printer, document_printer)"
    )


def test_device_that_is_not_a_table(tmp_path: Path) -> None:
    text = VALID + '\n[devices]\nbarcode = "sim"\n'
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line_of(text, 'barcode =')}: devices.barcode: expected a table (got 'sim')"
    )


def test_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("idle_s = 60", "idle_s = 5"))
    assert error_of(path) == f"{path}:11: timeouts.idle_s: must be at least 10 (got 5)"


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "fragment"),
    [
        ('id = "ZZ-530102-001"', 'id = "ZZ 530102"', 2, "kiosk.id", "A-Z a-z 0-9 - _"),
        ('centre_id = "530102-01"', 'centre_id = ""', 3, "kiosk.centre_id", "must not be empty"),
        ("fullscreen = true", 'fullscreen = true\ntimezone = "Mars/Olympus"', 6,
         "kiosk.timezone", "unknown time zone 'Mars/Olympus'"),
        ('url = "http://127.0.0.1:8765"', 'url = "ftp://host"', 8, "backoffice.url",
         "http:// or https://"),
        ('url = "http://127.0.0.1:8765"', 'url = "http://host:99999"', 8, "backoffice.url",
         "invalid port"),
        ('url = "http://127.0.0.1:8765"', 'url = "https://h"\nembedded = true', 9,
         "backoffice.embedded", "plain http"),
        ('url = "http://127.0.0.1:8765"', 'url = "http://h"\ntimeout_s = 0', 9,
         "backoffice.timeout_s", "must be greater than 0 (got 0)"),
        ('fullscreen = true', 'fullscreen = true\ndata_dir = 7', 6, "kiosk.data_dir",
         "expected a string (got 7)"),
    ],
)
def test_value_errors(tmp_path: Path, old: str, new: str, line: int, key: str,
                      fragment: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: {key}: ")
    assert fragment in message


def test_every_error_is_reported_one_per_line_in_file_order(tmp_path: Path) -> None:
    text = (VALID.replace('"landscape"', '"sideways"')
            .replace("idle_s = 60", "idle_s = 1")
            .replace('driver = "sim"\noutput_dir', "output_dir"))
    path = write(tmp_path, text)
    lines = error_of(path).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:4", "kiosk.orientation"],
        [f"{path}:11", "timeouts.idle_s"],
        [f"{path}:13", "devices.receipt_printer.driver"],
    ]


def test_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("idle_s = 60", "idle_s = "))
    assert error_of(path) == f"{path}:11:10: TOML syntax error: Invalid value"


def test_syntax_error_at_end_of_file(tmp_path: Path) -> None:
    text = VALID + 'note = "unterminated\n'
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:")
    assert "TOML syntax error" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = error_of(path)
    assert message == f"{path}: cannot read the configuration file: No such file or directory"
    assert "\n" not in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = error_of(tmp_path)
    assert message.startswith(f"{tmp_path}: cannot read the configuration file")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_bytes(VALID.encode() + "# 注释\n".encode("gbk"))
    assert error_of(path).startswith(f"{path}:19: not UTF-8 text")


# --- the locator on harder TOML -------------------------------------------------------------


def test_dotted_key_at_top_level(tmp_path: Path) -> None:
    text = 'kiosk.id = "A"\nkiosk.centre_id = "C"\nkiosk.orientation = "up"\n' \
           'backoffice.url = "http://h"\n'
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:3: kiosk.orientation: must be one of")


def test_inline_table_falls_back_to_its_key(tmp_path: Path) -> None:
    text = '\n\nkiosk = { id = "A", centre_id = "C", orientation = "up" }\n' \
           '[backoffice]\nurl = "http://h"\n'
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:3: kiosk.orientation: must be one of")


def test_multiline_string_content_is_not_taken_for_keys(tmp_path: Path) -> None:
    text = VALID.replace("[devices.camera]", '[devices.camera]\nnote = """\nenabled = 3\n"""')
    text += "enabled = 4\n"
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{len(text.splitlines())}: devices.camera.enabled: expected true or false (got 4)"
    )


def test_quoted_keys_and_spaced_headers(tmp_path: Path) -> None:
    text = VALID + '\n[ devices . "barcode" ]  # scanner\n"driver" = 5\n'
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line_of(text, 'driver' + chr(34) + ' = 5')}: devices.barcode.driver: "
        "expected a string (got 5)"
    )


# --- errors found after parsing ---------------------------------------------------------


def test_error_at_points_at_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    config = load_config(path)
    error = config.error_at("devices.camera.driver", "unknown driver 'sim2' (available: sim)")
    assert isinstance(error, ConfigError)
    assert str(error) == f"{path}:18: devices.camera.driver: unknown driver 'sim2' (available: sim)"


def test_error_at_unwritten_key_falls_back_to_table(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    config = load_config(path)
    assert str(config.error_at("devices.camera.width", "required by opencv")) == (
        f"{path}:17: devices.camera.width: required by opencv"
    )
