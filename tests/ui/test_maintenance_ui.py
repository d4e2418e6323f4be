"""Maintenance mode in the real Kivy app, offscreen, with simulated devices and the real back
office: the hidden gesture and the PIN open the menu (a citizen's session ends first), the
menu shows each device's state, a self-test prints a real test page, a document kept for staff
is listed, reprinted on the A4 printer or discarded, out of service is kept, and exit or
idleness return to the attract screen."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kiosk.config import hash_pin
from tests.ui.harness import UiDriver

pytestmark = pytest.mark.ui

PIN = "135790"

CONFIG = """
[kiosk]
id = "ZZ-MAINT-001"
centre_id = "{centre}"
centre_name = "测试市测试区政务服务中心"
fullscreen = false
data_dir = "{data}"
[backoffice]
url = "{url}"
timeout_s = 3
[timeouts]
print_s = 10
[maintenance]
pin_hash = "{pin_hash}"
[devices.barcode]
driver = "sim"
[devices.receipt_printer]
driver = "sim"
output_dir = "{prints}"
auto_take_s = 600
print_delay_s = 0.05
[devices.document_printer]
driver = "sim"
output_dir = "{prints}/a4"
[devices.id_card]
driver = "sim"
read_delay_s = 0.05
"""


@pytest.fixture(scope="module")
def ui(backoffice_server, tmp_path_factory):
    from kiosk.app import build_kiosk
    from kiosk.config import load_config

    tmp = tmp_path_factory.mktemp("maintenance")
    path = tmp / "kiosk.toml"
    path.write_text(CONFIG.format(centre=backoffice_server.centre_id, data=tmp / "data",
                                  url=backoffice_server.url, prints=tmp / "prints",
                                  pin_hash=hash_pin(PIN, log2_n=10)), encoding="utf-8")
    kiosk = build_kiosk(load_config(path))
    driver = UiDriver(kiosk)  # first: it sizes the window before Kivy opens it
    from kiosk.ui.maintenance import MaintenanceController

    driver.prints = tmp / "prints"
    driver.restarts = []
    # The citizens' controller owns one once it is wired in; until then the test adds it,
    # as that controller will: five lines.
    maintenance = getattr(driver.controller, "maintenance", None)
    if maintenance is None:
        maintenance = MaintenanceController(kiosk, driver.app.manager,
                                            on_exit=driver.controller.show_attract,
                                            restart=lambda: driver.restarts.append(1))
        maintenance.attach()
    # Offscreen frames on a busy machine are slow: the taps' timing is TapGesture's own test.
    maintenance.attach().gesture.within_s = 3600
    driver.maintenance = maintenance
    yield driver
    maintenance.shutdown()
    driver.close()
    kiosk.close()


@pytest.fixture
def fresh(ui):
    if ui.maintenance.active:
        ui.maintenance.flow.close("exit")
    if ui.kiosk.sessions.current is not None:
        ui.controller.end_session()
    ui.kiosk.devices["document_printer"].go_online()
    ui.wait_screen("attract")
    return ui


def gesture(ui: UiDriver, taps: int = 5) -> None:
    from kivy.core.window import Window

    for _ in range(taps):
        ui.tap_at(20, Window.height - 20)  # the top-left corner, over the centre's name


def enter_pin(ui: UiDriver, pin: str) -> None:
    ui.wait_screen("maint_pin")
    for digit in pin:
        ui.tap(f"pin:{digit}")
    assert ui.find("pin_dots").text.count("●") == len(pin)
    assert pin not in ui.text()  # shielded: dots only
    ui.tap("pin:ok")


def test_gesture_and_pin_open_the_menu_with_device_states_and_exit_to_attract(fresh):
    ui = fresh
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    assert ui.kiosk.sessions.current is not None
    gesture(ui, 4)
    assert ui.screen == "home"  # four taps are not the gesture
    gesture(ui, 1)
    ui.wait_screen("maint_pin")
    assert ui.kiosk.sessions.current is None  # the citizen's session ended first
    ui.kiosk.devices["document_printer"].go_offline()
    enter_pin(ui, PIN)
    ui.wait_screen("maint_menu")
    assert "维护模式" in ui.text() and "ZZ-MAINT-001" in ui.text()
    ui.wait_for(lambda: "离线" in ui.find("state:document_printer").text,
                "the A4 printer shown offline")
    assert "正常" in ui.find("state:receipt_printer").text
    assert {"device:barcode", "device:id_card", "test:receipt_printer"} <= set(ui.ids())

    ui.tap("test:receipt_printer")
    ui.wait_for(lambda: "result:receipt_printer" in ui.ids(), "the self-test's result")
    assert "自检页已打印" in ui.find("result:receipt_printer").text
    printed = sorted(ui.prints.glob("*-test_page.txt"))
    assert printed and "ZZ-MAINT-001" in printed[-1].read_text(encoding="utf-8")

    ui.tap("panel:counters")
    ui.wait_for(lambda: "打印页数" in ui.text(), "the counters")
    ui.tap("panel:network")
    ui.wait_for(lambda: "后台可连接" in ui.text() and "是" in ui.texts(),
                "the back office reachable")
    ui.tap("maint:exit")
    ui.wait_screen("attract")
    assert not ui.maintenance.active


def test_kept_documents_are_listed_reprinted_and_discarded(fresh):
    from devices.printer import Field, Heading, Media, PrintDocument

    ui = fresh
    store = ui.kiosk.held_prints
    tracking = "ZZ-UI-000777"  # in the document and its meta: never on the panel
    certificate = PrintDocument(kind="certificate", job_key="result:ZZ-UI:s-ui", title="户籍证明",
                                media=Media.A4, blocks=(Heading("户籍证明"),
                                                        Field("办件编号", tracking)),
                                meta={"tracking_number": tracking})
    slip = PrintDocument(kind="progress_query", job_key="progress:s-ui:1", title="办件进度",
                         blocks=(Heading("办件进度"),), meta={"tracking_number": tracking})
    kept = store.hold(certificate, reason="paperJammed", session_id="s-ui")
    other = store.hold(slip, reason="paperOut", session_id="s-ui2")
    gesture(ui)
    enter_pin(ui, PIN)
    ui.wait_screen("maint_menu")
    ui.tap("panel:held")
    ui.wait_for(lambda: f"held:reprint:{kept}" in ui.ids(), "the kept certificate listed")
    text = ui.text()
    assert "户籍证明" in text and "证照" in text and kept in text and "paperJammed" in text
    assert "办件进度" in text and other in text
    assert tracking not in text

    printer = ui.kiosk.devices["document_printer"]
    printer.jam()
    try:
        ui.tap(f"held:reprint:{kept}")
        ui.wait_for(lambda: f"held:result:{kept}" in ui.ids(), "the failed reprint")
        assert "paperJammed" in ui.find(f"held:result:{kept}").text
        assert f"held:reprint:{kept}" in ui.ids()  # still kept, for another try
    finally:
        printer.clear_jam()
    ui.wait_for(lambda: not ui.find(f"held:reprint:{kept}").disabled, "the button back")
    ui.tap(f"held:reprint:{kept}")
    ui.wait_for(lambda: f"held:done:{kept}" in ui.ids(), "the reprint's result")
    assert "已补打" in ui.find(f"held:done:{kept}").text
    assert "窗口发证" in ui.find(f"held:done:{kept}").text  # collection is staff's, at the desk
    assert f"held:{kept}" not in ui.ids()
    printed = sorted((ui.prints / "a4").glob("*-certificate.txt"))
    assert printed and tracking in printed[-1].read_text(encoding="utf-8")
    assert [h.reference for h in store.list()] == [other]

    ui.tap(f"held:discard:{other}")  # the first tap only asks again
    ui.wait_for(lambda: "再点一次" in ui.find(f"held:discard:{other}").label.text,
                "the discard asked again")
    assert len(store.list()) == 1
    ui.tap(f"held:discard:{other}")
    ui.wait_for(lambda: f"held:done:{other}" in ui.ids(), "the discard done")
    assert store.list() == [] and "held:reprint:" not in " ".join(ui.ids())
    ui.tap("maint:exit")
    ui.wait_screen("attract")


def test_wrong_pin_says_how_many_tries_are_left(fresh):
    ui = fresh
    gesture(ui)
    enter_pin(ui, "000000")
    ui.wait_for(lambda: "再错 4 次将锁定" in ui.text(), "the tries left")
    assert ui.screen == "maint_pin"
    ui.tap("maint:cancel")
    ui.wait_screen("attract")


def test_out_of_service_is_kept_and_idle_maintenance_returns_to_attract(fresh):
    ui = fresh
    gesture(ui)
    enter_pin(ui, PIN)
    ui.wait_screen("maint_menu")
    ui.tap("panel:service")
    ui.wait_for(lambda: "maint:out_of_service:0" in ui.ids(), "the service panel")
    ui.tap("maint:out_of_service:0")
    ui.wait_for(lambda: ui.maintenance.out_of_service_message() == "Under maintenance",
                "out of service stored")
    ui.wait_for(lambda: "maint:in_service" in ui.ids(), "the way back into service")
    assert "暂停服务：设备维护中" in ui.text()
    ui.tap("maint:in_service")
    ui.wait_for(lambda: ui.maintenance.out_of_service_message() is None, "back in service")
    flow = ui.maintenance.flow
    flow.settings = replace(flow.settings, idle_s=0.5)
    try:
        ui.wait_screen("attract", timeout=10)
    finally:
        flow.settings = replace(flow.settings, idle_s=120)
    assert not ui.maintenance.active


def test_tap_gesture_counts_five_taps_within_three_seconds():
    from kiosk.ui.maintenance import TapGesture

    now = [0.0]
    gesture = TapGesture(clock=lambda: now[0])
    assert not any(gesture.tap() for _ in range(4))
    answers = []
    for t in (3.5, 3.6, 3.7, 3.8, 3.9):  # the earlier taps are too old to count with these
        now[0] = t
        answers.append(gesture.tap())
    assert answers == [False, False, False, False, True]
    assert not gesture.tap()  # a fresh count after the gesture
