"""The 1-bit raster for thermal heads: the width asked for, pure black and white, Chinese
wrapped by character without splitting numbers, and a QR that scans."""

from __future__ import annotations

import pytest

from devices.printer import Field, Media, Paragraph, PrintDocument, QrCode, TextSize
from devices.printing import render_raster
from devices.printing.fonts import LAYOUTS
from devices.printing.raster import _Page
from devices.sim.render import render_png
from flows.documents import load_templates
from tests.printing import LONG_ADDRESS, TRACKING_NUMBER, decode_qr, samples


@pytest.fixture(scope="module")
def templates():
    return load_templates()


@pytest.mark.parametrize("kind", ["queue_ticket", "application_receipt", "one_time_notice",
                                  "progress_query", "certificate"])
@pytest.mark.parametrize("width", [576, 384])  # 80 mm and 58 mm heads at 203 dpi
def test_every_kind_rasters_at_the_head_width_in_pure_black_and_white(templates, kind, width):
    image = render_raster(templates.render(kind, samples()[kind], "k"), width)
    assert image.mode == "1" and image.width == width
    assert image.height > 200
    colours = {value for _count, value in image.getcolors()}
    assert colours == {0, 255}


def test_a4_raster_and_sim_png_widths(templates):
    certificate = templates.render("certificate", samples()["certificate"], "c")
    assert render_raster(certificate, 1654).width == 1654  # A4 at 200 dpi
    assert render_png(certificate).width == 1240
    ticket = templates.render("queue_ticket", samples()["queue_ticket"], "t")
    assert render_png(ticket).width == 576


def test_longer_text_makes_a_longer_roll_not_a_wider_one():
    one = PrintDocument("demo", "k", "t", (Field("办理地址", "短"),))
    many = PrintDocument("demo", "k", "t", (Field("办理地址", LONG_ADDRESS * 3),))
    short, long = render_raster(one), render_raster(many)
    assert long.width == short.width == 576
    assert long.height > short.height + 5 * 20  # several more lines


def page(width: int = 576, media: Media = Media.ROLL_80MM) -> _Page:
    from devices.printing.fonts import FONT_PATH
    return _Page(LAYOUTS[media], width, FONT_PATH)


def test_chinese_wraps_by_character_within_the_width():
    p = page()
    lines = p.wrap(LONG_ADDRESS, p.normal, p.content)
    assert len(lines) >= 3
    assert "".join(line.text for line in lines) == LONG_ADDRESS
    assert all(p.normal.getlength(line.text) <= p.content for line in lines)


def test_numbers_stay_whole_and_closing_punctuation_never_starts_a_line():
    p = page()
    narrow = round(p.measure(p.normal, TRACKING_NUMBER)) + 10
    text = "编号" * 3 + TRACKING_NUMBER + "，请核对。" * 8
    lines = [line.text for line in p.wrap(text, p.normal, narrow)]
    # Moved whole to its own line, not split; its comma hangs after it.
    assert any(line.startswith(TRACKING_NUMBER) for line in lines)
    assert not any(line[0] in "，。" for line in lines)
    assert "".join(lines) == text


def test_a_word_wider_than_the_line_is_broken_anyway():
    p = page()
    lines = p.wrap("9" * 200, p.normal, p.content)
    assert len(lines) > 1 and "".join(line.text for line in lines) == "9" * 200


def test_huge_ticket_number_is_taller_than_normal_text():
    normal = render_raster(PrintDocument("d", "k", "t", (Paragraph("A017"),)))
    huge = render_raster(PrintDocument("d", "k", "t", (Paragraph("A017", TextSize.HUGE),)))
    assert huge.height > normal.height * 2


@pytest.mark.parametrize("width", [576, 384])
def test_the_qr_on_the_raster_scans_back(templates, width):
    data = samples()["application_receipt"]
    image = render_raster(templates.render("application_receipt", data, "r"), width)
    decoded = decode_qr(image)
    if decoded is None:
        pytest.skip("no QR decoder here: add zxing-cpp to the venv (or zbar-tools)")
    assert decoded == [data["tracking_url"]]


def test_qr_modules_are_whole_dots():
    # 1-bit heads cannot print a fractional module: every module is n x n dots, so the
    # symbol's dark runs are all multiples of one module width.
    image = render_raster(PrintDocument("d", "k", "t", (QrCode("x" * 40, size_mm=30),)))
    row = next(y for y in range(image.height) if image.getpixel((image.width // 2, y)) == 0)
    pixels = [image.getpixel((x, row + 1)) for x in range(image.width)]
    runs, current, length = [], pixels[0], 0
    for value in pixels:
        if value == current:
            length += 1
        else:
            runs.append((current, length))
            current, length = value, 1
    dark = [n for value, n in runs if value == 0]
    module = min(dark)
    assert module >= 2 and all(n % module == 0 for n in dark)
