"""The kiosk's one configuration file: TOML, read with tomllib, validated with pydantic.

Technicians edit this file on the appliance, often over a serial console, so every error names
the file, the line and the dotted key (``demo.toml:14: devices.camera.driver: field required``)
and every wrong key is reported at once rather than one per restart.

tomllib keeps no positions, so :class:`_KeyLocator` re-reads the text to find the line of a
dotted key. It understands ``[table]`` headers and ``key = value`` lines; a key inside an inline
table or one that is missing falls back to the line of its nearest located parent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import tomllib
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flows.appointment_code import KEY_ID, public_key_from_base64

DEVICE_NAMES: tuple[str, ...] = (
    "id_card",
    "smart_card",
    "camera",
    "barcode",
    "receipt_printer",
    "document_printer",
)
DeviceName = Literal[
    "id_card", "smart_card", "camera", "barcode", "receipt_printer", "document_printer"
]

SCREEN_SIZES: dict[str, tuple[int, int]] = {
    "landscape": (1920, 1080),
    "portrait": (1080, 1920),
}

_KIOSK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DB_URL = re.compile(r"[A-Za-z][A-Za-z0-9+]*://")


class ConfigError(Exception):
    """The configuration cannot be used. ``str()`` is the message: one line per problem, each
    ``file:line: dotted.key: what is wrong``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Model(BaseModel):
    # strict: TOML already has types, so "true" for a bool or "5" for a number is a mistake
    # worth reporting, not something to coerce silently.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _cwd_path(value: object) -> Path:
    """A path from the file; relative ones are taken against the directory the kiosk is started
    in, resolved once at load so a later chdir cannot move the data."""
    if isinstance(value, Path):  # the field's own default; TOML only ever gives a str
        value = str(value)
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if not value.strip():
        raise ValueError("must not be empty")
    return (Path.cwd() / Path(value).expanduser()).resolve()


class KioskSection(_Model):
    """``[kiosk]``: who this terminal is and how it presents itself."""

    id: str = Field(description="Terminal id shown on receipts and sent to the back office; "
                                "1..64 characters of A-Z a-z 0-9 - _.")
    centre_id: str = Field(min_length=1, max_length=64,
                           description="The service centre this kiosk stands in; appointments "
                                       "for other centres are refused.")
    centre_name: str = Field("", max_length=64,
                             description="The centre's name as citizens know it, shown on "
                                         "every screen; empty shows centre_id.")
    language: Literal["zh_CN", "en"] = Field(
        "zh_CN", description="Language of the start screen; citizens can switch per session.")
    orientation: Literal["landscape", "portrait"] = Field(
        "landscape", description="Screen mounting: landscape is 1920x1080, portrait 1080x1920.")
    fullscreen: bool = Field(True, description="Borderless full screen; false only for "
                                               "development on a desktop.")
    data_dir: Path = Field(Path("var/kiosk"), validate_default=True,
                           description="Where the kiosk keeps its database and spool; relative "
                                       "paths resolve against the start directory.")
    timezone: str = Field("Asia/Shanghai", description="IANA zone for appointment dates and "
                                                       "printed times.")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _KIOSK_ID.fullmatch(value):
            raise ValueError(f"must be 1..64 characters of A-Z a-z 0-9 - _ (got {value!r})")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _resolve_data_dir(cls, value: object) -> Path:
        return _cwd_path(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @property
    def screen_size(self) -> tuple[int, int]:
        """(width, height) in pixels for the configured orientation."""
        return SCREEN_SIZES[self.orientation]

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def centre_label(self) -> str:
        """What screens call this centre: its name, or its id when no name is set."""
        return self.centre_name or self.centre_id

    def now(self) -> datetime:
        """The time here, in the kiosk's zone (appointment dates, printed times)."""
        return datetime.now(self.tz)


class BackOfficeSection(_Model):
    """``[backoffice]``: where applications, check-ins and tickets go."""

    url: str = Field(description="Base URL of the back-office API, http:// or https://; a "
                                 "trailing slash is removed.")
    timeout_s: float = Field(5.0, gt=0, le=60,
                             description="Per-request timeout; past it the kiosk reports the "
                                         "back office as unavailable.")
    embedded: bool = Field(False, description="Start the reference back office as a subprocess "
                                              "listening on the url's port (demo, tests).")
    database: str = Field("sqlite:///var/backoffice.db",
                          description="SQLAlchemy URL of the embedded back office's database; "
                                      "ignored unless embedded.")
    seed: Path | None = Field(None, description="JSON catalogue the embedded back office loads "
                                                "on first start; ignored unless embedded.")
    ca_file: Path | None = Field(None, description="PEM bundle the back office's certificate "
                                                   "must chain to; unset: the system's CAs.")
    client_cert: Path | None = Field(None, description="The kiosk's own certificate (PEM) for "
                                                       "mutual TLS; may hold its chain too.")
    client_key: Path | None = Field(None, description="The private key of client_cert (PEM, "
                                                      "unencrypted, mode 0600).")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
        try:
            _ = parts.port  # the property is what checks the port: a number, in range
        except ValueError:
            raise ValueError(f"has an invalid port (got {value!r})") from None
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a query or fragment (got {value!r})")
        return value.rstrip("/")

    @field_validator("embedded")
    @classmethod
    def _embedded_is_plain_http(cls, value: bool, info: ValidationInfo) -> bool:
        # The embedded server is started without certificates, so an https url could never
        # reach it; say so here rather than as a connection error at the first citizen.
        url = info.data.get("url")
        if value and isinstance(url, str) and urlsplit(url).scheme != "http":
            raise ValueError("the embedded back office serves plain http; use an http:// url")
        return value

    @field_validator("database")
    @classmethod
    def _check_database(cls, value: str) -> str:
        if not _DB_URL.match(value):
            raise ValueError(f"must be a database URL like sqlite:///var/backoffice.db "
                             f"(got {value!r})")
        return value

    @field_validator("seed", "ca_file", "client_cert", "client_key", mode="before")
    @classmethod
    def _resolve_optional_path(cls, value: object) -> Path | None:
        return None if value is None else _cwd_path(value)

    @model_validator(mode="after")
    def _check_tls(self) -> BackOfficeSection:
        if self.client_key is not None and self.client_cert is None:
            raise PydanticCustomError("located", "a client_key needs its client_cert",
                                      {"key": "client_key"})
        # Certificates configured for a plain-http url would be silently unused: the kiosk
        # would talk to the back office without the protection the technician set up.
        tls = [k for k in ("ca_file", "client_cert", "client_key") if getattr(self, k)]
        if tls and urlsplit(self.url).scheme != "https":
            raise PydanticCustomError(
                "located", "{settings} set, so the url must be https:// (got {url!r})",
                {"key": "url", "settings": " and ".join(tls), "url": self.url})
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The url's port, or the scheme's default: the embedded server listens here."""
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class TimeoutsSection(_Model):
    """``[timeouts]``: how long the kiosk waits for a citizen or a device, in seconds."""

    idle_s: int = Field(60, ge=10, le=600, description="Inactivity before the end-of-session "
                                                       "countdown starts.")
    countdown_s: int = Field(15, ge=3, le=60, description="Length of the visible countdown "
                                                          "before the session is dropped.")
    scan_s: float = Field(60, ge=5, le=600, description="Waiting for a QR code to be shown.")
    read_id_s: float = Field(60, ge=5, le=600, description="Waiting for an ID card or passport "
                                                            "to be placed and read.")
    print_s: float = Field(20, ge=1, le=300, description="One print job, start to finish.")
    take_s: float = Field(20, ge=3, le=300, description="Waiting for the citizen to take the "
                                                        "paper before alerting.")


def _check_key_id(value: str) -> str:
    if not KEY_ID.fullmatch(value):
        raise ValueError(f"key id must be 1..16 of A-Z a-z 0-9 _ - (got {value!r})")
    return value


def _check_public_key(value: str) -> str:
    public_key_from_base64(value)  # its ValueError says what is wrong
    return value


class AppointmentCodesSection(_Model):
    """``[appointment_codes]``: whose signed QR appointment codes this kiosk believes, and how
    long before and after its slot a code checks in (docs/appointment-code.md)."""

    keys: dict[Annotated[str, AfterValidator(_check_key_id)],
               Annotated[str, AfterValidator(_check_public_key)]] = Field(
        default_factory=dict,
        description="Key id -> the booking system's Ed25519 public key (raw 32 bytes, base64). "
                    "List the old and the new key together while a rotation rolls out; no "
                    "keys means every signed code is refused.")
    grace_before_min: int = Field(30, ge=0, le=720, description="Minutes before the slot's "
                                                                "start a code checks in.")
    grace_after_min: int = Field(30, ge=0, le=720, description="Minutes after the slot's end "
                                                               "a code still checks in.")

    @property
    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {key_id: public_key_from_base64(text) for key_id, text in self.keys.items()}

    @property
    def grace_before(self) -> timedelta:
        return timedelta(minutes=self.grace_before_min)

    @property
    def grace_after(self) -> timedelta:
        return timedelta(minutes=self.grace_after_min)


# Maintenance PIN hashes: "$scrypt$ln=17,r=8,p=1$<salt>$<hash>", the PHC string format with
# unpadded standard base64. scrypt from hashlib needs no extra dependency; N=2^17, r=8, p=1 is
# OWASP's first recommendation (128 MiB, about a second on a kiosk CPU): a six-digit PIN
# copied off a stolen disk still takes days per kiosk to find, and a technician waits once.
PIN_LOG2_N = 17
_PIN_HASH = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})"
                       r"\$([A-Za-z0-9+/]{22,})\$([A-Za-z0-9+/]{43,})")
_SCRYPT_SALT_BYTES = 16
_SCRYPT_HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=2 ** log2_n, r=r, p=p,
                          maxmem=2 * 128 * r * (2 ** log2_n + p), dklen=_SCRYPT_HASH_BYTES)


def hash_pin(pin: str, *, log2_n: int = PIN_LOG2_N) -> str:
    """The salted scrypt hash of ``pin`` to store as ``maintenance.pin_hash``."""
    salt = secrets.token_bytes(_SCRYPT_SALT_BYTES)
    digest = _scrypt(pin, salt, log2_n, 8, 1)
    return f"$scrypt$ln={log2_n},r=8,p=1${_b64(salt)}${_b64(digest)}"


def _parse_pin_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    m = _PIN_HASH.fullmatch(encoded)
    if m is None:
        raise ValueError("must be a PIN hash written by `kiosk provision` "
                         "($scrypt$ln=..,r=..,p=..$salt$hash), never the PIN itself")
    log2_n, r, p = (int(g) for g in m.group(1, 2, 3))
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError(f"scrypt parameters out of range (ln={log2_n}, r={r}, p={p})")
    try:
        salt, digest = _unb64(m.group(4)), _unb64(m.group(5))
    except (binascii.Error, ValueError):
        raise ValueError("salt or hash is not base64") from None
    return log2_n, r, p, salt, digest


def verify_pin(pin: str, encoded: str) -> bool:
    """True when ``pin`` is the PIN ``encoded`` was made from; False for a malformed hash."""
    try:
        log2_n, r, p, salt, digest = _parse_pin_hash(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(pin, salt, log2_n, r, p), digest)


def _check_pin_hash(value: str) -> str:
    _parse_pin_hash(value)  # its ValueError says what is wrong
    return value


ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)
RENDERERS: tuple[str, ...] = ("auto", "gles2", "pixman")


class DisplaySection(_Model):
    """``[display]``: how the compositor drives the panel. Read by ``kiosk screen`` before cage
    starts (a change takes effect when the kiosk restarts), so it lives in this file on the data
    partition rather than in a unit drop-in on the read-only root."""

    rotation: Literal[0, 90, 180, 270] = Field(
        0, description="Clockwise rotation of the picture in degrees, for a panel mounted "
                       "turned: a landscape panel standing upright shows kiosk.orientation = "
                       "\"portrait\" with 90 (or 270, by which way it was turned).")
    renderer: Literal["auto", "gles2", "pixman"] = Field(
        "auto", description="How cage draws: gles2 on the GPU, pixman on the CPU (a GPU that "
                            "Mesa has no driver for, where gles2 crashes); auto picks by the "
                            "GPU's kernel driver.")

    @field_validator("rotation", mode="before")
    @classmethod
    def _no_bool_rotation(cls, value: object) -> object:
        # TOML's true is Python's 1, and false would pass as 0 degrees.
        if isinstance(value, bool):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value


class MaintenanceSection(_Model):
    """``[maintenance]``: how technicians get into maintenance mode on the touch screen."""

    pin_hash: Annotated[str, AfterValidator(_check_pin_hash)] | None = Field(
        None, description="Salted scrypt hash of the maintenance PIN, written by `kiosk "
                          "provision`; unset: maintenance mode cannot be opened.")

    def verify_pin(self, pin: str) -> bool:
        """Takes about a second by design: call it off the UI thread."""
        return self.pin_hash is not None and verify_pin(pin, self.pin_hash)


class OutboxSection(_Model):
    """``[outbox]``: where applications wait, encrypted, for the back office."""

    key_file: Path | None = Field(None, description="The outbox encryption key (0600, owned by "
                                                    "the kiosk user); unset: "
                                                    "<data_dir>/outbox.key.")

    @field_validator("key_file", mode="before")
    @classmethod
    def _resolve_key_file(cls, value: object) -> Path | None:
        return None if value is None else _cwd_path(value)


class DeviceConfig(_Model):
    """``[devices.<name>]``: which driver runs a device, and that driver's own settings."""

    driver: str = Field(min_length=1, description="Driver name (sim, pcsc, ga467, cups, escpos, "
                                                  "opencv...); checked by the composition root.")
    enabled: bool = Field(True, description="false keeps the table but leaves the device out, "
                                            "as if the kiosk had none.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Every other key of the table, for the driver.")

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: object) -> object:
        # Driver settings are open-ended, so unknown keys are gathered instead of forbidden;
        # the driver validates its own options.
        if not isinstance(data, Mapping):
            return data
        fixed = {k: data[k] for k in ("driver", "enabled") if k in data}
        fixed["options"] = {k: v for k, v in data.items() if k not in ("driver", "enabled")}
        return fixed


class _ConfigFile(_Model):
    kiosk: KioskSection = Field(description="This terminal.")
    backoffice: BackOfficeSection = Field(description="The back-office API.")
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection,
                                      description="Waiting times.")
    appointment_codes: AppointmentCodesSection = Field(
        default_factory=AppointmentCodesSection, description="Signed appointment codes.")
    maintenance: MaintenanceSection = Field(default_factory=MaintenanceSection,
                                            description="Maintenance mode.")
    outbox: OutboxSection = Field(default_factory=OutboxSection,
                                  description="The encrypted outbox.")
    display: DisplaySection = Field(default_factory=DisplaySection,
                                    description="The panel: rotation and renderer.")
    devices: dict[DeviceName, DeviceConfig] = Field(
        default_factory=dict, description="The devices this kiosk has; a missing table means "
                                          "the kiosk lacks that device.")


class KioskConfig(_ConfigFile):
    """The validated configuration, plus where it came from so later checks can point into it."""

    source: Path = Field(description="The file this was read from, as given.")
    _text: str = PrivateAttr("")

    def error_at(self, dotted_key: str, message: str) -> ConfigError:
        """A ``file:line: key: message`` error for a problem found after parsing, such as a
        driver name the composition root does not know."""
        line = _KeyLocator(self._text).line_of(_split_key(dotted_key))
        return ConfigError(f"{self.source}:{line}: {dotted_key}: {message}")

    @property
    def outbox_key_file(self) -> Path:
        """The outbox key: ``outbox.key_file``, else ``outbox.key`` in the data folder."""
        return self.outbox.key_file or self.kiosk.data_dir / "outbox.key"


def load_config(path: Path) -> KioskConfig:
    """Read and validate the configuration file; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    text = _read_text(path)
    data = _parse(path, text)
    try:
        parsed = _ConfigFile.model_validate(data)
    except ValidationError as e:
        raise _invalid(path, text, e) from None
    config = KioskConfig(
        kiosk=parsed.kiosk,
        backoffice=parsed.backoffice,
        timeouts=parsed.timeouts,
        appointment_codes=parsed.appointment_codes,
        maintenance=parsed.maintenance,
        outbox=parsed.outbox,
        display=parsed.display,
        devices=parsed.devices,
        source=path,
    )
    config._text = text
    return config


def load_display(path: Path) -> DisplaySection:
    """Only the ``[display]`` table, for the launcher that starts the compositor: a problem
    elsewhere in the file (which the app reports on screen) must not turn the screen sideways.
    Raises :class:`ConfigError` when the file or that table cannot be used."""
    path = Path(path)
    text = _read_text(path)
    table = _parse(path, text).get("display", {})
    try:
        return DisplaySection.model_validate(table)
    except ValidationError as e:
        raise _invalid(path, text, e, within=("display",)) from None


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(f"{path}: cannot read the configuration file: {reason}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {e.start})") from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_syntax_error(path, text, e)) from None


def _invalid(path: Path, text: str, error: ValidationError,
             within: tuple[str, ...] = ()) -> ConfigError:
    """Every problem of ``error``, one ``file:line: key: message`` line each, in file order;
    ``within`` is the table that was validated on its own."""
    locator = _KeyLocator(text)
    problems = sorted(
        (_describe({**err, "loc": (*within, *err["loc"])}, locator)
         for err in error.errors(include_url=False)),
        key=lambda p: p[0],
    )
    return ConfigError("\n".join(f"{path}:{line}: {key}: {msg}" for line, key, msg in problems))


# --- error messages -----------------------------------------------------------------------

_SYNTAX_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SYNTAX_END = re.compile(r"\s*\(at end of document\)$")


def _syntax_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> str:
    # Python 3.11's TOMLDecodeError has no lineno attribute; the position is only in the text.
    msg = str(error)
    m = _SYNTAX_POS.search(msg)
    if m:
        return f"{path}:{m.group(1)}:{m.group(2)}: TOML syntax error: {msg[:m.start()]}"
    m = _SYNTAX_END.search(msg)
    if m:
        last = max(1, len(text.splitlines()))
        return f"{path}:{last}: TOML syntax error: {msg[:m.start()]} (at end of file)"
    return f"{path}: TOML syntax error: {msg}"


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}

_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _shown(value: object) -> str:
    """The offending value as the technician wrote it (TOML spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = _ConfigFile
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(err: Mapping[str, Any], locator: _KeyLocator) -> tuple[int, str, str]:
    kind: str = err["type"]
    loc = tuple(str(p) for p in err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}

    if loc[-1:] == ("[key]",):
        # Only the devices dict has constrained keys: the key itself is the wrong part.
        loc = loc[:-1]
        if loc[:1] == ("devices",) and kind == "literal_error":
            return (locator.line_of(loc), ".".join(loc),
                    f"unknown device (allowed: {', '.join(DEVICE_NAMES)})")

    if kind == "missing":
        msg = "field required"
    elif kind == "extra_forbidden":
        what = "table" if isinstance(value, Mapping) else "key"
        allowed = _allowed_keys(loc[:-1])
        msg = f"unknown {what}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        # Strings come quoted ("'a', 'b' or 'c'"), numbers bare ("0, 90, 180 or 270").
        choices = re.findall(r"'([^']*)'", expected) or re.findall(r"-?\d+", expected)
        msg = f"must be one of {', '.join(choices)} (got {_shown(value)})"
    elif kind in _TYPE_NAMES:
        msg = f"expected {_TYPE_NAMES[kind]} (got {_shown(value)})"
    elif kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", as the technician wrote the limit
        msg = f"must be {words} {bound} (got {_shown(value)})"
    elif kind == "string_too_short":
        msg = "must not be empty" if ctx.get("min_length") == 1 else \
            f"must be at least {ctx.get('min_length')} characters (got {_shown(value)})"
    elif kind == "string_too_long":
        msg = f"must be at most {ctx.get('max_length')} characters (got {_shown(value)})"
    elif kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
    elif kind == "located":  # a model-level check that knows which key is at fault
        loc = (*loc, str(ctx["key"]))
        msg = err["msg"]
    else:
        msg = f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {_shown(value)})"
    return locator.line_of(loc), ".".join(loc), msg


# --- locating keys in the text ------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*(?P<name>[^\]\[#]+?)\s*\]\]?\s*(?:#.*)?$")
# A bare or quoted key, possibly dotted, then "=": good enough for locating, not for parsing.
_KEY_LINE = re.compile(r"""^\s*(?P<key>(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
                       r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=(?P<rest>.*)$""")
_KEY_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def _split_key(key: str) -> tuple[str, ...]:
    """``devices . "camera"`` -> ("devices", "camera")."""
    parts: list[str] = []
    pos = 0
    while pos < len(key):
        m = _KEY_PART.match(key, pos)
        if m is None or m.end() == pos:
            break
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if not key.startswith(".", pos):
            break
        pos += 1
    return tuple(parts)


class _KeyLocator:
    """Maps every table and key path written in a TOML text to the line it first appears on."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self._scan(text.splitlines())

    def _remember(self, path: tuple[str, ...], line: int) -> None:
        # Every prefix too, so `a.b.c = 1` also locates a.b, and a table named only through
        # [devices.camera] still locates "devices".
        for i in range(1, len(path) + 1):
            self.lines.setdefault(path[:i], line)

    def _scan(self, lines: Iterable[str]) -> None:
        table: tuple[str, ...] = ()
        in_string: str | None = None  # the delimiter of an open multi-line string
        for number, line in enumerate(lines, start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            header = _HEADER.match(line)
            if header:
                table = _split_key(header.group("name"))
                self._remember(table, number)
                continue
            key_line = _KEY_LINE.match(line)
            if key_line:
                self._remember(table + _split_key(key_line.group("key")), number)
                rest = key_line.group("rest")
                for delimiter in ('"""', "'''"):
                    if rest.count(delimiter) % 2 == 1:
                        in_string = delimiter
                        break

    def line_of(self, path: Iterable[str]) -> int:
        """The line of ``path``, else of its nearest written parent, else 1 (the top of the
        file is where a missing table would be added)."""
        parts = tuple(path)
        for i in range(len(parts), 0, -1):
            if parts[:i] in self.lines:
                return self.lines[parts[:i]]
        return 1


__all__ = [
    "DEVICE_NAMES",
    "AppointmentCodesSection",
    "BackOfficeSection",
    "ConfigError",
    "DeviceConfig",
    "DisplaySection",
    "KioskConfig",
    "KioskSection",
    "MaintenanceSection",
    "OutboxSection",
    "TimeoutsSection",
    "hash_pin",
    "load_config",
    "load_display",
    "verify_pin",
]
