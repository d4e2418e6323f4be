"""The camera as the check-in scanner, end to end: a recording played by the ``replay`` camera
driver, QR decoding on the camera's newest frames, the signed code verified offline, check-in
at the real back office over loopback, the ticket printed. Built by the composition root from a
config file, as a tester's kiosk would be."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from devices.qr.camera_reader import CameraQrReader
from devices.sim.qr_scenes import no_code_scene, qr_scene
from flows.checkin import Step
from kiosk.app import build_kiosk
from kiosk.config import ConfigError, load_config
from tests.test_checkin_backoffice import DEMO_PUBLIC_KEY, during_the_seed_slot, signed_code

CONFIG = """
[kiosk]
id = "ZZ-CAM-001"
centre_id = "{centre}"
fullscreen = false
data_dir = "{data}"
[backoffice]
url = "{url}"
timeout_s = 3
[timeouts]
scan_s = 20
print_s = 5
take_s = 3
[appointment_codes]
keys = {{ demo = "{key}" }}
[devices.barcode]
driver = "camera"
[devices.camera]
driver = "replay"
path = "{frames}"
fps = 15
[devices.receipt_printer]
driver = "sim"
output_dir = "{prints}"
auto_take_s = 0.1
print_delay_s = 0
"""


def write_recording(folder, payload: str) -> None:
    """A few empty desk frames, then the citizen's phone with the code, tilted and blurred."""
    rng = np.random.default_rng(7)
    folder.mkdir()
    frames = [no_code_scene(rng) for _ in range(4)]
    frames += [qr_scene(payload, "perspective", rng) for _ in range(6)]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)


def config_file(tmp_path, backoffice_server, **overrides: str) -> object:
    text = CONFIG.format(centre=backoffice_server.centre_id, data=tmp_path / "data",
                         url=backoffice_server.url, key=DEMO_PUBLIC_KEY,
                         frames=tmp_path / "frames", prints=tmp_path / "prints")
    for old, new in overrides.items():
        text = text.replace(old, new)
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_recorded_code_checks_the_citizen_in(backoffice_server, tmp_path):
    code = signed_code(backoffice_server, backoffice_server.fresh_code())
    write_recording(tmp_path / "frames", code)
    kiosk = build_kiosk(load_config(config_file(tmp_path, backoffice_server)))
    try:
        scanner = kiosk.devices["barcode"]
        assert isinstance(scanner, CameraQrReader)
        assert scanner.camera is kiosk.devices["camera"]
        assert kiosk.scanner_camera() is kiosk.devices["camera"]  # the scan screen shows it
        session = kiosk.sessions.start()
        flow = kiosk.checkin_flow(session)
        flow.now = during_the_seed_slot
        flow.scan()
        assert flow.view.step is Step.CONFIRM, flow.view
        flow.confirm()
        assert flow.view.step is Step.DONE, flow.view
        assert flow.view.ticket is not None and flow.view.ticket.number
        assert list((tmp_path / "prints").glob("*.pdf"))  # the ticket was printed
    finally:
        kiosk.close()


def test_the_camera_reader_needs_a_camera(backoffice_server, tmp_path):
    (tmp_path / "frames").mkdir()
    path = config_file(tmp_path, backoffice_server, **{
        '[devices.camera]\ndriver = "replay"': '[devices.camera]\nenabled = false\ndriver = "replay"'})
    with pytest.raises(ConfigError, match="devices.barcode.driver: the 'camera' driver needs "
                                          "devices.camera"):
        build_kiosk(load_config(path))
