"""``kiosk provision``: make a kiosk this site's kiosk, in one command.

Run by the technician on first boot, or while building an image for a site. Every input is
checked before anything is written, and every problem is reported at once; bad input leaves
every file as it was. Then the files are written in an order that keeps the kiosk startable
at each step: the data folder, the TLS files, the outbox key, the config last, each one
atomically (temporary file in the same folder, fsync, rename) with the previous version kept
as ``<name>.bak``.

Secrets: the maintenance PIN is stored only as a salted scrypt hash; the client key and the
outbox key are written 0600 and, when run as root, owned by the kiosk user. Nothing secret is
printed: the summary names files, subjects, dates and fingerprints.

The config is edited with tomlkit, so a technician's comments in an existing file (or in the
template given with ``--from``) survive re-provisioning.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import importlib
import inspect
import os
import pwd
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from flows.appointment_code import KEY_ID, public_key_from_base64
from kiosk.config import (
    DEVICE_NAMES,
    BackOfficeSection,
    ConfigError,
    KioskConfig,
    hash_pin,
    load_config,
)
from kiosk.drivers import DRIVERS, check_drivers
from kiosk.durable import write_atomically

DEFAULT_USER = "kiosk"
PROBE_TIMEOUT_S = 3.0
CERT_WARN_DAYS = 30
ORIENTATIONS = ("landscape", "portrait")
ROTATIONS = (0, 90, 180, 270)
RENDERERS = ("auto", "gles2", "pixman")
TLS_NAMES = {"ca_file": "ca.pem", "client_cert": "client.pem", "client_key": "client.key"}
PIN_DIGITS = (6, 12)

_SEQUENCE = "0123456789012345678901"
_REPORTED_MISSING = re.compile(r"(kiosk|backoffice)(\.(id|centre_id|url))?: field required$")


class ProvisionError(Exception):
    """Provisioning refused; nothing was changed. ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[str], warnings: Sequence[str] = ()) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        self.warnings = list(warnings)


@dataclass
class Answers:
    """What the technician gives, from the command line and/or an answers file. ``None`` (or
    an empty collection) keeps what the existing config says."""

    kiosk_id: str | None = None
    centre_id: str | None = None
    centre_name: str | None = None
    backoffice_url: str | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    qr_keys: dict[str, str] = field(default_factory=dict)
    drop_qr_keys: list[str] = field(default_factory=list)
    pin: str | None = field(default=None, repr=False)
    orientation: str | None = None
    rotation: int | None = None
    renderer: str | None = None
    data_dir: Path | None = None
    outbox_key: Path | None = None
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    drop_devices: list[str] = field(default_factory=list)
    # Set when the PIN came from a file on disk (the answers file): worth a warning.
    pin_in_clear_file: Path | None = field(default=None, repr=False)

    def overridden_by(self, other: Answers) -> Answers:
        """These answers with every value ``other`` sets replacing ours (command line over
        answers file); mappings are merged key by key, lists joined."""
        merged = Answers()
        for name in Answers.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, dict):
                value: object = {**mine, **theirs}
            elif isinstance(mine, list):
                value = [*mine, *theirs]
            else:
                value = theirs if theirs is not None else mine
            setattr(merged, name, value)
        return merged


_ANSWER_KEYS = {
    "kiosk_id": str, "centre_id": str, "centre_name": str, "backoffice_url": str,
    "ca_file": Path, "client_cert": Path, "client_key": Path, "orientation": str,
    "rotation": int, "renderer": str, "data_dir": Path, "outbox_key": Path, "maintenance_pin": str, "qr_keys": dict,
    "devices": dict,
}


def read_answers(path: Path) -> Answers:
    """An answers file: TOML with the keys of :data:`_ANSWER_KEYS` (``[qr_keys]`` id = base64,
    ``[devices.<name>]`` as in the config). Relative paths are taken against the file's folder,
    so a USB stick with the answers and the certificates works wherever it is mounted."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ProvisionError([f"answers file {path}: cannot read it: {e.strerror or e}"]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ProvisionError([f"answers file {path}: not valid TOML: {e}"]) from None
    problems = []
    for key, value in data.items():
        kind = _ANSWER_KEYS.get(key)
        if kind is None:
            problems.append(f"answers file {path}: unknown key {key!r} "
                            f"(allowed: {', '.join(_ANSWER_KEYS)})")
        elif not isinstance(value, str if kind is Path else kind) or (
                kind is int and isinstance(value, bool)):
            what = {dict: "a table", int: "an integer"}.get(kind, "a string")
            problems.append(f"answers file {path}: {key} must be {what}")
    for name, table in (data.get("devices") or {}).items():
        if not isinstance(table, dict):
            problems.append(f"answers file {path}: devices.{name} must be a table")
    if problems:
        raise ProvisionError(problems)
    base = Path(path).resolve().parent
    answers = Answers(**{k: (base / Path(v).expanduser() if _ANSWER_KEYS[k] is Path else v)
                         for k, v in data.items()
                         if k not in ("maintenance_pin", "qr_keys", "devices")})
    answers.qr_keys = dict(data.get("qr_keys", {}))
    answers.devices = {name: dict(table) for name, table in data.get("devices", {}).items()}
    if "maintenance_pin" in data:
        answers.pin = data["maintenance_pin"]
        answers.pin_in_clear_file = Path(path)
    return answers


def parse_device(spec: str) -> tuple[str, dict[str, Any]]:
    """``receipt_printer=escpos,port=/dev/ttyUSB1,baudrate=115200`` -> (name, table). Values
    are read as TOML values (numbers, true/false) where they parse, else kept as text."""
    name, sep, rest = spec.partition("=")
    parts = [p.strip() for p in rest.split(",")] if sep else []
    if not name.strip() or not parts or not parts[0] or "=" in parts[0]:
        raise ValueError(f"--device {spec!r}: expected NAME=DRIVER[,setting=value...]")
    table: dict[str, Any] = {"driver": parts[0]}
    for part in parts[1:]:
        key, sep, text = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--device {spec!r}: {part!r} is not setting=value")
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        table[key.strip()] = value
    return name.strip(), table


def check_pin(pin: str) -> None:
    """A PIN a passer-by will not guess from the screen: 6-12 digits, not one digit repeated
    and not a run such as 123456 or 987654."""
    low, high = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise ValueError(f"the maintenance PIN must be {low} to {high} digits")
    if len(set(pin)) == 1 or pin in _SEQUENCE or pin in _SEQUENCE[::-1]:
        raise ValueError("the maintenance PIN is too easy to guess (a repeated digit or a run)")


# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """Checked TLS material, re-encoded as the PEM the kiosk will read."""

    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None
    lines: tuple[str, ...]  # for the summary: subjects, dates, fingerprints; no secret


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def _load_certs(path: Path, what: str, problems: list[str]) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(f"{what} {path}: cannot read it: {e.strerror or e}")
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        problems.append(f"{what} {path}: no PEM or DER certificate in it")
        return []


def _load_key(path: Path, problems: list[str]) -> PrivateKeyTypes | None:
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(f"client key {path}: cannot read it: {e.strerror or e}")
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problems.append(f"client key {path}: it is encrypted; the kiosk starts unattended and "
                        "cannot type a passphrase (decrypt it: openssl pkey -in KEY -out NEW)")
    except (ValueError, serialization.UnsupportedAlgorithm):
        problems.append(f"client key {path}: no PEM private key in it")
    return None


def _check_dates(cert: x509.Certificate, what: str, now: dt.datetime,
                 problems: list[str], warnings: list[str]) -> None:
    if now < cert.not_valid_before_utc:
        problems.append(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
                        "UTC (is the clock right?)")
    elif now > cert.not_valid_after_utc:
        problems.append(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    elif cert.not_valid_after_utc - now < dt.timedelta(days=CERT_WARN_DAYS):
        warnings.append(f"{what} expires on {cert.not_valid_after_utc:%Y-%m-%d}, in less than "
                        f"{CERT_WARN_DAYS} days")


def _verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                  roots: list[x509.Certificate], now: dt.datetime) -> str | None:
    """None when ``leaf`` chains to one of ``roots``, else why not. The Web PKI profile's
    extension rules (SAN required, key usage on every CA) are relaxed to what OpenSSL, which
    does the real handshakes, requires: a centre's private CA rarely follows them."""
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
    verifier = (verification.PolicyBuilder().store(verification.Store(roots)).time(now)
                .extension_policies(ca_policy=ca_policy,
                                    ee_policy=verification.ExtensionPolicy.permit_all())
                .build_client_verifier())
    try:
        verifier.verify(leaf, intermediates)
    except verification.VerificationError as e:
        return re.sub(r"\s*\(encountered processing .*\)$", "", str(e))
    return None


def check_tls(ca_file: Path | None, client_cert: Path | None, client_key: Path | None,
              now: dt.datetime, problems: list[str], warnings: list[str]) -> TlsFiles:
    """Check the CA bundle, the client certificate's chain to it, its dates and purpose, and
    that the key is the certificate's. Problems and warnings are appended."""
    lines: list[str] = []
    pem = serialization.Encoding.PEM
    roots: list[x509.Certificate] = []
    ca_pem = cert_pem = key_pem = None
    if ca_file is not None:
        roots = _load_certs(ca_file, "CA file", problems)
        for cert in roots:
            _check_dates(cert, f"CA certificate {cert.subject.rfc4514_string()}", now,
                         problems, warnings)
        if roots:
            ca_pem = b"".join(c.public_bytes(pem) for c in roots)
            lines.append("CA " + "; ".join(f"{c.subject.rfc4514_string()} "
                                           f"(sha256 {_fingerprint(c)})" for c in roots))
    if client_key is not None and client_cert is None:
        problems.append("a client key was given without its client certificate")
    if client_cert is None:
        return TlsFiles(ca_pem, None, None, tuple(lines))

    chain = _load_certs(client_cert, "client certificate", problems)
    key = _load_key(client_key or client_cert, problems)
    if not chain:
        return TlsFiles(ca_pem, None, None, tuple(lines))
    leaf, intermediates = chain[0], chain[1:]
    what = f"client certificate {leaf.subject.rfc4514_string()}"
    _check_dates(leaf, what, now, problems, warnings)
    with contextlib.suppress(x509.ExtensionNotFound):
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            problems.append(f"{what} is not for client authentication (extended key usage "
                            "lacks clientAuth); the back office will refuse it")
    if roots:
        why = _verify_chain(leaf, intermediates, roots, now)
        if why is not None:
            problems.append(f"{what} does not chain to the CA file {ca_file}: {why}")
    else:
        warnings.append(f"{what}: no CA file given, so its chain was not checked")
    if key is not None:
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
            problems.append(f"the client key {client_key or client_cert} is not the key of {what}")
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    cert_pem = b"".join(c.public_bytes(pem) for c in chain)
    lines.append(f"client {leaf.subject.rfc4514_string()}, valid until "
                 f"{leaf.not_valid_after_utc:%Y-%m-%d} (sha256 {_fingerprint(leaf)})")
    return TlsFiles(ca_pem, cert_pem, key_pem, tuple(lines))


# --- the back office --------------------------------------------------------------------------


def probe_backoffice(url: str, ca_file: Path | None, client_cert: Path | None,
                     client_key: Path | None, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url`` answers over HTTP(S) with these TLS settings (any status: the server
    is there), else a one-line reason. An offline site is normal at provisioning time."""
    from kiosk.client import BackOfficeConfigError, TlsSettings

    verify: Any = True
    if url.startswith("https://"):
        try:
            verify = TlsSettings(ca_file, client_cert, client_key).context()
        except BackOfficeConfigError as e:
            return str(e)
    try:
        with httpx.Client(verify=verify, timeout=timeout_s, follow_redirects=False) as client:
            client.get(url)
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except httpx.HTTPError as e:
        reason = str(e) or type(e).__name__
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
            return f"TLS: the server's certificate does not verify against the CA file ({reason})"
        return reason
    return None


# --- ownership and atomic files ---------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Who the kiosk runs as: its secrets belong to it."""

    name: str
    uid: int
    gid: int


def kiosk_owner(user: str, warnings: list[str]) -> Owner | None:
    """The kiosk user when running as root and it exists; None leaves files to the caller
    (a developer provisioning a test kiosk as themselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        warnings.append(f"user {user!r} does not exist: the keys stay owned by root, and a kiosk "
                        f"running as {user!r} will not be able to read them")
        return None
    return Owner(user, entry.pw_uid, entry.pw_gid)


# --- the outbox key ---------------------------------------------------------------------------


def _outbox_key_problem(path: Path, owner: Owner | None) -> str | None:
    """Why an existing outbox key cannot be kept, or None. It is never replaced: that would
    make every waiting application unreadable."""
    from kiosk.outbox.crypto import KEY_BYTES, OutboxKeyError, load_key

    try:
        info = path.lstat()
    except OSError as e:
        return f"outbox key {path}: {e.strerror or e}"
    expected_uid = owner.uid if owner else os.geteuid()
    if info.st_uid == os.geteuid() == expected_uid:
        try:
            load_key(path)  # the outbox's own checks: mode, owner, content
        except OutboxKeyError as e:
            return str(e)
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"outbox key {path} is not a regular file"
    if info.st_mode & 0o077:
        return f"outbox key {path} has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0600"
    if info.st_uid != expected_uid:
        return (f"outbox key {path} belongs to uid {info.st_uid}, not to the kiosk user "
                f"(chown {owner.name if owner else os.geteuid()} {path})")
    try:
        key = base64.urlsafe_b64decode(path.read_bytes().strip())
    except (OSError, binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        return f"outbox key {path} does not hold a {KEY_BYTES}-byte key"
    return None


def _create_outbox_key(path: Path, owner: Owner | None) -> None:
    from kiosk.outbox.crypto import create_key

    create_key(path)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)


# --- the config document ----------------------------------------------------------------------


def _table(doc: TOMLDocument | Table, *names: str) -> Table:
    """The table at ``names``, created (with any missing parents) when absent."""
    node: Any = doc
    for i, name in enumerate(names):
        if name not in node:
            node[name] = tomlkit.table(is_super_table=i < len(names) - 1)
        node = node[name]
    return node


def _set_device(doc: TOMLDocument, name: str, settings: Mapping[str, Any]) -> None:
    # Keys are replaced one by one rather than the table as a whole, so the comments that
    # document the driver's settings stay in place.
    table = _table(doc, "devices", name)
    for key in [k for k in table if k not in settings]:
        del table[key]
    for key, value in settings.items():
        table[key] = value


def _device_problems(name: str, settings: Mapping[str, Any], problems: list[str],
                     warnings: list[str]) -> None:
    if name not in DEVICE_NAMES:
        problems.append(f"device {name!r}: unknown (allowed: {', '.join(DEVICE_NAMES)})")
        return
    driver = settings.get("driver")
    known = DRIVERS[name]
    if not isinstance(driver, str) or driver not in known:
        problems.append(f"devices.{name}.driver: unknown driver {driver!r} "
                        f"(known: {', '.join(known)})")
        return
    module, cls = known[driver].split(":")
    try:
        params = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
    except Exception as e:  # a driver whose library is missing here: check it on the kiosk
        warnings.append(f"devices.{name}: the {driver!r} driver cannot be loaded here ({e}); "
                        "its settings were not checked")
        params = None
    takes_any = params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                      for p in params.values())
    for key, value in settings.items():
        if key in ("driver", "enabled"):
            continue
        if not takes_any and params is not None and key not in params:
            problems.append(f"devices.{name}.{key}: not a setting of the {driver!r} driver")
        if isinstance(value, str) and value.startswith("/dev/") and not Path(value).exists():
            warnings.append(f"devices.{name}.{key}: {value} does not exist (not plugged in?)")


def _set_display(doc: TOMLDocument, answers: Answers, problems: list[str]) -> None:
    """``[display]``: the launcher (kiosk screen) reads it before cage starts."""
    if answers.rotation is not None:
        if isinstance(answers.rotation, bool) or answers.rotation not in ROTATIONS:
            problems.append(f"rotation must be one of {', '.join(map(str, ROTATIONS))} "
                            f"(degrees clockwise; got {answers.rotation!r})")
        else:
            _table(doc, "display")["rotation"] = answers.rotation
    if answers.renderer is not None:
        if answers.renderer not in RENDERERS:
            problems.append(f"renderer must be one of {', '.join(RENDERERS)} "
                            f"(got {answers.renderer!r})")
        else:
            _table(doc, "display")["renderer"] = answers.renderer


def _base_document(config_path: Path, template: Path | None,
                   problems: list[str]) -> tuple[TOMLDocument, bool]:
    """The document to edit, and whether a config exists already."""
    current: bytes | None = None
    with contextlib.suppress(FileNotFoundError):
        current = config_path.read_bytes()
    source, text = template, None
    if template is not None:
        try:
            text = template.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"template {template}: cannot read it: {e}")
    elif current is not None:
        source = config_path
        try:
            text = current.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"existing config {config_path} is not UTF-8 text; "
                            "start from a template with --from")
    if text is None:
        return tomlkit.document(), current is not None
    try:
        return tomlkit.parse(text), current is not None
    except tomlkit.exceptions.ParseError as e:
        problems.append(f"{source}: not valid TOML ({e}); fix it or start over with --from")
        return tomlkit.document(), current is not None


def _validate_text(text: str, config_path: Path, problems: list[str]) -> KioskConfig | None:
    """Load the rendered config exactly as the kiosk will, from a scratch file elsewhere."""
    with tempfile.TemporaryDirectory(prefix="zizhu-provision-") as scratch:
        path = Path(scratch) / config_path.name
        path.write_text(text, encoding="utf-8")
        try:
            config = load_config(path)
            check_drivers(config)
        except ConfigError as e:
            # The lines are those of a file not yet written: name the key only.
            problems.extend(re.sub(rf"^{re.escape(str(path))}:\d+(:\d+)?: ", "", line)
                            for line in str(e).splitlines())
            return None
    return config


# --- the whole command ------------------------------------------------------------------------


@dataclass
class Report:
    """What was done, for the technician: no secrets."""

    summary: list[str]
    warnings: list[str]


@dataclass
class _Plan:
    config_path: Path
    config_text: str
    owner: Owner | None
    data_dir: Path
    tls_dir: Path
    tls_files: dict[str, bytes]  # config key -> content
    outbox_key: Path
    create_outbox_key: bool
    summary: list[str]
    warnings: list[str]
    replaces: bool  # a config was there before: it is kept as .bak


def _plan(answers: Answers, config_path: Path, template: Path | None, user: str,
          tls_dir: Path | None, probe: bool, probe_timeout_s: float,
          now: dt.datetime) -> _Plan:
    problems: list[str] = []
    warnings: list[str] = []
    summary: list[str] = []
    owner = kiosk_owner(user, warnings)
    doc, existed = _base_document(config_path, template, problems)
    kiosk, backoffice = _table(doc, "kiosk"), _table(doc, "backoffice")

    for key, value in (("id", answers.kiosk_id), ("centre_id", answers.centre_id),
                       ("centre_name", answers.centre_name),
                       ("orientation", answers.orientation)):
        if value is not None:
            kiosk[key] = value
    for key, option in (("id", "--kiosk-id"), ("centre_id", "--centre-id")):
        if key not in kiosk:
            problems.append(f"kiosk.{key} is not set: give {option}")
    if answers.orientation is not None and answers.orientation not in ORIENTATIONS:
        problems.append(f"orientation must be one of {', '.join(ORIENTATIONS)} "
                        f"(got {answers.orientation!r})")
    if answers.data_dir is not None:
        kiosk["data_dir"] = str(answers.data_dir.expanduser().resolve())
    _set_display(doc, answers, problems)

    url = answers.backoffice_url
    if url is not None:
        try:
            url = BackOfficeSection.model_validate({"url": url}).url
            backoffice["url"] = url
        except ValidationError as e:
            problems.append(f"back-office URL: {e.errors()[0]['ctx']['error']}"
                            if e.errors()[0].get("ctx") else f"back-office URL: {e}")
            url = None
    elif "url" not in backoffice:
        problems.append("backoffice.url is not set: give --backoffice-url")

    tls = check_tls(answers.ca_file, answers.client_cert, answers.client_key, now,
                    problems, warnings)
    tls_dir = Path(tls_dir) if tls_dir else config_path.parent / "tls"
    tls_files: dict[str, bytes] = {}
    for key, content in (("ca_file", tls.ca_pem), ("client_cert", tls.cert_pem),
                         ("client_key", tls.key_pem)):
        if content is not None:
            tls_files[key] = content
            backoffice[key] = str((tls_dir / TLS_NAMES[key]).resolve())
    summary.extend(f"TLS         {line}" for line in tls.lines)
    if not tls.lines:
        summary.append("TLS         unchanged" if "ca_file" in backoffice
                       or "client_cert" in backoffice else "TLS         none (system CAs)")

    keys = _table(doc, "appointment_codes", "keys")
    for key_id in answers.drop_qr_keys:
        if key_id not in keys:
            warnings.append(f"QR key {key_id!r} was not listed; nothing to remove")
        else:
            del keys[key_id]
    for key_id, text in answers.qr_keys.items():
        if not KEY_ID.fullmatch(key_id):
            problems.append(f"QR key id {key_id!r}: must be 1..16 of A-Z a-z 0-9 _ -")
            continue
        try:
            public_key_from_base64(text)
        except ValueError as e:
            problems.append(f"QR key {key_id!r}: {e}")
            continue
        keys[key_id] = text.strip()
    summary.append("QR keys     " + (", ".join(keys) if keys else "none (signed codes refused)"))

    for name in answers.drop_devices:
        if name in doc.get("devices", {}):
            del doc["devices"][name]
    for name, settings in answers.devices.items():
        _device_problems(name, settings, problems, warnings)
        if name in DEVICE_NAMES:
            _set_device(doc, name, settings)

    pin_hash_needed = False
    if answers.pin is not None:
        try:
            check_pin(answers.pin)
            pin_hash_needed = True
        except ValueError as e:
            problems.append(str(e))
        if answers.pin_in_clear_file is not None:
            warnings.append(f"the answers file {answers.pin_in_clear_file} holds the maintenance "
                            "PIN in clear: delete it or keep it locked away")
    elif "pin_hash" not in doc.get("maintenance", {}):
        problems.append("no maintenance PIN: give one (--pin-stdin, the prompt, or "
                        "maintenance_pin in the answers file)")

    if answers.outbox_key is not None:
        _table(doc, "outbox")["key_file"] = str(answers.outbox_key.expanduser().resolve())

    # Everything else the kiosk would refuse, in the same run; the missing keys reported
    # above with the option that sets them are not reported twice.
    config_problems: list[str] = []
    config = _validate_text(tomlkit.dumps(doc), config_path, config_problems)
    problems.extend(line for line in config_problems if not _REPORTED_MISSING.match(line))
    if problems or config is None:
        raise ProvisionError(problems, warnings)
    if pin_hash_needed:  # last: it takes a second, and only a sound config deserves it
        assert answers.pin is not None
        _table(doc, "maintenance")["pin_hash"] = hash_pin(answers.pin)
    summary.append("PIN         " + ("set (salted scrypt hash)" if pin_hash_needed
                                     else "unchanged"))
    text = tomlkit.dumps(doc)
    outbox_key = config.outbox_key_file
    create = not outbox_key.exists() and not outbox_key.is_symlink()
    if not create:
        problem = _outbox_key_problem(outbox_key, owner)
        if problem:
            raise ProvisionError([problem + " (it is never replaced: waiting applications "
                                            "would become unreadable)"], warnings)
    if probe:
        # The files given now (not yet copied), else those the config already names.
        bo = config.backoffice
        ca = answers.ca_file if answers.ca_file is not None else bo.ca_file
        cert, key = ((answers.client_cert, answers.client_key) if answers.client_cert
                     else (bo.client_cert, bo.client_key))
        reason = probe_backoffice(bo.url, ca, cert, key, probe_timeout_s)
        if reason is None:
            summary.insert(0, f"back office {config.backoffice.url} (reachable)")
        else:
            summary.insert(0, f"back office {config.backoffice.url} (NOT reachable now)")
            warnings.append(f"back office {config.backoffice.url} not reachable: {reason}; "
                            "saved anyway, the kiosk keeps trying")
    else:
        summary.insert(0, f"back office {config.backoffice.url} (not checked: --offline)")
    k = config.kiosk
    summary.insert(0, f"kiosk       {k.id} at {k.centre_id}"
                      + (f" {k.centre_name}" if k.centre_name else "")
                      + f", {k.orientation}, data in {k.data_dir}")
    display = config.display
    summary.insert(1, f"display     rotation {display.rotation} (degrees clockwise), renderer "
                      f"{display.renderer}" + (" (by the GPU's driver at each start)"
                                               if display.renderer == "auto" else ""))
    devices = ", ".join(f"{n}={d.driver}" + ("" if d.enabled else " (disabled)")
                        for n, d in config.devices.items())
    summary.append(f"devices     {devices or 'none'}")
    summary.append(f"outbox key  {outbox_key} ({'created' if create else 'kept'}"
                   + (f", owned by {owner.name})" if owner else ")"))
    return _Plan(config_path, text, owner, k.data_dir, tls_dir, tls_files, outbox_key, create,
                 summary, warnings, existed)


def _apply(plan: _Plan) -> bool:
    """Write everything; True when the config file itself changed."""
    uid, gid = (plan.owner.uid, plan.owner.gid) if plan.owner else (-1, -1)
    if not plan.data_dir.exists():
        plan.data_dir.mkdir(parents=True, mode=0o750)
        if plan.owner:
            os.chown(plan.data_dir, uid, gid)
    if plan.tls_files:
        plan.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    for key, content in plan.tls_files.items():
        secret = key == "client_key"
        write_atomically(plan.tls_dir / TLS_NAMES[key], content, 0o600 if secret else 0o644,
                         uid=uid if secret else -1, gid=gid if secret else -1)
    if plan.create_outbox_key:
        _create_outbox_key(plan.outbox_key, plan.owner)
    plan.config_path.parent.mkdir(parents=True, exist_ok=True)
    # Group kiosk may read it (the PIN hash is salted and slow, still no business of others).
    return write_atomically(plan.config_path, plan.config_text.encode("utf-8"), 0o640, gid=gid)


def provision(answers: Answers, config_path: Path, *, template: Path | None = None,
              user: str = DEFAULT_USER, tls_dir: Path | None = None, probe: bool = True,
              probe_timeout_s: float = PROBE_TIMEOUT_S,
              now: dt.datetime | None = None) -> Report:
    """Check ``answers`` against what is there, then write the config, TLS files and outbox
    key. Raises :class:`ProvisionError` (nothing written) on any problem."""
    config_path = Path(config_path).expanduser().absolute()
    plan = _plan(answers, config_path, template, user, tls_dir, probe, probe_timeout_s,
                 now or dt.datetime.now(dt.UTC))
    changed = _apply(plan)
    try:
        written = load_config(config_path)  # what the kiosk will read, read back
        check_drivers(written)
    except ConfigError as e:  # only if the disk gave back something else than we wrote
        raise ProvisionError([f"the written config does not load: {e}"], plan.warnings) from None
    note = "" if not plan.replaces else \
        f" (previous kept as {config_path.name}.bak)" if changed else " (unchanged)"
    plan.summary.insert(0, f"config      {config_path}{note}")
    return Report(plan.summary, plan.warnings)


__all__ = [
    "Answers",
    "Owner",
    "ProvisionError",
    "Report",
    "check_pin",
    "check_tls",
    "parse_device",
    "probe_backoffice",
    "provision",
    "read_answers",
    "write_atomically",
]
