"""The real Kivy app, offscreen, against the real back office over loopback HTTP, with
simulated devices: taps through each check-in journey and saves a screenshot of every screen
it visits (docs/screens/, linked from the README)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ui.harness import UiDriver

pytestmark = pytest.mark.ui

CONFIG = """
[kiosk]
id = "ZZ-TEST-001"
centre_id = "{centre}"
centre_name = "测试市测试区政务服务中心"
fullscreen = false
data_dir = "{data}"
[backoffice]
url = "{url}"
timeout_s = 3
[timeouts]
idle_s = 60
countdown_s = 15
scan_s = 30
print_s = 10
take_s = 30
[devices.barcode]
driver = "sim"
[devices.receipt_printer]
driver = "sim"
output_dir = "{prints}"
auto_take_s = 600
print_delay_s = 0.1
[devices.id_card]
driver = "sim"
read_delay_s = 0.1
[devices.smart_card]
driver = "sim"
read_delay_s = 0.1
[devices.camera]
driver = "sim"
width = 1280
height = 720
[devices.document_printer]
driver = "sim"
output_dir = "{prints}/a4"
"""


BLANK_SCENE = np.full((480, 640, 3), 200, np.uint8)


@pytest.fixture(scope="module")
def ui(backoffice_server, tmp_path_factory):
    from kiosk.app import build_kiosk
    from kiosk.config import load_config

    tmp = tmp_path_factory.mktemp("kiosk")
    path = tmp / "kiosk.toml"
    path.write_text(CONFIG.format(centre=backoffice_server.centre_id, data=tmp / "data",
                                  url=backoffice_server.url, prints=tmp / "prints"),
                    encoding="utf-8")
    kiosk = build_kiosk(load_config(path))
    driver = UiDriver(kiosk)
    driver.prints = tmp / "prints"
    yield driver
    driver.close()
    kiosk.close()


@pytest.fixture
def fresh(ui):
    """Every test starts on the attract screen with no session and working devices."""
    if ui.kiosk.sessions.current is not None:
        ui.controller.end_session()
    ui.kiosk.devices["receipt_printer"].refill()
    for reader in ("id_card", "smart_card"):
        ui.kiosk.devices[reader].remove()
    ui.kiosk.devices["camera"].show_image(BLANK_SCENE)
    ui.kiosk.i18n.set_language("zh_CN")
    ui.wait_screen("attract")
    return ui


def start_checkin(ui: UiDriver) -> None:
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("service:checkin")
    ui.wait_screen("scan")


def test_check_in_journey(fresh, backoffice_server):
    ui = fresh
    assert "24小时自助服务" in ui.text()
    ui.screenshot("01-attract")
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    # Services not built yet are shown, greyed, with their reason — not hidden, not fake.
    assert ui.find("service:take_number").disabled and not ui.find("service:checkin").disabled
    assert "本机暂未开通" in ui.text()
    ui.screenshot("02-home")
    ui.tap("service:checkin")
    ui.wait_screen("scan")
    ui.screenshot("03-scan")
    code = backoffice_server.fresh_code()
    ui.kiosk.devices["barcode"].show(code)
    ui.wait_screen("confirm")
    assert "测*****" in ui.text()  # the name, masked
    assert backoffice_server.applicant_name not in ui.text()
    ui.screenshot("04-confirm")
    ui.tap("confirm")
    ui.wait_screen("ticket")
    ui.screenshot("05-ticket")
    number = ui.find("ticket_number").text
    assert number[0] in "ABC" and number[1:].isdigit()
    printed = sorted(ui.prints.glob("*-queue_ticket.txt"))[-1].read_text(encoding="utf-8")
    assert number in printed and "测试市测试区政务服务中心" in printed
    ui.kiosk.devices["receipt_printer"].take()
    ui.wait_screen("attract")
    assert ui.kiosk.sessions.current is None
    assert ui.kiosk.used_codes.is_used(f"ID-{code}")


@pytest.mark.parametrize("code_key, shot, words", [
    ("unknown", "06-problem-unknown", "未找到预约"),
    ("tomorrow", "07-problem-other-day", "不是今天"),
    ("other_centre", "08-problem-other-centre", "其他服务中心"),
    ("checked_in", "09-problem-already-used", "已签到"),
    ("garbage", "10-problem-not-a-code", "不是预约码"),
])
def test_each_bad_code_has_its_own_screen_and_a_way_back(fresh, backoffice_server, code_key,
                                                         shot, words):
    ui = fresh
    start_checkin(ui)
    payload = {"unknown": "T-NO-SUCH-CODE", "garbage": "https://pay.example/qr?x=1"}.get(
        code_key) or backoffice_server.seed_codes[code_key]
    ui.kiosk.devices["barcode"].show(payload)
    ui.wait_screen("problem")
    assert words in ui.text()
    ui.screenshot(shot)
    ui.tap("home")
    ui.wait_screen("home")


def test_paper_runs_out_after_check_in_the_number_stays_on_screen(fresh, backoffice_server):
    ui = fresh
    start_checkin(ui)
    ui.kiosk.devices["barcode"].show(backoffice_server.fresh_code())
    ui.wait_screen("confirm")
    ui.kiosk.devices["receipt_printer"].run_out_after(0)
    ui.tap("confirm")
    ui.wait_screen("problem")
    assert "打印机缺纸" in ui.text()
    assert set(ui.ids()) >= {"retry_print", "call_staff", "home"}
    ui.screenshot("11-problem-paper-out")
    ui.tap("retry_print")
    ui.wait_for(lambda: "retry_print" not in ui.ids(), "reprint offered once only")
    # Failed twice: kept for staff, who reprint it from maintenance mode by this reference.
    [held] = ui.kiosk.held_prints.list()
    assert held.kind == "queue_ticket" and held.reference in ui.text()
    ui.tap("home")
    ui.wait_screen("home")
    # No paper: check-in is greyed out with the reason, other services are unaffected.
    assert ui.find("service:checkin").disabled
    assert "打印机缺纸" in ui.text()
    ui.screenshot("12-home-paper-out")


def test_back_office_unreachable(fresh, backoffice_server):
    from kiosk.client import HttpBackOffice
    from kiosk.launcher import free_port

    ui = fresh
    working = ui.kiosk.backoffice
    ui.kiosk.backoffice = HttpBackOffice(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    try:
        start_checkin(ui)
        ui.kiosk.devices["barcode"].show(backoffice_server.fresh_code())
        ui.wait_screen("problem")
        assert "无法连接" in ui.text() and "retry" in ui.ids()
        ui.screenshot("13-problem-backoffice-down")
        ui.kiosk.backoffice = working
        ui.controller.flow.backoffice = working  # the network is back
        ui.tap("retry")
        ui.wait_screen("confirm")
    finally:
        ui.kiosk.backoffice = working


def test_inactivity_countdown_ends_the_session(fresh):
    ui = fresh
    ui.kiosk.sessions.idle_s, ui.kiosk.sessions.countdown_s = 0.5, 3
    try:
        ui.tap_at(960, 500)
        ui.wait_screen("home")
        ui.wait_for(lambda: "秒后返回首页" in ui.text(), "the visible countdown")
        ui.screenshot("14-countdown")
        ui.wait_screen("attract", timeout=10)
        assert ui.kiosk.sessions.current is None
    finally:
        ui.kiosk.sessions.idle_s, ui.kiosk.sessions.countdown_s = 60, 15


def test_language_switch_and_back_to_chinese_at_session_end(fresh):
    ui = fresh
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("language")
    ui.wait_for(lambda: "Choose a service" in ui.text(), "English texts")
    ui.screenshot("15-home-english")
    ui.tap("finish")
    ui.wait_screen("attract")
    assert "24小时自助服务" in ui.text()


def test_call_staff_reaches_the_back_office(fresh, backoffice_server):
    import httpx

    ui = fresh
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    session_id = ui.kiosk.sessions.current.id
    ui.tap("call_staff")
    ui.wait_screen("message")
    assert "已通知工作人员" in ui.text()
    ui.screenshot("16-staff-called")
    open_requests = httpx.get(f"{backoffice_server.api}/help-requests",
                              params={"centre_id": backoffice_server.centre_id}).json()
    assert session_id in repr(open_requests)
    ui.tap("ok")
    ui.wait_screen("home")


def test_portrait_screen(fresh):
    """A portrait-mounted kiosk (1080x1920) lays the same screens out in two columns."""
    from kivy.core.window import Window

    ui = fresh
    try:
        Window.size = (1080, 1920)
        ui.pump(0.3)
        ui.tap_at(540, 900)
        ui.wait_screen("home")
        ui.controller.show_home()  # re-layout for the new shape
        ui.pump(0.2)
        first, second, third = (ui.find(f"service:{s}") for s in ("checkin", "take_number",
                                                                  "guide"))
        assert first.y == second.y and third.y < first.y  # two tiles a row
        ui.screenshot("17-home-portrait")
    finally:
        Window.size = (1920, 1080)
        ui.pump(0.3)


def _resident_id(number: str):
    from datetime import date

    from devices.identity import Authenticity, DocumentType, IdentityDocument

    return IdentityDocument(DocumentType.RESIDENT_ID, number, "测试申请人甲", "男", "CHN",
                            date(1990, 3, 7), "北京市公安局东城分局", date(2020, 1, 1), None,
                            address="北京市东城区测试胡同1号", ethnicity="汉",
                            authenticity=Authenticity.VERIFIED)


def start_query(ui: UiDriver) -> None:
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("service:query")
    ui.wait_screen("present")


def test_progress_query_with_the_id_card(fresh, backoffice_server):
    ui = fresh
    start_query(ui)
    assert "请放置身份证" in ui.text() or "身份证" in ui.text()
    assert "use_passport" in ui.ids()
    ui.screenshot("20-present-id-card")
    ui.kiosk.devices["id_card"].insert(_resident_id(backoffice_server.applicant_id))
    ui.wait_screen("identity")
    shown = ui.text()
    assert "1101**********4514" in shown
    assert backoffice_server.applicant_id not in shown and "测试申请人甲" not in shown
    assert "长期" in shown  # no expiry
    assert "无照片" in shown  # the SAM photo is not decoded here, and nothing stands in for it
    ui.screenshot("21-identity")
    ui.tap("continue")
    ui.wait_screen("applications")
    listed = ui.text()
    assert "T-APP-NEW" in listed and "T-APP-OLD" in listed
    assert "T-APP-PASSPORT" not in listed
    assert "待领取" in listed
    ui.screenshot("22-applications")
    ui.tap("finish")
    ui.wait_screen("attract")
    # Session end: the card record is gone from the flow and the screen.
    assert "1101**********4514" not in ui.text()


def _type(ui: UiDriver, field: str, text: str) -> None:
    ui.tap(f"field:{field}")
    for ch in text:
        ui.tap(f"key:{ch}")


def test_passport_wrong_mrz_then_right(fresh, backoffice_server):
    from datetime import date

    from devices.identity import Authenticity, DocumentType, IdentityDocument, MrzAccess

    ui = fresh
    start_query(ui)
    ui.tap("use_passport")
    ui.wait_screen("mrz")
    _type(ui, "document_number", "L898902C3")
    _type(ui, "birth_date", "740812")
    _type(ui, "expiry_date", "350415")
    ui.screenshot("23-mrz-entry")
    passport = IdentityDocument(DocumentType.PASSPORT, "L898902C3", "ERIKSSON ANNA MARIA", "F",
                                "UTO", date(1974, 8, 12), "UTO", None, date(2034, 4, 15),
                                authenticity=Authenticity.NOT_VERIFIED)
    ui.kiosk.devices["smart_card"].insert(passport, MrzAccess("L898902C3", "740812", "340415"))
    ui.tap("submit_mrz")
    ui.wait_screen("problem")
    assert "芯片" in ui.text()
    ui.screenshot("24-problem-access-denied")
    ui.tap("enter_mrz_again")
    ui.wait_screen("mrz")
    ui.tap("field:expiry_date")
    for _ in range(6):
        ui.tap("key:backspace")
    _type(ui, "expiry_date", "340415")
    ui.tap("submit_mrz")
    ui.wait_screen("identity")
    assert "L898*02C3" in ui.text()
    assert "L898902C3" not in ui.text()
    ui.tap("continue")
    ui.wait_screen("applications")
    assert "没有找到" in ui.text()


def test_passport_mrz_read_by_the_camera(fresh, backoffice_server):
    """The data page held under the camera: the MRZ is read by OCR (Tesseract, for real) from
    the simulated camera's frames, and the chip opens without typing."""
    from devices.emrtd.mrz import Mrz
    from devices.identity import MrzAccess
    from devices.sim.identity import load_demo_card
    from devices.sim.mrz_scenes import mrz_scene

    ui = fresh
    passport, access = load_demo_card("assets/sim/demo-passport.json")
    assert access == MrzAccess("L898902C3", "740812", "340415")
    page = mrz_scene(Mrz(format="TD3", document_code="P", issuing_state="UTO",
                         surname="ERIKSSON", given_names="ANNA MARIA",
                         document_number="L898902C3", nationality="UTO", birth_date="740812",
                         sex="F", expiry_date="340415", optional_data="ZE184226B"), seed=2)
    start_query(ui)
    ui.tap("use_passport")
    ui.wait_screen("mrz")
    ui.kiosk.devices["smart_card"].insert(passport, access)
    ui.wait_for(lambda: ui.controller.screens["mrz"]._preview is not None, "camera preview")
    ui.wait_for(lambda: ui.controller.screens["mrz"]._preview.frames_shown > 0, "a frame")
    ui.screenshot("25-mrz-camera")
    ui.kiosk.devices["camera"].show_image(page.image)
    ui.wait_screen("identity", timeout=30)
    assert "L898*02C3" in ui.text()
    # The picture of the data page does not linger on the screen that was left.
    ui.wait_for(lambda: ui.controller.screens["mrz"]._preview is None, "preview stopped")


def _phone(ui: UiDriver, digits: str) -> None:
    for digit in digits:
        ui.tap(f"key:{digit}")


def test_application_journey(fresh, backoffice_server):
    """自助申报 from the home screen to the receipt: notice, ID card, two documents
    photographed by the simulated camera, one material brought later, phone, 告知承诺."""
    ui = fresh
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("service:apply")
    ui.wait_screen("items")
    ui.screenshot("30-apply-items")
    ui.tap("item:HJ001")
    ui.wait_screen("notice")
    notice = ui.text()
    assert "户籍证明开具" in notice and "居民户口簿" in notice and "容缺后补" in notice
    ui.screenshot("31-apply-notice")
    ui.tap("continue")
    ui.wait_screen("present")
    ui.kiosk.devices["id_card"].insert(_resident_id(backoffice_server.applicant_id))
    ui.wait_screen("identity")
    ui.tap("continue")
    ui.wait_screen("materials")
    assert ui.find("continue").disabled  # required materials missing
    ui.screenshot("32-apply-materials")
    for code, kind in (("ID", "id1"), ("HKB", "a4")):
        ui.kiosk.devices["camera"].show_document("well_placed", kind, seed=3)
        ui.tap(f"capture:{code}")
        ui.wait_screen("capture")
        ui.wait_for(lambda: "finish" in ui.ids(), "the page to be taken", timeout=30)
        if code == "HKB":
            ui.screenshot("33-apply-capture-review")
        ui.tap("finish")
        ui.wait_screen("materials")
    ui.tap("defer:USE")
    ui.wait_for(lambda: not ui.find("continue").disabled, "the checklist to be complete")
    assert "undo:USE" in ui.ids()
    ui.tap("continue")
    ui.wait_screen("phone")
    _phone(ui, "1234")
    ui.tap("submit_phone")
    ui.wait_for(lambda: "11位" in ui.text(), "the phone number to be refused")
    for _ in range(4):
        ui.tap("key:del")
    _phone(ui, "13800138000")
    ui.screenshot("34-apply-phone")
    ui.tap("submit_phone")
    ui.wait_screen("commitment")
    assert "承诺" in ui.text()
    ui.screenshot("35-apply-commitment")
    ui.tap("commit")
    ui.wait_screen("receipt", timeout=30)
    number = ui.find("tracking_number").text
    shown = ui.text()
    assert "服务中心已收到" in shown and "用途说明" in shown
    assert "13800138000" not in shown and backoffice_server.applicant_id not in shown
    ui.screenshot("36-apply-receipt")
    printed = sorted(ui.prints.glob("*-application_receipt.txt"))[-1].read_text(
        encoding="utf-8")
    assert number in printed and "1101**********4514" in printed and "用途说明" in printed
    ui.tap("finish")
    ui.wait_screen("attract")


def test_service_guide_prints_the_one_time_notice(fresh):
    ui = fresh
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("service:guide")
    ui.wait_screen("items")
    ui.tap("item:HJ001")
    ui.wait_screen("notice")
    assert "continue" not in ui.ids()  # the guide informs; applying is the other service
    ui.tap("print_notice")
    ui.wait_for(lambda: any((ui.prints / "a4").glob("*-one_time_notice.txt")),
                "the notice to be printed")
    printed = sorted((ui.prints / "a4").glob("*-one_time_notice.txt"))[-1].read_text(
        encoding="utf-8")
    assert "一次性告知单" in printed and "户籍证明开具" in printed and "可容缺后补" in printed
    ui.wait_screen("notice")
    ui.tap("back")
    ui.wait_screen("items")
    ui.tap("home")
    ui.wait_screen("home")


def test_certificate_print_then_rating(fresh, backoffice_server):
    """自助出件: staff marked a result ready; the citizen prints it with the ID card, takes
    it, and rates the service (不满意 needs a reason)."""
    from tests.test_certificate_flow import id_card, ready_for

    ui = fresh
    person, (number,) = ready_for(backoffice_server, 1)
    ui.tap_at(960, 500)
    ui.wait_screen("home")
    ui.tap("service:certificate")
    ui.wait_screen("present")
    ui.kiosk.devices["id_card"].insert(id_card(person))
    ui.wait_screen("identity")
    ui.tap("continue")
    ui.wait_screen("results")
    ui.screenshot("40-certificate-ready")
    ui.tap(f"print:{number}")
    ui.wait_screen("take", timeout=30)
    assert "请取走证照" in ui.text()
    ui.screenshot("41-certificate-take")
    printed = sorted((ui.prints / "a4").glob("*.pdf"))[-1].read_bytes()
    assert printed.startswith(b"%PDF-")
    ui.kiosk.devices["document_printer"].take()
    ui.wait_for(lambda: ui.screen == "results" and "rate" in ui.ids(), "the printed list")
    assert "已打印" in ui.text()
    ui.tap("rate")
    ui.wait_screen("rating")
    ui.tap("level:2")
    ui.wait_for(lambda: any(i.startswith("reason:") for i in ui.ids()), "the reasons")
    ui.tap("submit_rating")
    ui.wait_for(lambda: "请至少选择一项原因" in ui.text(), "a reason to be asked for")
    reason = next(i for i in ui.ids() if i.startswith("reason:"))
    ui.tap(reason)
    ui.screenshot("42-rating-reasons")
    ui.tap("submit_rating")
    ui.wait_for(lambda: "感谢您的评价" in ui.text(), "the thanks")
    import httpx

    page = httpx.get(f"{backoffice_server.url}/staff/ratings", timeout=5, trust_env=False)
    assert page.status_code == 200 and number in page.text  # tied to the transaction
    ui.tap("ok")
    ui.wait_screen("attract")
