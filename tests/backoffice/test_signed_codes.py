"""The reference back office issuing signed appointment codes: its endpoint and check-in by
appointment id (over loopback, the real server), its signing key file, and the tester's CLI."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from backoffice.appointment_codes import (
    SigningKeyError,
    demo_signing_key,
    key_id_for,
    load_or_create_signing_key,
)
from backoffice.cli import issue_code_main, main
from backoffice.db import SessionFactory, init_schema, make_engine
from backoffice.seed import SeedError, load_seed
from flows.appointment_code import (
    CodeRejected,
    Rejection,
    check_validity,
    public_key_from_base64,
    verify_signed_code,
)
from kiosk.launcher import EmbeddedBackOffice, free_port
from tests.conftest import make_test_seed, write_seed

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO = demo_signing_key()
DEMO_KEYS = {"demo": public_key_from_base64(DEMO.public_key_base64)}
GRACE = {"grace_before": dt.timedelta(minutes=30), "grace_after": dt.timedelta(minutes=30)}


@pytest.fixture
def api(backoffice_server) -> httpx.Client:
    with httpx.Client(base_url=backoffice_server.api, timeout=10, trust_env=False) as client:
        yield client


def shanghai_today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


# --- the endpoint and check-in by id ---------------------------------------------------------

def test_signed_code_of_a_seeded_appointment(api, backoffice_server):
    code = backoffice_server.fresh_code()
    answer = api.get(f"/appointments/{code}/signed-code")
    assert answer.status_code == 200
    body = answer.json()
    assert body["key_id"] == "demo" and body["qr_text"].startswith("ZZ1:")
    signed = verify_signed_code(body["qr_text"], DEMO_KEYS)
    seed = backoffice_server.appointment(code)
    assert (signed.appointment_id, signed.centre_id, signed.service_item_code) == (
        f"ID-{code}", backoffice_server.centre_id, seed["service_item_code"])
    assert (signed.date, signed.slot_start, signed.slot_end) == (
        shanghai_today(), dt.time(9), dt.time(9, 30))
    # The place is the item's queue: SB001 -> A, YB001 -> B, HJ001 -> C in the test seed.
    queue = {"SB001": "A", "YB001": "B", "HJ001": "C"}[seed["service_item_code"]]
    assert signed.place == f"二楼 {queue}区 {ord(queue) - 64}号窗口"
    assert signed.service_name in ("社会保障卡申领", "异地就医备案", "户籍证明开具")
    name = backoffice_server.applicant_name
    assert signed.holder == name[0] + "*" * (len(name) - 1)
    assert name not in answer.text
    midnight = dt.datetime.combine(shanghai_today() + dt.timedelta(days=1), dt.time(0),
                                   tzinfo=SHANGHAI)
    assert dt.datetime.fromisoformat(body["expires_at"]) == midnight == signed.expires_at


@pytest.mark.parametrize("code, status, error", [
    ("T-CANCELLED", 422, "cancelled"),
    ("T-NOT-BOOKED", 404, "appointment_not_found"),
    ("bad code!", 422, "malformed_code"),
])
def test_signed_code_refusals(api, code, status, error):
    answer = api.get(f"/appointments/{code}/signed-code")
    assert (answer.status_code, answer.json()["error"]) == (status, error)


def test_check_in_by_appointment_id_is_idempotent_and_single(api, backoffice_server):
    code = backoffice_server.fresh_code()
    appointment_id = f"ID-{code}"
    body = {"kiosk_id": "KIOSK-T1", "centre_id": backoffice_server.centre_id}
    key = f"test-{uuid.uuid4()}"
    first = api.post(f"/appointments/{appointment_id}/check-in", json=body,
                     headers={"Idempotency-Key": key})
    assert first.status_code == 200
    assert first.json()["ticket"]["appointment_id"] == appointment_id
    replay = api.post(f"/appointments/{appointment_id}/check-in", json=body,
                      headers={"Idempotency-Key": key})
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other_key = api.post(f"/appointments/{appointment_id}/check-in", json=body,
                         headers={"Idempotency-Key": f"test-{uuid.uuid4()}"})
    assert (other_key.status_code, other_key.json()["error"]) == (409, "already_checked_in")
    by_code = api.post(f"/appointments/{code}/check-in", json=body,
                       headers={"Idempotency-Key": f"test-{uuid.uuid4()}"})
    assert by_code.status_code == 409  # the code and the id are the same appointment
    assert api.get(f"/appointments/{appointment_id}").json()["status"] == "checked_in"


def test_check_in_by_id_keeps_the_centre_and_day_rules(api, backoffice_server):
    body = {"kiosk_id": "KIOSK-T1", "centre_id": backoffice_server.centre_id}
    for code, error in (("T-OTHER-CENTRE", "wrong_centre"), ("T-TOMORROW", "not_today")):
        answer = api.post(f"/appointments/ID-{code}/check-in", json=body,
                          headers={"Idempotency-Key": f"test-{uuid.uuid4()}"})
        assert (answer.status_code, answer.json()["error"]) == (422, error)


def test_a_seed_whose_code_is_another_appointments_id_is_refused(backoffice_db_url):
    seed = make_test_seed()
    seed["appointments"][1]["code"] = seed["appointments"][0]["appointment_id"]
    engine = make_engine(backoffice_db_url)
    init_schema(engine)
    try:
        with SessionFactory(engine).session() as session, pytest.raises(SeedError,
                                                                        match="another"):
            load_seed(session, seed, shanghai_today())
    finally:
        engine.dispose()


def test_a_later_seed_cannot_reuse_a_stored_id_as_a_code(backoffice_db_url):
    engine = make_engine(backoffice_db_url)
    init_schema(engine)
    factory = SessionFactory(engine)
    try:
        with factory.session() as session:
            load_seed(session, make_test_seed(), shanghai_today())
        later = make_test_seed()
        later["appointments"] = [{**later["appointments"][0], "code": "NEW-CODE-1",
                                  "appointment_id": "T-FRESH-002"}]
        with factory.session() as session, pytest.raises(SeedError, match="another"):
            load_seed(session, later, shanghai_today())
    finally:
        engine.dispose()


# --- the signing key ---------------------------------------------------------------------------

def test_key_file_is_created_private_and_read_back(tmp_path):
    path = tmp_path / "keys" / "signing.pem"
    created = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert again.key_id == created.key_id == key_id_for(created.private_key)
    assert again.public_key_base64 == created.public_key_base64
    assert created.key_id != "demo" and len(created.key_id) == 8
    other = load_or_create_signing_key(tmp_path / "other.pem")
    assert other.key_id != created.key_id


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "signing.pem"
    load_or_create_signing_key(path)
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_or_create_signing_key(path)


@pytest.mark.parametrize("content", [
    b"not a key",
    generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()),
])
def test_key_file_that_is_no_ed25519_key_is_refused(tmp_path, content):
    path = tmp_path / "signing.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    with pytest.raises(SigningKeyError):
        load_or_create_signing_key(path)


class KeyedBackOffice(EmbeddedBackOffice):
    """The launcher's server with a signing key file (the launcher itself passes none)."""

    def __init__(self, key: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.key = key

    def command(self) -> list[str]:
        return [*super().command(), "--signing-key", str(self.key)]


def test_server_signs_with_its_key_file_and_public_key_prints_the_kiosk_line(tmp_path,
                                                                              capsys):
    key_path = tmp_path / "signing.pem"
    server = KeyedBackOffice(key_path, port=free_port(), db_url=f"sqlite:///{tmp_path / 'b.db'}",
                             seed=write_seed(tmp_path / "seed.json", make_test_seed()))
    with server:
        answer = httpx.get(f"{server.url}/api/v1/appointments/T-FRESH-001/signed-code",
                           timeout=5, trust_env=False).json()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert main(["public-key", "--signing-key", str(key_path)]) == 0
    toml = capsys.readouterr().out
    key_id, public = toml.splitlines()[1].split(" = ")
    assert toml.startswith("[appointment_codes.keys]\n") and answer["key_id"] == key_id
    keys = {key_id: public_key_from_base64(public.strip('"'))}
    assert verify_signed_code(answer["qr_text"], keys).appointment_id == "ID-T-FRESH-001"
    with pytest.raises(CodeRejected) as caught:  # a demo kiosk does not trust it
        verify_signed_code(answer["qr_text"], DEMO_KEYS)
    assert caught.value.reason is Rejection.UNKNOWN_KEY


# --- issue-code ------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 22, 14, 7, tzinfo=SHANGHAI)


def issue(capsys, *args: str) -> str:
    assert issue_code_main(list(args), now=NOW) == 0
    return capsys.readouterr().out.strip()


def kiosk_verdict(text: str, keys: dict = DEMO_KEYS, centre: str = "530102-01") -> str:
    try:
        check_validity(verify_signed_code(text, keys), centre_id=centre, now=NOW, **GRACE)
    except CodeRejected as rejected:
        return str(rejected.reason)
    return "ok"


def test_issue_code_defaults_to_a_code_valid_now_at_the_demo_centre(capsys):
    text = issue(capsys, "--appointment-id", "X-1", "--holder", "王秀英", "--place", "二楼 B区")
    assert kiosk_verdict(text) == "ok"
    code = verify_signed_code(text, DEMO_KEYS)
    assert (code.slot_start, code.slot_end, code.date) == (dt.time(14), dt.time(14, 30),
                                                           NOW.date())
    assert (code.holder, code.place, code.service_item_code) == ("王**", "二楼 B区", "SB001")


@pytest.mark.parametrize("args, verdict", [
    (["--expired"], "expired"),
    (["--too-early"], "too_early"),
    (["--date", "yesterday"], "expired"),
    (["--slot", "16:00-16:30"], "too_early"),
    (["--expires", "2026-11-22T14:00"], "expired"),
    (["--centre", "530111-01"], "other_centre"),
    (["--forge"], "forged"),
])
def test_issue_code_makes_each_failure_for_testers(capsys, args, verdict):
    assert kiosk_verdict(issue(capsys, "--appointment-id", "X-2", *args)) == verdict


def test_issue_code_with_another_key_is_unknown_to_a_demo_kiosk(capsys, tmp_path):
    text = issue(capsys, "--appointment-id", "X-3", "--signing-key", str(tmp_path / "k.pem"))
    assert kiosk_verdict(text) == "unknown_key"


def test_issue_code_for_a_stored_appointment_with_overrides(capsys, backoffice_db_url):
    db_url = backoffice_db_url
    engine = make_engine(db_url)
    init_schema(engine)
    with SessionFactory(engine).session() as session:
        load_seed(session, make_test_seed(), NOW.date())
    engine.dispose()
    stored = verify_signed_code(issue(capsys, "--appointment", "T-FRESH-001", "--db", db_url),
                                DEMO_KEYS)
    assert (stored.appointment_id, stored.centre_id, stored.slot_start) == (
        "ID-T-FRESH-001", "TEST-01", dt.time(9))
    assert stored.place == "二楼 A区 1号窗口" and stored.holder.startswith("测*")
    now_slot = issue(capsys, "--appointment", "ID-T-FRESH-001", "--db", db_url, "--slot", "now")
    assert kiosk_verdict(now_slot, centre="TEST-01") == "ok"


@pytest.mark.parametrize("args, message", [
    ([], "give --appointment"),
    (["--appointment", "T-1", "--db", "sqlite:////nonexistent/bo.db"], "no back-office database"),
    (["--appointment-id", "X", "--date", "someday"], "--date 'someday'"),
    (["--appointment-id", "X", "--slot", "9-10"], "--slot '9-10'"),
    (["--appointment-id", "X", "--slot", "10:00-09:00"], "slot_end must be after"),
    (["--appointment-id", "../x"], "appointment_id must be"),
    (["--appointment-id", "X", "--timezone", "Mars/Base"], "unknown timezone"),
])
def test_issue_code_usage_errors_are_one_line(capsys, args, message):
    assert issue_code_main(args, now=NOW) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err


def test_issue_code_command_prints_text_and_writes_a_png_that_scans(tmp_path):
    import cv2
    import zxingcpp

    png = tmp_path / "code.png"
    result = subprocess.run(
        [sys.executable, "-m", "backoffice", "issue-code", "--appointment-id", "X-9",
         "--place", "二楼 B区 5号窗", "--png", str(png)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert verify_signed_code(text, DEMO_KEYS).place == "二楼 B区 5号窗"
    decoded = zxingcpp.read_barcodes(cv2.imread(str(png)))
    assert [d.text for d in decoded] == [text]
