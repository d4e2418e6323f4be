"""`kiosk provision`: a good run writes a kiosk that starts; any bad input changes nothing.

The PKI is made here with cryptography (a centre CA, the kiosk's client certificate, a server
certificate for a real mutual-TLS back office on loopback)."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import io
import os
import pwd
import socket
import ssl
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import kiosk.provision as provision_module
from kiosk import cli
from kiosk.config import ConfigError, hash_pin, load_config, verify_pin
from kiosk.outbox.crypto import load_key
from kiosk.provision import (
    Answers,
    ProvisionError,
    check_pin,
    parse_device,
    provision,
    read_answers,
    write_atomically,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "assets/config/kiosk.example.toml"
PIN = "418207"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def fast_pin_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real cost (2^17) takes about a second; test_pin_hash_at_full_cost keeps it covered.
    monkeypatch.setattr(provision_module, "hash_pin", lambda pin: hash_pin(pin, log2_n=10))


# --- a small PKI ------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def make_ca(cn: str = "Test Centre CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, *,
          usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
          days: tuple[int, int] = (-1, 365), ip: str | None = None,
          key: ec.EllipticCurvePrivateKey | None = None,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + dt.timedelta(days=days[0]))
               .not_valid_after(NOW + dt.timedelta(days=days[1]))
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@dataclass
class Site:
    """What the technician brings on the USB stick."""

    folder: Path
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ca_file: Path
    client_cert: Path
    client_key: Path
    client_key_obj: ec.EllipticCurvePrivateKey
    qr_key: str

    def write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


@pytest.fixture
def site(tmp_path: Path) -> Site:
    folder = tmp_path / "usb"
    folder.mkdir()
    ca = make_ca()
    cert, key = issue(ca, "ZZ-530102-001")
    (folder / "ca.pem").write_bytes(_pem(ca[0]))
    (folder / "kiosk.crt").write_bytes(_pem(cert))
    (folder / "kiosk.key").write_bytes(_key_pem(key))
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return Site(folder, ca, folder / "ca.pem", folder / "kiosk.crt", folder / "kiosk.key", key,
                base64.b64encode(raw).decode())


def answers_for(site: Site, tmp_path: Path, url: str = "https://127.0.0.1:9/api",
                **changes: object) -> Answers:
    answers = Answers(
        kiosk_id="ZZ-530102-001", centre_id="530102-01", centre_name="五华区政务服务中心",
        backoffice_url=url, ca_file=site.ca_file, client_cert=site.client_cert,
        client_key=site.client_key, qr_keys={"kab12cd3": site.qr_key}, pin=PIN,
        orientation="portrait", data_dir=tmp_path / "data",
        devices={"receipt_printer": {"driver": "escpos", "port": "/dev/null",
                                     "baudrate": 115200}})
    for key, value in changes.items():
        setattr(answers, key, value)
    return answers


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and content: "nothing changed" made exact."""
    result: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        result[str(path.relative_to(root))] = (
            info.st_mode, path.read_bytes() if stat.S_ISREG(info.st_mode) else None)
    return result


# --- a real mutual-TLS back office on loopback ------------------------------------------------


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mtls_server(site: Site, tmp_path: Path) -> Iterator[str]:
    """HTTPS on 127.0.0.1 that requires a client certificate from the site's CA."""
    cert, key = issue(site.ca, "backoffice", usage=ExtendedKeyUsageOID.SERVER_AUTH,
                      ip="127.0.0.1")
    (tmp_path / "server.pem").write_bytes(_pem(cert) + _key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    context.load_verify_locations(site.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the happy path ---------------------------------------------------------------------------


def test_provision_writes_a_kiosk_that_loads(site: Site, tmp_path: Path, mtls_server: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config_path = tmp_path / "etc" / "kiosk.toml"
    report = provision(answers_for(site, tmp_path, url=mtls_server + "/api/"), config_path,
                       template=EXAMPLE, user="no-such-kiosk-user")

    config = load_config(config_path)
    assert (config.kiosk.id, config.kiosk.centre_id) == ("ZZ-530102-001", "530102-01")
    assert config.kiosk.centre_name == "五华区政务服务中心"
    assert config.kiosk.orientation == "portrait"
    assert config.kiosk.data_dir == tmp_path / "data"
    assert config.backoffice.url == mtls_server + "/api"
    assert config.appointment_codes.keys == {"kab12cd3": site.qr_key}
    printer = config.devices["receipt_printer"]
    assert (printer.driver, printer.options) == ("escpos", {"port": "/dev/null",
                                                            "baudrate": 115200})
    assert config.devices["camera"].driver == "sim"  # the template's other devices stay

    tls = config_path.parent / "tls"
    assert (config.backoffice.ca_file, config.backoffice.client_cert,
            config.backoffice.client_key) == (tls / "ca.pem", tls / "client.pem",
                                              tls / "client.key")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tls.iterdir()}
    assert modes == {"ca.pem": 0o644, "client.pem": 0o644, "client.key": 0o600}
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o640
    written_key = serialization.load_pem_private_key((tls / "client.key").read_bytes(), None)
    assert written_key.private_numbers() == site.client_key_obj.private_numbers()
    assert x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes()) == site.ca[0]

    outbox_key = config.outbox_key_file
    assert outbox_key == tmp_path / "data" / "outbox.key"
    assert stat.S_IMODE(outbox_key.stat().st_mode) == 0o600
    assert len(load_key(outbox_key)) == 32  # the outbox's own reader accepts it

    text = config_path.read_text(encoding="utf-8")
    assert PIN not in text
    assert verify_pin(PIN, config.maintenance.pin_hash)
    assert config.maintenance.verify_pin(PIN) and not config.maintenance.verify_pin("418208")
    assert "# Terminal id: printed on receipts" in text  # the template's comments survive

    shown = "\n".join(report.summary + report.warnings)
    assert f"{mtls_server}/api (reachable)" in shown
    assert "CN=ZZ-530102-001" in shown and "kab12cd3" in shown
    secrets = [PIN, config.maintenance.pin_hash, outbox_key.read_text().strip(),
               site.client_key.read_text().splitlines()[1]]
    assert not any(secret in shown for secret in secrets)

    # Re-provisioning without certificates reaches the server with those already installed.
    again = provision(Answers(centre_name="盘龙区政务服务中心"), config_path,
                      user="no-such-kiosk-user")
    assert f"back office {mtls_server}/api (reachable)" in again.summary


def test_reprovisioning_keeps_the_outbox_key_and_the_previous_config(
        site: Site, tmp_path: Path) -> None:
    config_path = tmp_path / "etc" / "kiosk.toml"
    provision(answers_for(site, tmp_path), config_path, template=EXAMPLE, probe=False)
    first = config_path.read_bytes()
    key = (tmp_path / "data" / "outbox.key").read_bytes()
    inode = config_path.stat().st_ino

    report = provision(Answers(centre_name="盘龙区政务服务中心", drop_qr_keys=["kab12cd3"]),
                       config_path, probe=False)

    config = load_config(config_path)
    assert config.kiosk.centre_name == "盘龙区政务服务中心"
    assert config.kiosk.id == "ZZ-530102-001"  # not given again: kept
    assert config.appointment_codes.keys == {}
    assert verify_pin(PIN, config.maintenance.pin_hash)  # no new PIN: the old hash stays
    assert (tmp_path / "data" / "outbox.key").read_bytes() == key
    assert (tmp_path / "etc" / "kiosk.toml.bak").read_bytes() == first
    assert config_path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert not list(config_path.parent.glob(".*.tmp"))
    assert "PIN         unchanged" in report.summary
    assert any("outbox key" in line and "(kept" in line for line in report.summary)


def test_unreachable_back_office_is_only_a_warning(site: Site, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    report = provision(answers_for(site, tmp_path, url=url), tmp_path / "kiosk.toml",
                       probe_timeout_s=1.0)
    assert load_config(tmp_path / "kiosk.toml").backoffice.url == url
    assert any(url in w and "not reachable" in w and "saved anyway" in w
               for w in report.warnings)
    assert f"back office {url} (NOT reachable now)" in report.summary


def test_a_server_the_ca_does_not_vouch_for_is_a_tls_warning(
        site: Site, tmp_path: Path, mtls_server: str) -> None:
    other = make_ca("Somebody Else CA")
    ca_file = site.write("other-ca.pem", _pem(other[0]))
    cert, key = issue(other, "ZZ-530102-001")
    answers = answers_for(site, tmp_path, url=mtls_server, ca_file=ca_file,
                          client_cert=site.write("o.crt", _pem(cert)),
                          client_key=site.write("o.key", _key_pem(key)))
    report = provision(answers, tmp_path / "kiosk.toml")
    assert any("TLS" in w and "does not verify" in w for w in report.warnings)


# --- bad input changes nothing ----------------------------------------------------------------


def _expired(site: Site, tmp_path: Path) -> Answers:
    cert, key = issue(site.ca, "ZZ-530102-001", days=(-400, -35))
    return answers_for(site, tmp_path, client_cert=site.write("x.crt", _pem(cert)),
                       client_key=site.write("x.key", _key_pem(key)))


def _not_yet_valid(site: Site, tmp_path: Path) -> Answers:
    cert, key = issue(site.ca, "ZZ-530102-001", days=(2, 365))
    return answers_for(site, tmp_path, client_cert=site.write("x.crt", _pem(cert)),
                       client_key=site.write("x.key", _key_pem(key)))


def _other_ca(site: Site, tmp_path: Path) -> Answers:
    cert, key = issue(make_ca("Somebody Else CA"), "ZZ-530102-001")
    return answers_for(site, tmp_path, client_cert=site.write("x.crt", _pem(cert)),
                       client_key=site.write("x.key", _key_pem(key)))


def _wrong_key(site: Site, tmp_path: Path) -> Answers:
    other = ec.generate_private_key(ec.SECP256R1())
    return answers_for(site, tmp_path, client_key=site.write("x.key", _key_pem(other)))


def _encrypted_key(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, client_key=site.write(
        "x.key", _key_pem(site.client_key_obj, b"secret")))


def _server_certificate(site: Site, tmp_path: Path) -> Answers:
    cert, key = issue(site.ca, "ZZ-530102-001", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    return answers_for(site, tmp_path, client_cert=site.write("x.crt", _pem(cert)),
                       client_key=site.write("x.key", _key_pem(key)))


def _not_a_certificate(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, ca_file=site.write("x.pem", b"hello"))


def _bad_qr_key(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, qr_keys={"k2": base64.b64encode(b"short").decode()})


def _bad_url(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, backoffice_url="ftp://bo.example.cn")


def _http_url_with_tls(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, backoffice_url="http://bo.example.cn")


def _weak_pin(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, pin="123456")


def _unknown_driver(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, devices={"receipt_printer": {"driver": "star"}})


def _unknown_setting(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, devices={"receipt_printer": {
        "driver": "escpos", "prot": "/dev/ttyUSB1"}})


def _bad_kiosk_id(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, kiosk_id="ZZ 001")


def _bad_rotation(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, rotation=45)


def _bad_renderer(site: Site, tmp_path: Path) -> Answers:
    return answers_for(site, tmp_path, renderer="opengl")


def _readable_outbox_key(site: Site, tmp_path: Path) -> Answers:
    (tmp_path / "data" / "outbox.key").chmod(0o644)
    return answers_for(site, tmp_path, centre_name="新名字")


BAD_INPUTS: dict[str, tuple[Callable[[Site, Path], Answers], str]] = {
    "expired": (_expired, "expired on"),
    "not yet valid": (_not_yet_valid, "is not valid before"),
    "other CA": (_other_ca, "does not chain to the CA file"),
    "wrong key": (_wrong_key, "is not the key of client certificate"),
    "encrypted key": (_encrypted_key, "it is encrypted"),
    "server certificate": (_server_certificate, "not for client authentication"),
    "not a certificate": (_not_a_certificate, "no PEM or DER certificate"),
    "QR key": (_bad_qr_key, "QR key 'k2': must be a raw 32-byte Ed25519 public key"),
    "URL": (_bad_url, "back-office URL: must be an http:// or https:// URL"),
    "http with TLS": (_http_url_with_tls, "backoffice.url: ca_file and client_cert and "
                                          "client_key set, so the url must be https://"),
    "weak PIN": (_weak_pin, "too easy to guess"),
    "driver": (_unknown_driver, "devices.receipt_printer.driver: unknown driver 'star'"),
    "setting": (_unknown_setting, "devices.receipt_printer.prot: not a setting of the "
                                  "'escpos' driver"),
    "kiosk id": (_bad_kiosk_id, "kiosk.id: must be 1..64 characters"),
    "outbox key mode": (_readable_outbox_key, "has mode 0644"),
    "rotation": (_bad_rotation, "rotation must be one of 0, 90, 180, 270 (degrees clockwise; "
                                "got 45)"),
    "renderer": (_bad_renderer, "renderer must be one of auto, gles2, pixman (got 'opengl')"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_changes_nothing(case: str, site: Site, tmp_path: Path) -> None:
    config_path = tmp_path / "etc" / "kiosk.toml"
    provision(answers_for(site, tmp_path), config_path, probe=False)
    make, message = BAD_INPUTS[case]
    answers = make(site, tmp_path)
    before = snapshot(tmp_path)

    with pytest.raises(ProvisionError) as refused:
        provision(answers, config_path, probe=False)

    assert any(message in problem for problem in refused.value.problems), refused.value.problems
    assert snapshot(tmp_path) == before


def test_every_problem_is_reported_at_once(site: Site, tmp_path: Path) -> None:
    answers = answers_for(site, tmp_path, pin="1234", backoffice_url="ftp://x",
                          kiosk_id="a b", qr_keys={"k": "!"})
    with pytest.raises(ProvisionError) as refused:
        provision(answers, tmp_path / "kiosk.toml", probe=False)
    problems = "\n".join(refused.value.problems)
    for fragment in ("6 to 12 digits", "back-office URL", "kiosk.id", "QR key 'k'"):
        assert fragment in problems
    assert not (tmp_path / "kiosk.toml").exists() and not (tmp_path / "data").exists()


def test_a_new_kiosk_needs_its_identity_and_a_pin(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError) as refused:
        provision(Answers(), tmp_path / "kiosk.toml", probe=False)
    assert refused.value.problems == [
        "kiosk.id is not set: give --kiosk-id",
        "kiosk.centre_id is not set: give --centre-id",
        "backoffice.url is not set: give --backoffice-url",
        "no maintenance PIN: give one (--pin-stdin, the prompt, or maintenance_pin in the "
        "answers file)",
    ]
    assert list(tmp_path.iterdir()) == []


# --- PIN --------------------------------------------------------------------------------------


def test_pin_hash_at_full_cost() -> None:
    encoded = hash_pin(PIN)
    assert encoded.startswith("$scrypt$ln=17,r=8,p=1$")
    assert verify_pin(PIN, encoded)
    assert not verify_pin("418208", encoded)
    assert hash_pin(PIN, log2_n=10) != hash_pin(PIN, log2_n=10)  # salted


def test_pin_hash_rejects_malformed_and_clear_pins(tmp_path: Path) -> None:
    assert not verify_pin(PIN, PIN)
    assert not verify_pin(PIN, "$scrypt$ln=10,r=8,p=1$!!$!!")
    path = tmp_path / "kiosk.toml"
    path.write_text('[kiosk]\nid = "a"\ncentre_id = "b"\n[backoffice]\nurl = "http://x"\n'
                    f'[maintenance]\npin_hash = "{PIN}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "maintenance.pin_hash: must be a PIN hash" in str(error.value)
    assert PIN not in str(error.value)


@pytest.mark.parametrize("pin", ["12345", "1234567890123", "12a456", "000000", "123456",
                                 "987654", "４１８２０７"])
def test_guessable_or_malformed_pins_are_refused(pin: str) -> None:
    with pytest.raises(ValueError):
        check_pin(pin)


def test_reasonable_pins_pass() -> None:
    for pin in (PIN, "100200", "975310", "2109871"):
        check_pin(pin)


# --- ownership --------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_secrets_belong_to_the_kiosk_user(site: Site, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    config_path = tmp_path / "etc" / "kiosk.toml"
    report = provision(answers_for(site, tmp_path), config_path, user="nobody", probe=False)
    for path in (tmp_path / "etc/tls/client.key", tmp_path / "data/outbox.key",
                 tmp_path / "data"):
        assert path.stat().st_uid == nobody.pw_uid, path
    assert (tmp_path / "etc/tls/ca.pem").stat().st_uid == 0
    assert config_path.stat().st_uid == 0 and config_path.stat().st_gid == nobody.pw_gid
    assert "owned by nobody" in "\n".join(report.summary)
    # Re-provisioning as root accepts the key that now belongs to the kiosk user.
    provision(Answers(centre_name="x"), config_path, user="nobody", probe=False)


# --- inputs -----------------------------------------------------------------------------------


def test_answers_file_paths_are_relative_to_it(site: Site, tmp_path: Path) -> None:
    answers_file = site.write("answers.toml", f"""
kiosk_id = "ZZ-530102-002"
centre_id = "530102-01"
backoffice_url = "https://bo.example.cn"
ca_file = "ca.pem"
client_cert = "kiosk.crt"
client_key = "kiosk.key"
maintenance_pin = "{PIN}"

[qr_keys]
kab12cd3 = "{site.qr_key}"

[devices.barcode]
driver = "serial"
port = "/dev/null"
""".encode())
    answers = read_answers(answers_file)
    assert answers.ca_file == site.ca_file and answers.client_key == site.client_key
    assert answers.devices == {"barcode": {"driver": "serial", "port": "/dev/null"}}
    report = provision(answers.overridden_by(Answers(data_dir=tmp_path / "d")),
                       tmp_path / "kiosk.toml", probe=False)
    config = load_config(tmp_path / "kiosk.toml")
    assert config.kiosk.id == "ZZ-530102-002" and config.devices["barcode"].driver == "serial"
    assert any("holds the maintenance PIN in clear" in w for w in report.warnings)


def test_display_settings_from_the_answers_file_and_the_command_line(
        site: Site, tmp_path: Path) -> None:
    """What `kiosk screen` reads before cage starts: written to [display], shown in the
    summary, and a later run that does not mention them keeps them."""
    answers_file = site.write("answers.toml", b'rotation = 270\nrenderer = "pixman"\n')
    config_path = tmp_path / "kiosk.toml"
    report = provision(answers_for(site, tmp_path).overridden_by(read_answers(answers_file)),
                       config_path, probe=False)
    assert load_config(config_path).display.model_dump() == {"rotation": 270,
                                                              "renderer": "pixman"}
    assert "display     rotation 270 (degrees clockwise), renderer pixman" in report.summary
    report = provision(Answers(rotation=90), config_path, probe=False)
    assert load_config(config_path).display.model_dump() == {"rotation": 90,
                                                              "renderer": "pixman"}
    from kiosk.compositor import display_settings

    assert display_settings(config_path)[0].rotation == 90  # the launcher reads the same


def test_a_new_config_shows_the_display_defaults(site: Site, tmp_path: Path) -> None:
    report = provision(answers_for(site, tmp_path), tmp_path / "kiosk.toml", probe=False)
    assert ("display     rotation 0 (degrees clockwise), renderer auto (by the GPU's driver "
            "at each start)") in report.summary
    assert "[display]" not in (tmp_path / "kiosk.toml").read_text()  # defaults stay implicit


@pytest.mark.parametrize(("line", "message"), [
    ('rotation = "90"', "rotation must be an integer"),
    ("rotation = true", "rotation must be an integer"),
    ("renderer = 2", "renderer must be a string"),
])
def test_answers_file_display_keys_have_types(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "answers.toml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ProvisionError) as refused:
        read_answers(path)
    assert message in str(refused.value)


def test_cli_rotation_and_renderer(site: Site, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "kiosk.toml"
    provision(answers_for(site, tmp_path), config_path, probe=False)
    assert cli.main(["provision", "--config", str(config_path), "--offline",
                     "--rotation", "180", "--renderer", "gles2"]) == 0
    assert "rotation 180 (degrees clockwise), renderer gles2" in capsys.readouterr().out
    assert load_config(config_path).display.model_dump() == {"rotation": 180,
                                                              "renderer": "gles2"}
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit):  # argparse's own refusal, before anything is read
        cli.main(["provision", "--config", str(config_path), "--rotation", "45"])
    assert "invalid choice: 45" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_answers_file_with_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "answers.toml"
    path.write_text('kiosk-id = "x"\n', encoding="utf-8")
    with pytest.raises(ProvisionError) as refused:
        read_answers(path)
    assert "unknown key 'kiosk-id'" in str(refused.value)


def test_device_option_syntax() -> None:
    assert parse_device("receipt_printer=escpos,port=/dev/ttyUSB1,baudrate=115200,cut=false") \
        == ("receipt_printer", {"driver": "escpos", "port": "/dev/ttyUSB1",
                                "baudrate": 115200, "cut": False})
    for bad in ("receipt_printer", "receipt_printer=", "=sim", "camera=sim,fps"):
        with pytest.raises(ValueError):
            parse_device(bad)


def test_missing_port_is_a_warning(site: Site, tmp_path: Path) -> None:
    answers = answers_for(site, tmp_path, devices={
        "barcode": {"driver": "serial", "port": "/dev/zizhu-no-such-scanner"}})
    report = provision(answers, tmp_path / "kiosk.toml", probe=False)
    assert any("/dev/zizhu-no-such-scanner does not exist" in w for w in report.warnings)


# --- the command line -------------------------------------------------------------------------


def test_cli_provision_reads_the_pin_from_stdin(site: Site, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "kiosk.toml"
    argv = ["provision", "--config", str(config_path), "--kiosk-id", "ZZ-1",
            "--centre-id", "C-1", "--backoffice-url", "https://bo.example.cn",
            "--ca-file", str(site.ca_file), "--client-cert", str(site.client_cert),
            "--client-key", str(site.client_key), "--qr-key", f"k1={site.qr_key}",
            "--device", "camera=sim,fps=10.0", "--data-dir", str(tmp_path / "data"),
            "--offline", "--pin-stdin"]
    monkeypatch.setattr("sys.stdin", io.StringIO(PIN + "\n"))
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "provisioned:" in out and "ZZ-1 at C-1" in out and PIN not in out
    assert load_config(config_path).maintenance.verify_pin(PIN)

    before = snapshot(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("111111\n"))
    assert cli.main(["provision", "--config", str(config_path), "--pin-stdin", "--offline",
                     "--backoffice-url", "gopher://x"]) == 2
    err = capsys.readouterr().err
    assert "provisioning refused, nothing was changed:" in err
    assert "  - the maintenance PIN is too easy to guess" in err and "  - back-office URL" in err
    assert snapshot(tmp_path) == before


# --- atomic writes ----------------------------------------------------------------------------


def test_write_atomically_replaces_by_rename_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    assert write_atomically(path, b"one", 0o600)
    inode = path.stat().st_ino
    assert write_atomically(path, b"two", 0o640)
    assert path.read_bytes() == b"two" and path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert (tmp_path / "f.txt.bak").read_bytes() == b"one"
    assert stat.S_IMODE((tmp_path / "f.txt.bak").stat().st_mode) == 0o600
    assert not write_atomically(path, b"two", 0o640)  # same content: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "f.txt.bak"]
