"""Which drivers exist for which device, named as "module:Class" so that checking a config
imports nothing heavy and building a device imports only the driver it needs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kiosk.config import DeviceConfig, KioskConfig

if TYPE_CHECKING:
    from devices.contract import Device

# device name -> driver name -> class. Real drivers join this table as they are written.
DRIVERS: dict[str, dict[str, str]] = {
    "id_card": {"sim": "devices.sim.identity:SimIdCardReader",
                "ga467": "devices.ga467.reader:Ga467IdCardReader"},
    "smart_card": {"sim": "devices.sim.identity:SimSmartCardReader",
                   "pcsc": "devices.emrtd.reader:PcscEmrtdReader"},
    "camera": {"sim": "devices.sim.camera:SimCamera",
               "opencv": "devices.video.opencv:OpencvCamera",
               "replay": "devices.video.replay:ReplayCamera"},
    "barcode": {"sim": "devices.sim.barcode:SimBarcodeReader",
                "serial": "devices.serialscan.scanner:SerialQrScanner",
                "camera": "devices.qr.camera_reader:CameraQrReader"},
    "receipt_printer": {"sim": "devices.sim.printer:SimReceiptPrinter",
                        "escpos": "devices.escpos.printer:EscposReceiptPrinter",
                        "cups": "devices.cups.printer:CupsReceiptPrinter"},
    "document_printer": {"sim": "devices.sim.printer:SimDocumentPrinter",
                         "cups": "devices.cups.printer:CupsDocumentPrinter"},
}

# Drivers built on another device of this kiosk: (device, driver) -> the device they are given,
# as a keyword argument of that name. The composition root builds those peers first.
PEERS: dict[tuple[str, str], str] = {("barcode", "camera"): "camera"}


def check_drivers(config: KioskConfig) -> None:
    """Raise a located ConfigError for a driver name we do not have; builds nothing."""
    for name, device in config.devices.items():
        _target(config, name, device)


def _target(config: KioskConfig, name: str, device: DeviceConfig) -> str:
    drivers = DRIVERS.get(name, {})
    if device.driver not in drivers:
        raise config.error_at(f"devices.{name}.driver",
                              f"unknown driver {device.driver!r} (known: {', '.join(drivers)})")
    return drivers[device.driver]


def needs_peer(name: str, device: DeviceConfig) -> bool:
    return (name, device.driver) in PEERS


def build_device(config: KioskConfig, name: str, device: DeviceConfig,
                 peers: Mapping[str, Device] | None = None) -> Device:
    module, cls = _target(config, name, device).split(":")
    peer_name = PEERS.get((name, device.driver))
    peer = (peers or {}).get(peer_name) if peer_name else None
    if peer_name and peer is None:
        raise config.error_at(f"devices.{name}.driver",
                              f"the {device.driver!r} driver needs devices.{peer_name}, "
                              "which is not configured or not enabled")
    driver = getattr(importlib.import_module(module), cls)
    try:
        if peer_name:
            return driver(device_id=name, **{peer_name: peer}, **device.options)
        return driver(name, **device.options)
    except TypeError as bad:
        if "unexpected keyword argument" not in str(bad):
            raise
        setting = str(bad).rsplit(" ", 1)[-1].strip("'")
        raise config.error_at(f"devices.{name}.{setting}",
                              f"not a setting of the {device.driver!r} driver") from bad
    except ValueError as bad:  # a driver refusing a setting's value (a missing file, a range)
        raise config.error_at(f"devices.{name}", str(bad)) from bad
