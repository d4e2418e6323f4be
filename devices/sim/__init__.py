"""Simulated drivers: the same contract as the real ones, scriptable from Python.

Testers and tests drive them alike: ``reader.insert(document)``, ``scanner.show("APT-1")``,
``printer.run_out_after(3)``, ``camera.drop()``, ``device.go_offline()``.
"""

from devices.sim.barcode import SimBarcodeReader
from devices.sim.camera import SimCamera
from devices.sim.identity import SimIdCardReader, SimSmartCardReader
from devices.sim.printer import SimDocumentPrinter, SimReceiptPrinter

__all__ = [
    "SimBarcodeReader",
    "SimCamera",
    "SimDocumentPrinter",
    "SimIdCardReader",
    "SimReceiptPrinter",
    "SimSmartCardReader",
]
