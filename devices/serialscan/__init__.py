"""A QR scanner in serial mode (driver ``"serial"``): ``framing`` cuts the byte stream into
codes, ``transport`` is the pyserial line, ``scanner`` the ``BarcodeReader`` driver."""

from devices.serialscan.scanner import SerialQrScanner

__all__ = ["SerialQrScanner"]
