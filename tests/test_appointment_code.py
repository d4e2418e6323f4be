"""The signed appointment code format (docs/appointment-code.md): the back office's signer and
the kiosk's verifier are separate implementations, so every test here that issues with one and
verifies with the other checks the specification itself."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from backoffice.appointment_codes import (
    CodeFields,
    SigningKey,
    base45_encode,
    demo_signing_key,
    end_of_day,
    issue_code,
)
from backoffice.appointment_codes import _Body as IssuerBody
from flows.appointment_code import (
    CodeRejected,
    Rejection,
    base45_decode,
    check_validity,
    is_signed_code,
    public_key_from_base64,
    verify_signed_code,
)
from kiosk.config import load_config

REPO = Path(__file__).resolve().parents[1]
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 22)
DEMO = demo_signing_key()
KEYS = {"demo": public_key_from_base64(DEMO.public_key_base64)}
GRACE = {"grace_before": dt.timedelta(minutes=30), "grace_after": dt.timedelta(minutes=15)}


def fields(**changes: object) -> CodeFields:
    base = CodeFields(appointment_id="YY53010201000001", centre_id="530102-01",
                      service_item_code="SB001", date=DAY, slot_start=dt.time(9, 0),
                      slot_end=dt.time(9, 30), expires_at=end_of_day(DAY, SHANGHAI),
                      place="二楼 B区 5-8号窗口", service_name="社会保障卡申领", holder="王**")
    return replace(base, **changes)  # type: ignore[arg-type]


def at(hour: int, minute: int, second: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=SHANGHAI)


def rejection(payload: str, keys: object = KEYS) -> CodeRejected:
    with pytest.raises(CodeRejected) as caught:
        verify_signed_code(payload, keys)  # type: ignore[arg-type]
    return caught.value


def raw_code(body: dict[str, object], key: SigningKey = DEMO, prefix: str = "ZZ1:") -> str:
    """A code signed over whatever body it is given: what a buggy or hostile issuer makes."""
    der = IssuerBody(body).dump()
    return prefix + base45_encode(der + key.private_key.sign(prefix.encode() + der))


def valid_body(**changes: object) -> dict[str, object]:
    return {"version": 1, "key_id": "demo", "appointment_id": "YY1", "centre_id": "530102-01",
            "service_item_code": "SB001", "date": 20261122, "slot_start": 900, "slot_end": 930,
            "expires_at": 1795363200, "place": "", "service_name": "", "holder": "", **changes}


# --- the specification's test vector ---------------------------------------------------------

def doc_block(after: str) -> str:
    text = (REPO / "docs" / "appointment-code.md").read_text(encoding="utf-8")
    block = text.split(after, 1)[1].split("```", 2)[1]
    return block.strip("\n")


def test_both_implementations_reproduce_the_documented_test_vector():
    qr_text = doc_block("QR text (one line")
    assert issue_code(fields(), DEMO) == qr_text  # Ed25519 is deterministic
    data = base45_decode(qr_text[4:])
    assert data[:-64].hex() == "".join(doc_block("Body (DER").split())
    assert data[-64:].hex() == "".join(doc_block("Signature (hex)").split())
    code = verify_signed_code(qr_text, KEYS)
    assert (code.appointment_id, code.centre_id, code.service_item_code) == (
        "YY53010201000001", "530102-01", "SB001")
    assert (code.date, code.slot_start, code.slot_end) == (DAY, dt.time(9), dt.time(9, 30))
    assert code.expires_at == dt.datetime(2026, 11, 22, 16, 0, tzinfo=dt.UTC)
    assert (code.place, code.service_name, code.holder) == (
        "二楼 B区 5-8号窗口", "社会保障卡申领", "王**")
    assert "王" not in repr(code)  # the holder stays out of logs that print the object


def test_the_demo_config_trusts_the_key_the_demo_back_office_signs_with():
    config = load_config(REPO / "assets" / "config" / "demo.toml")
    assert config.appointment_codes.keys == {"demo": DEMO.public_key_base64}
    example = load_config(REPO / "assets" / "config" / "kiosk.example.toml")
    assert example.appointment_codes.keys == {}  # a real kiosk never trusts the demo key


@pytest.mark.parametrize("data, text", [  # RFC 9285 section 4.3 and 4.4
    (b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"), (b"", "")])
def test_base45_against_rfc_9285(data, text):
    assert base45_encode(data) == text
    assert base45_decode(text) == data


@pytest.mark.parametrize("text", ["GGW", "A", "ab", "AB!", "::::"])
def test_base45_refuses_what_is_no_base45(text):
    with pytest.raises(ValueError):
        base45_decode(text)


@settings(max_examples=40, deadline=None)
@given(appointment_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
       place=st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f",
                                   exclude_categories=("Cs",)), max_size=48),
       start=st.integers(0, 23 * 60 + 58), length=st.integers(1, 240))
def test_whatever_the_issuer_may_sign_the_kiosk_reads_back(appointment_id, place, start, length):
    end = min(start + length, 23 * 60 + 59)
    sent = fields(appointment_id=appointment_id, place=place,
                  slot_start=dt.time(start // 60, start % 60),
                  slot_end=dt.time(end // 60, end % 60))
    got = verify_signed_code(issue_code(sent, DEMO), KEYS)
    assert (got.appointment_id, got.place, got.slot_start, got.slot_end) == (
        sent.appointment_id, sent.place, sent.slot_start, sent.slot_end)


def test_scanner_line_ends_are_ignored_but_spaces_are_digits():
    text = issue_code(fields(), DEMO)
    assert verify_signed_code(f"{text}\r\n", KEYS).appointment_id == "YY53010201000001"
    assert is_signed_code(f"{text}\r") and not is_signed_code("ZZAPT:APT-1")
    assert rejection(text + " ").reason is Rejection.MALFORMED


def test_a_typical_code_fits_a_version_10_qr_in_alphanumeric_mode():
    import segno

    text = issue_code(fields(), DEMO)
    qr = segno.make(text, error="m", micro=False)
    assert (qr.mode, qr.version) == ("alphanumeric", 10)
    short = segno.make(issue_code(fields(place="", service_name="", holder=""), DEMO),
                       error="m", micro=False)
    assert short.version == 8


# --- forged, malformed, unknown key ------------------------------------------------------------

def flip(text: str, index: int) -> str:
    """The code with one bit of decoded byte ``index`` changed, re-encoded."""
    data = bytearray(base45_decode(text[4:]))
    data[index] ^= 0x01
    return text[:4] + base45_encode(bytes(data))


def test_forged_signature():
    text = issue_code(fields(), DEMO)
    assert rejection(flip(text, -1)).reason is Rejection.FORGED


def test_a_changed_field_is_forged_not_believed():
    text = issue_code(fields(), DEMO)
    body = base45_decode(text[4:])[:-64]
    where = body.index(b"530102-01") + 5  # one digit of the centre id
    caught = rejection(flip(text, where))
    assert (caught.reason, caught.detail) == (Rejection.FORGED, "bad_signature")


def test_signed_by_someone_else_under_our_key_id_is_forged():
    impostor = SigningKey("demo", Ed25519PrivateKey.generate())
    assert rejection(issue_code(fields(), impostor)).reason is Rejection.FORGED


def test_signature_over_the_body_without_the_prefix_is_forged():
    der = IssuerBody(valid_body()).dump()
    text = "ZZ1:" + base45_encode(der + DEMO.private_key.sign(der))
    assert rejection(text).reason is Rejection.FORGED


def test_flipped_structure_byte_is_malformed():
    text = issue_code(fields(), DEMO)
    caught = rejection(flip(text, 0))  # the SEQUENCE tag
    assert (caught.reason, caught.detail) == (Rejection.MALFORMED, "not_der")


@pytest.mark.parametrize("mangle, detail", [
    (lambda t: t[:40], "truncated"),
    (lambda t: t[:-2], "not_der"),  # one byte short: the body loses its last byte
    (lambda t: t[:-1], "not_base45"),
    (lambda t: "ZZ2:" + t[4:], "unsupported_version"),
    (lambda t: "ZZ01:" + t[4:], "unsupported_version"),
    (lambda t: t.lower(), "not_signed_code"),
    (lambda t: "ZZ1:" + t[4:].lower(), "not_base45"),
    (lambda t: "ZZ1:", "truncated"),
    (lambda t: "ZZ1:" + "000" * 600, "too_long"),
])
def test_malformed(mangle, detail):
    caught = rejection(mangle(issue_code(fields(), DEMO)))
    assert (caught.reason, caught.detail) == (Rejection.MALFORMED, detail)


def test_body_version_must_match_the_prefix():
    caught = rejection(raw_code(valid_body(version=2)))
    assert (caught.reason, caught.detail) == (Rejection.MALFORMED, "version_mismatch")


def test_extra_fields_and_non_der_encodings_are_malformed():
    der = IssuerBody(valid_body()).dump()
    longer = bytes([0x30, der[1] + 3]) + der[2:] + b"\x02\x01\x05"
    long_form = bytes([0x30, 0x81, der[1]]) + der[2:]
    for body in (longer, long_form):
        text = "ZZ1:" + base45_encode(body + DEMO.private_key.sign(b"ZZ1:" + body))
        assert (rejection(text).reason, rejection(text).detail) == (
            Rejection.MALFORMED, "not_der")


@pytest.mark.parametrize("changes, detail", [
    ({"date": 20261340}, "bad_date"),
    ({"slot_start": 960}, "bad_slot_start"),
    ({"slot_end": 2400}, "bad_slot_end"),
    ({"slot_end": 900}, "bad_slot_end"),
    ({"appointment_id": "../admin"}, "bad_appointment_id"),
    ({"appointment_id": ""}, "bad_appointment_id"),
    ({"centre_id": "530102 01"}, "bad_centre_id"),
    ({"service_item_code": "x" * 65}, "bad_service_item_code"),
    ({"place": "二楼\nB区"}, "bad_place"),
    ({"service_name": "事" * 49}, "bad_service_name"),
    ({"holder": "王" * 17}, "bad_holder"),
    ({"expires_at": -1}, "bad_expires_at"),
])
def test_validly_signed_nonsense_is_malformed(changes, detail):
    caught = rejection(raw_code(valid_body(**changes)))
    assert (caught.reason, caught.detail) == (Rejection.MALFORMED, detail)


def test_unknown_key_id_names_the_key():
    other = SigningKey("k2027a", Ed25519PrivateKey.generate())
    caught = rejection(issue_code(fields(), other))
    assert (caught.reason, caught.detail) == (Rejection.UNKNOWN_KEY, "k2027a")
    assert rejection(issue_code(fields(), DEMO), keys={}).reason is Rejection.UNKNOWN_KEY


def test_a_key_id_the_format_forbids_is_malformed():
    caught = rejection(raw_code(valid_body(key_id="a" * 17)))
    assert (caught.reason, caught.detail) == (Rejection.MALFORMED, "bad_key_id")


def test_rotation_two_keys_trusted_at_once():
    new = SigningKey("k2027a", Ed25519PrivateKey.generate())
    keys = {**KEYS, "k2027a": public_key_from_base64(new.public_key_base64)}
    for key in (DEMO, new):
        assert verify_signed_code(issue_code(fields(), key), keys).key_id == key.key_id


# --- centre and time --------------------------------------------------------------------------

def check(now: dt.datetime, centre: str = "530102-01", **changes: object) -> None:
    code = verify_signed_code(issue_code(fields(**changes), DEMO), KEYS)
    check_validity(code, centre_id=centre, now=now, **GRACE)


def refused(now: dt.datetime, centre: str = "530102-01", **changes: object) -> CodeRejected:
    with pytest.raises(CodeRejected) as caught:
        check(now, centre, **changes)
    return caught.value


@pytest.mark.parametrize("now", [
    at(8, 30),  # slot start minus grace_before: the first moment
    at(9, 10),
    at(9, 45),  # slot end plus grace_after: the last moment
])
def test_inside_the_window_including_both_graces(now):
    check(now)


def test_too_early_says_when_it_opens():
    caught = refused(at(8, 29, 59))
    assert (caught.reason, caught.detail) == (Rejection.TOO_EARLY, "08:30")
    tomorrow = refused(at(10, 0), date=DAY + dt.timedelta(days=1),
                       expires_at=end_of_day(DAY + dt.timedelta(days=1), SHANGHAI))
    assert (tomorrow.reason, tomorrow.detail) == (Rejection.TOO_EARLY, "2026-11-23 08:30")


def test_after_the_grace_the_slot_has_expired():
    caught = refused(at(9, 45, 1))
    assert (caught.reason, caught.detail) == (Rejection.EXPIRED, "09:45")


def test_the_codes_own_expiry_wins_over_the_grace():
    expiry = at(9, 20)
    assert refused(at(9, 20), expires_at=expiry).reason is Rejection.EXPIRED
    check(at(9, 19, 59), expires_at=expiry)
    yesterday = refused(at(9, 10), date=DAY - dt.timedelta(days=1),
                        expires_at=end_of_day(DAY - dt.timedelta(days=1), SHANGHAI))
    assert (yesterday.reason, yesterday.detail) == (Rejection.EXPIRED, "2026-11-21 09:45")


def test_the_slot_is_the_centres_wall_clock_whatever_zone_now_is_given_in():
    utc_now = at(9, 10).astimezone(dt.UTC)  # 01:10 UTC
    code = verify_signed_code(issue_code(fields(), DEMO), KEYS)
    with pytest.raises(CodeRejected):  # taken as 09:00 UTC: far too early
        check_validity(code, centre_id="530102-01", now=utc_now, **GRACE)
    with pytest.raises(ValueError):
        check_validity(code, centre_id="530102-01", now=utc_now.replace(tzinfo=None), **GRACE)


def test_other_centre_is_checked_before_time():
    caught = refused(at(23, 0), centre="530111-01")
    assert (caught.reason, caught.detail) == (Rejection.OTHER_CENTRE, "530102-01")


def test_rejection_texts_hold_no_name():
    for payload in (issue_code(fields(holder="王**"), SigningKey("zz", DEMO.private_key)),
                    flip(issue_code(fields(), DEMO), -1)):
        caught = rejection(payload)
        assert "王" not in str(caught) and not re.search(r"\d{6,}", caught.detail)
