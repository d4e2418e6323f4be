"""Both backends read QR codes, only QR codes, and only text we may hand on."""

from __future__ import annotations

import numpy as np
import pytest
import segno
import zxingcpp

from devices.barcode import MAX_PAYLOAD_CHARS
from devices.qr.decoders import PyzbarDecoder, ZxingDecoder, accept, make_decoder
from tests.qr.frames import frame

BACKENDS = ["zxing", "pyzbar"]


def printed(content: str | bytes, scale: int = 4, error: str = "m") -> np.ndarray:
    """A code as a printer makes it: black on white, quiet zone, grey uint8."""
    code = segno.make(content, error=error, micro=False, boost_error=False)
    modules = np.array(list(code.matrix_iter(scale=scale, border=4)), dtype=bool)
    return np.where(modules, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_reads_a_code_in_a_camera_frame(name):
    sample = frame("clean", 0)
    grey = sample.image.mean(axis=2).astype(np.uint8)
    assert make_decoder(name).decode(grey) == [sample.expected]


@pytest.mark.parametrize("name", BACKENDS)
def test_utf8_text_comes_back_as_text(name):
    assert make_decoder(name).decode(printed("预约 ZZA1.k1.abc")) == ["预约 ZZA1.k1.abc"]


@pytest.mark.parametrize("name", BACKENDS)
def test_an_oversized_payload_is_dropped(name):
    decoder = make_decoder(name)
    fits = "A" * MAX_PAYLOAD_CHARS
    too_long = "A" * (MAX_PAYLOAD_CHARS + 1)
    assert decoder.decode(printed(fits, scale=2, error="l")) == [fits]
    assert decoder.decode(printed(too_long, scale=2, error="l")) == []


@pytest.mark.parametrize("name", BACKENDS)
def test_other_symbologies_are_not_read(name):
    code128 = zxingcpp.create_barcode("APT-DEMO-0001", zxingcpp.BarcodeFormat.Code128)
    image = np.array(code128.to_image(scale=4, add_quiet_zones=True), dtype=np.uint8)
    assert zxingcpp.read_barcodes(image)  # it is a readable barcode, just not a QR code
    assert make_decoder(name).decode(image) == []


def test_binary_that_is_not_utf8_is_not_text():
    assert accept(b"\xff\xfe\x00A") is None
    assert accept("预约".encode()) == "预约"
    assert accept(b"") is None
    assert ZxingDecoder().decode(printed(b"\xff\xfe\x00A")) == []


def test_zxing_reports_where_it_found_a_code_it_could_not_read():
    image = printed("ZZA1.k1." + "x" * 100, scale=5)
    # Paint over a third of the data, not the finder patterns: located, not readable.
    h = image.shape[0]
    image[h // 3: 2 * h // 3, h // 3: 2 * h // 3] = 0
    found = ZxingDecoder().detect(image)
    assert found and all(d.text is None for d in found)
    corners = found[0].quad
    assert corners.shape == (4, 2)
    # The symbol starts after the 4-module quiet zone (20 px at scale 5).
    assert np.allclose(corners.min(axis=0), 20, atol=3)


def test_pyzbar_reports_where_it_read_a_code():
    image = printed("ZZA1.k1.where", scale=5)
    (found,) = PyzbarDecoder().detect(image)
    assert found.text == "ZZA1.k1.where"
    assert np.allclose(found.quad.min(axis=0), 20, atol=3)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="known"):
        make_decoder("opencv-wechat")
