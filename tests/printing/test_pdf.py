"""Every document kind rendered to PDF and read back with poppler (pdftotext, pdffonts,
pdfinfo, pdftoppm): the Chinese and every digit survive, the font is embedded, long text wraps,
long lists continue on the next page, the QR scans back to its payload."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from devices.contract import Completion
from devices.printer import Field, Media, PrintDocument, QrCode, Table
from devices.printing import layout_pdf, render_pdf
from devices.sim import SimDocumentPrinter
from flows.documents import load_templates
from tests.printing import LONG_ADDRESS, TRACKING_NUMBER, decode_qr, samples

# What must come back out of each kind's PDF, digits included.
EXPECTED = {
    "queue_ticket": ["测试市测试区政务服务中心", "排队票", "A017", "社会保障卡补办", "二楼 B区 5号窗口",
                     "3 人", "2026-11-22 09:05", "预约签到"],
    "application_receipt": ["受理回执", TRACKING_NUMBER, "社会保障卡补领、换领",
                            "11530102MB0000000X4530102001", "9901**********1234", "王**",
                            "2026-11-22 09:41", "10个工作日", "2026-12-04", "居民身份证（1份）",
                            "容缺后补材料", "原社会保障卡", "2026-11-29", "0000-12345678",
                            "ZZ-TEST-01"],
    "one_time_notice": ["一次性告知单", "社会保障卡补领、换领", "11530102MB0000000X4530102001",
                        "《中华人民共和国社会保险法》第五十八条", "可容缺后补", "必交", "选交",
                        "20个工作日", "不收费", "0000-12345678", "9:00-12:00", "2026-11-22 10:03",
                        "第 1 页 / 共 1 页"],
    "progress_query": ["办件进度", TRACKING_NUMBER, "审批中", "11-22 09:41", "11-23 10:25",
                       "测试区人力资源和社会保障局", "2026-11-24 08:30"],
    "certificate": ["户籍证明", "HJ-2026-1122-00088", "990102199001011234", "2026年11月22日",
                    "测试市公安局测试区分局户政科", "7Q4K2M", "特此证明。", "第 1 页 / 共 1 页"],
}


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def pdf_file(tmp_path: Path, document: PrintDocument) -> Path:
    path = tmp_path / f"{document.kind}.pdf"
    path.write_bytes(render_pdf(document))
    return path


def poppler(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def text_of(path: Path, first: int | None = None, last: int | None = None) -> str:
    pages = [*(("-f", str(first)) if first else ()), *(("-l", str(last)) if last else ())]
    return poppler("pdftotext", *pages, path, "-")


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def page_count(path: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)", poppler("pdfinfo", path), re.M).group(1))


def page_size_pt(path: Path) -> tuple[float, float]:
    found = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", poppler("pdfinfo", path), re.M)
    return float(found.group(1)), float(found.group(2))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_text_and_numbers_survive_and_the_font_is_embedded(tmp_path, templates, kind):
    path = pdf_file(tmp_path, templates.render(kind, samples()[kind], f"job-{kind}"))
    text = text_of(path)
    for expected in EXPECTED[kind]:
        # pdftotext drops spaces between CJK glyphs and breaks lines where the paper did.
        assert squash(expected) in squash(text), expected
    if kind in ("application_receipt", "progress_query"):
        assert TRACKING_NUMBER in text  # short enough to stay on one line, not split
    fonts = poppler("pdffonts", path).splitlines()[2:]
    assert fonts, "no font at all"
    for line in fonts:  # one font, a TrueType subset, embedded, with a ToUnicode map
        assert "WenQuanYi" in line and " TrueType " in line
        assert line.split()[-5:-2] == ["yes", "yes", "yes"], line


def test_roll_is_one_page_80mm_wide_as_long_as_its_content(tmp_path, templates):
    short = templates.render("queue_ticket", samples()["queue_ticket"], "t")
    long = templates.render("application_receipt", samples()["application_receipt"], "r")
    short_size = page_size_pt(pdf_file(tmp_path, short))
    long_path = pdf_file(tmp_path, long)
    assert round(short_size[0] / 72 * 25.4) == 80
    assert page_count(long_path) == 1
    assert page_size_pt(long_path)[1] > short_size[1] * 1.5


def test_a4_page_size(tmp_path, templates):
    path = pdf_file(tmp_path, templates.render("certificate", samples()["certificate"], "c"))
    width, height = page_size_pt(path)
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)


@pytest.mark.parametrize("media", [Media.ROLL_80MM, Media.A4])
def test_a_long_address_wraps_onto_several_lines(tmp_path, media):
    document = PrintDocument("demo", "k", "地址", (Field("办理地址", LONG_ADDRESS),), media=media)
    lines = [line.strip() for line in text_of(pdf_file(tmp_path, document)).splitlines()]
    start = next(i for i, line in enumerate(lines) if "办理地址" in line)
    first = lines[start].split("办理地址：", 1)[-1].strip()
    assert first and LONG_ADDRESS.startswith(first) and first != LONG_ADDRESS
    joined = "".join([first, *lines[start + 1:]])
    assert joined.startswith(LONG_ADDRESS)
    expected_lines = 3 if media is Media.ROLL_80MM else 2
    assert sum(1 for line in lines[start + 1:] if line and line in LONG_ADDRESS) >= expected_lines - 1


def test_a_long_materials_list_continues_on_the_next_page(tmp_path, templates):
    data = samples(materials=60)["one_time_notice"]
    path = pdf_file(tmp_path, templates.render("one_time_notice", data, "n"))
    pages = page_count(path)
    assert pages >= 2
    last_page = text_of(path, pages, pages)
    first_page = text_of(path, 1, 1)
    assert "第60项补充证明材料" in last_page and "第60项补充证明材料" not in first_page
    assert "居民身份证" in first_page
    # The table header and the page header repeat; the footer counts the pages.
    assert "材料名称" in last_page and "一次性告知单" in last_page
    assert f"第1页/共{pages}页" in squash(first_page)
    assert f"第{pages}页/共{pages}页" in squash(last_page)
    assert layout_pdf(templates.render("one_time_notice", data, "n")).pages == pages


def test_a_long_table_on_the_roll_just_makes_the_roll_longer(tmp_path):
    rows = tuple((f"{n:02d}", f"第{n}行") for n in range(1, 80))
    document = PrintDocument("demo", "k", "长表", (Table(("序号", "内容"), rows),))
    path = pdf_file(tmp_path, document)
    assert page_count(path) == 1 and "第79行" in text_of(path)


def _qr_payloads_in(path: Path, tmp_path: Path) -> list[str]:
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp_path / "page")],
                   check=True, timeout=60)
    found: list[str] = []
    for png in sorted(tmp_path.glob("page*.png")):
        decoded = decode_qr(Image.open(png))
        if decoded is None:
            pytest.skip("no QR decoder here: add zxing-cpp to the venv (or zbar-tools)")
        found += decoded
    return found


@pytest.mark.parametrize("kind, key", [("application_receipt", "tracking_url"),
                                       ("certificate", "verify_url"),
                                       ("one_time_notice", "online_url")])
def test_the_qr_in_the_pdf_scans_back_to_its_payload(tmp_path, templates, kind, key):
    data = samples()[kind]
    path = pdf_file(tmp_path, templates.render(kind, data, "q"))
    assert _qr_payloads_in(path, tmp_path) == [data[key]]


def test_a_qr_on_a_roll_also_scans(tmp_path):
    payload = "ZZ530102-20261122-000457|" + "x" * 120  # a denser symbol
    document = PrintDocument("demo", "k", "二维码", (QrCode(payload, "扫码", size_mm=40),))
    assert _qr_payloads_in(pdf_file(tmp_path, document), tmp_path) == [payload]


def test_markup_characters_print_as_text(tmp_path):
    document = PrintDocument("demo", "k", "t", (Field("备注", "A&B <C> 5>3"),), media=Media.A4)
    assert "A&B <C> 5>3" in text_of(pdf_file(tmp_path, document))


def test_sim_document_printer_keeps_pdf_png_txt_and_counts_real_pages(tmp_path, templates):
    printer = SimDocumentPrinter(output_dir=tmp_path / "out", auto_take_s=None, print_delay_s=0)
    notice = templates.render("one_time_notice", samples(materials=60)["one_time_notice"], "n-1")
    result = printer.print_document(notice, 10).wait(10)
    assert result.ok
    out = tmp_path / "out"
    pdf = out / "0001-one_time_notice.pdf"
    assert result.data.pages == page_count(pdf) >= 2
    assert (out / "0001-one_time_notice.png").exists()
    assert "第60项补充证明材料" in (out / "0001-one_time_notice.txt").read_text(encoding="utf-8")
    # Paper for one sheet only: the two-page notice runs out mid-job and nothing is kept.
    printer.run_out_after(1)
    again = printer.print_document(replace(notice, job_key="n-2"), 10).wait(10)
    assert (again.completion, again.error_code) == (Completion.HARDWARE_ERROR, "paperOut")
    assert sorted(p.name for p in out.glob("*.pdf")) == ["0001-one_time_notice.pdf"]


def test_an_empty_a4_document_is_one_blank_sheet(tmp_path):
    document = PrintDocument("demo", "k", "空白", (), media=Media.A4)
    assert layout_pdf(document).pages == 1
    assert page_count(pdf_file(tmp_path, document)) == 1
