from __future__ import annotations

from devices.contract import DeviceClass, DeviceState, DeviceStatus, PaperState
from kiosk.services import AppState, ServiceId, app_state, evaluate


def status(name: str, state: DeviceState = DeviceState.ONLINE, **kw) -> DeviceStatus:
    return DeviceStatus(name, DeviceClass.RECEIPT_PRINTER, state, **kw)


ALL = ["barcode", "receipt_printer", "id_card", "smart_card", "camera", "document_printer"]


def by_id(statuses):
    return {a.service.id: a for a in evaluate(statuses)}


def test_everything_up_offers_the_built_services_and_names_the_others():
    result = by_id({n: status(n) for n in ALL})
    assert result[ServiceId.CHECKIN].available and result[ServiceId.APPLY].available
    assert not result[ServiceId.TAKE_NUMBER].available
    assert result[ServiceId.TAKE_NUMBER].reason == "Not yet offered at this kiosk"


def test_paper_out_greys_out_only_what_prints_with_its_reason():
    statuses = {n: status(n) for n in ALL}
    statuses["receipt_printer"] = status("receipt_printer", paper=PaperState.OUT)
    result = by_id(statuses)
    checkin = result[ServiceId.CHECKIN]
    assert not checkin.available
    assert (checkin.reason, checkin.device) == ("{device} out of paper", "ticket printer")
    # The progress query prints nothing: it stays, so the kiosk is still in service.
    assert result[ServiceId.QUERY].available
    assert app_state(list(result.values()), False) is AppState.AVAILABLE
    statuses["id_card"] = status("id_card", DeviceState.NO_DEVICE)
    statuses["smart_card"] = status("smart_card", DeviceState.HARDWARE_ERROR)
    result = by_id(statuses)
    assert (result[ServiceId.QUERY].reason, result[ServiceId.QUERY].device) == (
        "{device} disconnected", "ID card reader")
    assert (result[ServiceId.APPLY].reason, result[ServiceId.APPLY].device) == (
        "{device} disconnected", "ID card reader")
    # The service guide and 好差评 need no device: the kiosk stays in service for them.
    assert result[ServiceId.GUIDE].available and result[ServiceId.RATING].available
    assert app_state(list(result.values()), False) is AppState.AVAILABLE
    del statuses["camera"]
    assert by_id(statuses)[ServiceId.APPLY].reason == "{device} disconnected"


def test_the_kiosk_is_out_of_service_only_when_nothing_at_all_can_be_offered():
    nothing = [a for a in evaluate({})
               if a.service.id not in (ServiceId.GUIDE, ServiceId.RATING)]
    assert app_state(nothing, False) is AppState.UNAVAILABLE
    assert app_state(evaluate({}), False) is AppState.AVAILABLE


def test_query_needs_either_identity_reader():
    statuses = {n: status(n) for n in ALL}
    statuses["id_card"] = status("id_card", DeviceState.OFFLINE)
    assert by_id(statuses)[ServiceId.QUERY].available  # the passport reader is enough


def test_missing_scanner_and_unplugged_printer():
    statuses = {"receipt_printer": status("receipt_printer", DeviceState.NO_DEVICE)}
    checkin = by_id(statuses)[ServiceId.CHECKIN]
    assert (checkin.reason, checkin.device) == ("{device} not installed", "QR code reader")
    statuses["barcode"] = status("barcode")
    checkin = by_id(statuses)[ServiceId.CHECKIN]
    assert (checkin.reason, checkin.device) == ("{device} disconnected", "ticket printer")


def test_app_state_active_while_a_citizen_uses_it():
    result = evaluate({n: status(n) for n in ALL})
    assert app_state(result, True) is AppState.ACTIVE
    assert app_state(result, False) is AppState.AVAILABLE
