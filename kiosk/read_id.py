"""``kiosk devices read-id``: read one identity document with a real or simulated reader, for
technicians on site and testers. Masked by default: a terminal may be watched or logged."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from devices.contract import Device, DeviceState
from devices.identity import IdentityDocument, IdentityReader, MrzAccess, mask_id
from flows.privacy import mask_name
from kiosk.config import ConfigError, DeviceConfig, KioskConfig, load_config
from kiosk.drivers import build_device
from kiosk.privacy import mask_text

# --driver -> the device it runs as (its table in the config).
DRIVER_DEVICE = {"ga467": "id_card", "pcsc": "smart_card"}
DEMO_CARDS = {"id_card": "assets/sim/demo-id-card.json",
              "smart_card": "assets/sim/demo-passport.json"}


class ReadIdError(Exception):
    """A usage problem (exit 2), as opposed to a read that failed (exit 1)."""


def add_arguments(parser: argparse.ArgumentParser, default_config: Path) -> None:
    parser.add_argument("--config", type=Path, default=default_config,
                        help="the reader and its settings come from here unless --driver")
    parser.add_argument("--driver", choices=("ga467", "pcsc", "sim"),
                        help="use this driver instead of the configured reader")
    parser.add_argument("--port", help="serial port of the ID-card reader (ga467)")
    parser.add_argument("--reader", help="PC/SC reader name or part of it (pcsc)")
    parser.add_argument("--mrz", help="DOCNO,YYMMDD,YYMMDD or the whole MRZ (lines joined "
                                      "by newlines or '|'): opens a passport chip")
    parser.add_argument("--csca", help="CSCA certificate, folder or master list to verify "
                                       "the document signer against (pcsc)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for a document (default 30)")
    parser.add_argument("--unmask", action="store_true",
                        help="print personal data in full (only on a terminal nobody else sees)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def parse_access(text: str | None) -> MrzAccess | None:
    if not text:
        return None
    from devices.emrtd.mrz import MrzError, access_from_fields, parse_mrz

    try:
        parts = text.split(",")
        if len(parts) == 3:
            return access_from_fields(*(p.strip().upper() for p in parts))
        return parse_mrz(text.replace("|", "\n")).access()
    except MrzError as bad:
        raise ReadIdError(f"--mrz: {bad}") from None


def _config(driver: str, options: dict[str, Any]) -> DeviceConfig:
    # The table's shape: settings sit beside ``driver``, as in the TOML file.
    return DeviceConfig.model_validate({"driver": driver, **options})


def _device_config(config: KioskConfig, args: argparse.Namespace,
                   access: MrzAccess | None) -> tuple[str, DeviceConfig]:
    if args.driver in DRIVER_DEVICE:
        name = DRIVER_DEVICE[args.driver]
        configured = config.devices.get(name)
        options = dict(configured.options) if configured and configured.driver == args.driver \
            else {}
        return name, _config(args.driver, options)
    name = "smart_card" if access is not None else "id_card"
    if args.driver == "sim":
        return name, _config("sim", {"present_on_read": DEMO_CARDS[name],
                                     "present_after_s": 0.0})
    configured = config.devices.get(name)
    if configured is None or not configured.enabled:
        raise ReadIdError(f"{config.source}: no [devices.{name}] reader configured; "
                          "name one with --driver")
    return name, configured


def _build(config: KioskConfig, args: argparse.Namespace,
           access: MrzAccess | None) -> IdentityReader:
    name, device_config = _device_config(config, args, access)
    options = dict(device_config.options)
    if args.port:
        options["port"] = args.port
    if args.reader:
        options["reader"] = args.reader
    if args.csca:
        options["csca"] = args.csca
    device = build_device(config, name, _config(device_config.driver, options))
    if not isinstance(device, IdentityReader):
        device.close()
        raise ReadIdError(f"devices.{name} is not an identity reader")
    return device


def _wait_started(device: Device, seconds: float = 3.0) -> None:
    """A driver opening its port reports ``starting`` for a moment; a read waits for that."""
    deadline = time.monotonic() + seconds
    while device.status().state is DeviceState.STARTING and time.monotonic() < deadline:
        time.sleep(0.05)


def _masked_date(value: date | None, unmask: bool) -> str | None:
    if value is None:
        return None
    return value.isoformat() if unmask else f"{value.year}-**-**"


def record_json(document: IdentityDocument, unmask: bool) -> dict[str, Any]:
    def personal(value: str | None, masker: Any) -> str | None:
        return value if unmask or value is None else masker(value)

    return {
        "document_type": str(document.document_type),
        "id_number": personal(document.id_number, mask_id),
        "name": personal(document.name, mask_name),
        "gender": document.gender,
        "nationality": document.nationality,
        "ethnicity": document.ethnicity,
        "birth_date": _masked_date(document.birth_date, unmask),
        "address": personal(document.address, lambda v: v[:6] + "…"),
        "issuer": document.issuer,
        "valid_from": document.valid_from.isoformat() if document.valid_from else None,
        "valid_until": document.valid_until.isoformat() if document.valid_until else "长期",
        "photo": {"status": str(document.photo_status),
                  "bytes": len(document.photo) if document.photo else 0},
    }


def run(args: argparse.Namespace) -> int:
    try:
        access = parse_access(args.mrz)
        config = load_config(args.config)
        device = _build(config, args, access)
    except (ConfigError, ReadIdError) as problem:
        print(f"kiosk: {problem}", file=sys.stderr)
        return 2
    try:
        _wait_started(device)
        started = time.monotonic()
        if not args.json:
            print(f"{device.device_id} ({device.driver_name}): place the document on the "
                  f"reader ({args.timeout:g} s) …", file=sys.stderr)
        result = device.read_identity(args.timeout, access).wait()
        elapsed = time.monotonic() - started
    finally:
        device.close()
    out: dict[str, Any] = {"device": device.device_id, "driver": device.driver_name,
                           "completion": str(result.completion),
                           "error_code": result.error_code, "ok": result.ok,
                           "seconds": round(elapsed, 3)}
    if result.ok and result.data is not None:
        document = result.data
        out["record"] = record_json(document, args.unmask)
        out["passive_authentication"] = {"status": str(document.authenticity),
                                         "detail": document.authenticity_detail}
        out["timings"] = dict(document.read_stats)
    elif result.message:
        out["message"] = mask_text(result.message)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        _print_text(out)
    return 0 if result.ok else 1


def _print_text(out: dict[str, Any]) -> None:
    if not out["ok"]:
        print(f"read failed: {out['completion']}/{out['error_code']}"
              + (f": {out['message']}" if out.get("message") else ""))
        return
    for key, value in out["record"].items():
        if key == "photo":
            value = f"{value['status']} ({value['bytes']} bytes)"
        if value is not None:
            print(f"{key:>14}: {value}")
    pa = out["passive_authentication"]
    print(f"{'authenticity':>14}: {pa['status']}" + (f" ({pa['detail']})" if pa["detail"] else ""))
    timings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in out["timings"].items())
    print(f"{'timings':>14}: total={out['seconds']:g}s" + (f", {timings}" if timings else ""))
