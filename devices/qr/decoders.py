"""QR decoder backends behind one small interface: zxing-cpp first, pyzbar second.

A backend takes a greyscale frame and returns the texts of the QR codes it read, nothing else
(no other symbologies: a parcel's Code 128 in view is not an appointment). Texts are the code's
bytes read as UTF-8; a code that is not UTF-8 text, or longer than MAX_PAYLOAD_CHARS, is not one
of ours and is dropped here, before anything downstream parses it.

``detect`` also says where each code is, and with zxing-cpp where a code was found but could not
be read (its finder patterns located, its data not): the pipeline looks there again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from devices.barcode import MAX_PAYLOAD_CHARS


@dataclass(frozen=True, repr=False)
class Detection:
    """A code seen in an image: its text, or None if it was located but not read."""

    text: str | None
    quad: np.ndarray  # 4 x 2 float32 corners in image pixels, clockwise from the top left

    def __repr__(self) -> str:  # the text may be personal data
        return f"Detection({'read' if self.text is not None else 'unread'})"


class QrDecoder(Protocol):
    name: str

    def decode(self, gray: np.ndarray) -> list[str]:
        """Texts of the QR codes in ``gray`` (H x W uint8), each once, in the backend's order."""
        ...

    def detect(self, gray: np.ndarray, thorough: bool = True) -> list[Detection]:
        """The codes in ``gray`` with where they are. ``thorough=False`` lets a backend skip
        searches the caller has already made on this image (inverted codes)."""
        ...


def accept(raw: bytes) -> str | None:
    """The payload as text, or None if it is not text we may hand on."""
    if len(raw) > MAX_PAYLOAD_CHARS * 4:  # before decoding: UTF-8 is at most 4 bytes a char
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or len(text) > MAX_PAYLOAD_CHARS:
        return None
    return text


def texts_of(detections: list[Detection]) -> list[str]:
    return list(dict.fromkeys(d.text for d in detections if d.text is not None))


class ZxingDecoder:
    """zxing-cpp, restricted to QR Code (model 2, as phones and printers make them)."""

    name = "zxing-cpp"

    def __init__(self) -> None:
        import zxingcpp  # here, so a kiosk without a camera never loads it

        self._zxing = zxingcpp
        self._formats = zxingcpp.BarcodeFormat.QRCode

    def decode(self, gray: np.ndarray) -> list[str]:
        found = self._zxing.read_barcodes(gray, formats=self._formats)
        return list(dict.fromkeys(t for b in found if b.valid
                                  if (t := accept(b.bytes)) is not None))

    def detect(self, gray: np.ndarray, thorough: bool = True) -> list[Detection]:
        found = self._zxing.read_barcodes(gray, formats=self._formats, return_errors=True,
                                          try_invert=thorough, try_rotate=thorough)
        out = []
        for b in found:
            quad = _quad(b.position)
            if b.valid:
                text = accept(b.bytes)
                if text is not None:
                    out.append(Detection(text, quad))
            else:
                out.append(Detection(None, quad))
        return out


def _quad(position: Any) -> np.ndarray:
    corners = (position.top_left, position.top_right, position.bottom_right,
               position.bottom_left)
    return np.array([[p.x, p.y] for p in corners], dtype=np.float32)


class PyzbarDecoder:
    """ZBar through pyzbar, QR only. ZBar reports only the codes it read."""

    name = "pyzbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar

        self._pyzbar = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, gray: np.ndarray) -> list[str]:
        return texts_of(self.detect(gray))

    def detect(self, gray: np.ndarray, thorough: bool = True) -> list[Detection]:
        found = self._pyzbar.decode(np.ascontiguousarray(gray), symbols=self._symbols)
        out = []
        for d in found:
            text = accept(d.data)
            if text is None:
                continue
            r = d.rect
            quad = np.array([[r.left, r.top], [r.left + r.width, r.top],
                             [r.left + r.width, r.top + r.height], [r.left, r.top + r.height]],
                            dtype=np.float32)
            out.append(Detection(text, quad))
        return out


DECODERS: dict[str, type[ZxingDecoder] | type[PyzbarDecoder]] = {
    "zxing": ZxingDecoder,
    "zxing-cpp": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
}


def make_decoder(name: str) -> QrDecoder:
    """A backend by its config name: ``zxing`` (or ``zxing-cpp``) or ``pyzbar``."""
    try:
        return DECODERS[name]()
    except KeyError:
        raise ValueError(f"unknown QR decoder {name!r}; known: {sorted(DECODERS)}") from None
