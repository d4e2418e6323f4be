"""Templates -> PrintDocument: every shipped template fills from its data, a missing field is
a TemplateError naming the file and the field, and the model stays immutable."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.printer import (
    Field,
    Heading,
    ItemList,
    Media,
    Paragraph,
    PrintDocument,
    PrintLine,
    QrCode,
    Signature,
    Table,
    TextSize,
)
from flows.documents import TEMPLATE_DIR, TemplateError, load_templates
from flows.ports import QueueTicket
from flows.tickets import queue_ticket_document
from tests.printing import LONG_ADDRESS, TRACKING_NUMBER, samples

KINDS = {"queue_ticket", "application_receipt", "one_time_notice", "progress_query",
         "certificate", "test_page"}


@pytest.fixture(scope="module")
def templates():
    return load_templates(TEMPLATE_DIR)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_document_kind_has_a_template_and_fills_from_its_data(templates):
    assert templates.kinds == KINDS
    for kind, data in samples().items():
        document = templates.render(kind, data, job_key=f"job-{kind}")
        assert (document.kind, document.job_key) == (kind, f"job-{kind}")
        assert "{" not in document.text()  # no placeholder left unfilled


def test_receipt_carries_tracking_number_materials_deadline_and_a_tracking_qr(templates):
    document = templates.render("application_receipt", samples()["application_receipt"], "r-1")
    text = document.text()
    assert document.media is Media.ROLL_80MM and document.title == "受理回执"
    assert Field("办件编号", TRACKING_NUMBER) in document.blocks
    assert Field("承诺时限", "10个工作日") in document.blocks
    assert ItemList(("居民身份证（1份）", "近期二寸免冠彩色照片（2份）")) in document.blocks
    table = next(b for b in document.blocks if isinstance(b, Table))
    assert table.rows == (("原社会保障卡", "2026-11-29"),)
    assert document.qr_payloads() == (f"https://zwfw.example.invalid/track/{TRACKING_NUMBER}",)
    # Printed masked whatever the flow passed.
    assert "9901**********1234" in text and "990102199001011234" not in text
    assert "王**" in text and "王小测" not in text
    assert document.meta == {"local_tracking_number": "K20261122-0017"}
    assert Field("本机受理号", "K20261122-0017") in document.blocks
    assert "网络恢复后自动提交" not in text  # only while it waits in the outbox


def test_absent_optional_fields_drop_their_blocks(templates):
    data = samples()["application_receipt"]
    for optional in ("materials_missing", "item_code", "department", "expected_date", "phone"):
        del data[optional]
    text = templates.render("application_receipt", data, "r-2").text()
    assert "容缺后补" not in text and "事项编码" not in text and "承办部门" not in text
    data["materials_missing"] = []  # an empty list is absent too
    document = templates.render("application_receipt", data, "r-3")
    assert not any(isinstance(b, Table) for b in document.blocks)


def test_notice_lists_every_material_with_its_requirement_wording(templates):
    document = templates.render("one_time_notice", samples(materials=7)["one_time_notice"], "n")
    table = next(b for b in document.blocks if isinstance(b, Table))
    assert table.header == ("序号", "材料名称", "形式", "份数", "要求")
    assert [row[0] for row in table.rows] == [str(n) for n in range(1, 8)]
    assert table.rows[2][1] == "近期二寸免冠彩色照片（白底，近三个月内拍摄）"  # {name}{note?}
    assert table.rows[1][1] == "居民户口簿"  # no note: empty, not an error
    assert {row[4] for row in table.rows} == {"必交", "选交", "可容缺后补"}
    assert Field("办理地址", LONG_ADDRESS) in document.blocks
    assert document.media is Media.A4
    assert document.header.startswith("测试市测试区政务服务中心")


def test_progress_without_history_says_so(templates):
    data = samples()["progress_query"]
    data["history"] = []
    text = templates.render("progress_query", data, "p").text()
    assert "尚无办理记录。" in text
    full = templates.render("progress_query", samples()["progress_query"], "p2").text()
    assert "尚无办理记录。" not in full and "11-23 10:25" in full


def test_certificate_body_paragraphs_signature_and_verification_qr(templates):
    document = templates.render("certificate", samples()["certificate"], "c")
    assert document.title == "户籍证明" and document.media is Media.A4
    body = [b for b in document.blocks if isinstance(b, Paragraph) and b.indent]
    assert len(body) == 3 and body[-1].text == "特此证明。"
    assert Signature("出具单位（盖章）", "测试市公安局测试区分局户政科", "2026年11月22日") in document.blocks
    assert document.qr_payloads() == (samples()["certificate"]["verify_url"],)


def test_media_can_be_overridden(templates):
    data = samples()["application_receipt"]
    assert templates.render("application_receipt", data, "x", media=Media.A4).media is Media.A4


def test_missing_field_names_the_file_and_the_field_not_the_data(templates):
    data = samples()["application_receipt"]
    del data["local_tracking_number"]
    with pytest.raises(TemplateError) as raised:
        templates.render("application_receipt", data, "x")
    assert raised.value.field == "local_tracking_number"
    assert raised.value.path.name == "application_receipt.toml"
    message = str(raised.value)
    assert "application_receipt.toml" in message and "'local_tracking_number'" in message
    assert "王小测" not in message and "1234" not in message


def test_missing_field_inside_a_repeated_row(templates):
    data = samples()["one_time_notice"]
    del data["materials"][3]["form"]
    with pytest.raises(TemplateError, match="one_time_notice.toml.*'form'") as raised:
        templates.render("one_time_notice", data, "x")
    assert raised.value.field == "form"


def test_each_over_something_that_is_not_a_list(templates):
    data = samples()["application_receipt"]
    data["materials_received"] = "居民身份证"
    with pytest.raises(TemplateError, match="materials_received.*not a list"):
        templates.render("application_receipt", data, "x")


def test_a_value_without_wording_in_its_choices_table(templates):
    data = samples()["one_time_notice"]
    data["materials"][0]["requirement"] = "sometimes"
    with pytest.raises(TemplateError, match=r"\[choices.requirement\]") as raised:
        templates.render("one_time_notice", data, "x")
    assert "sometimes" not in str(raised.value)


def test_a_none_value_is_missing_and_a_wrong_format_is_an_error(templates):
    data = samples()["queue_ticket"]
    data["number"] = None
    with pytest.raises(TemplateError, match="'number'"):
        templates.render("queue_ticket", data, "x")
    data = samples()["queue_ticket"]
    data["issued_at"] = "yesterday"  # a date format on a string
    with pytest.raises(TemplateError, match=r"queue_ticket.toml: blocks\[\d+\].*cannot format"):
        templates.render("queue_ticket", data, "x")


def test_unknown_kind(templates):
    with pytest.raises(TemplateError, match="no template for document kind 'receipt'"):
        templates.render("receipt", {}, "x")


GOOD_BLOCK = '\n[[blocks]]\ntype = "paragraph"\ntext = "{a}"\n'


@pytest.mark.parametrize("text, message", [
    ('title = "t"\n[[blocks]]\ntype = "banner"\ntext = "x"\n', "type must be one of"),
    ('title = "t"\n[[blocks]]\ntype = "field"\nlabel = "x"\n', "missing key(s) value"),
    ('title = "t"\n[[blocks]]\ntype = "field"\nlabel = "x"\nvalue = "y"\ncolour = 1\n',
     "unknown key(s) colour"),
    ('title = "t"\n[[blocks]]\ntype = "field"\nlabel = "x"\nvalue = "{a"\n', "bad format string"),
    ('title = "t"\n[[blocks]]\ntype = "field"\nlabel = "x"\nvalue = "{0}"\n', "by name"),
    ('title = "t"\n[[blocks]]\ntype = "field"\nlabel = "x"\nvalue = "{a:@nope}"\n',
     "no [choices.nope] table"),
    ('title = "t"\n[[blocks]]\ntype = "paragraph"\ntext = "x"\nsize = "giant"\n', "size"),
    ('title = "t"\n[[blocks]]\ntype = "heading"\ntext = "x"\nlevel = true\n', "wrong type"),
    ('title = "t"\n[[blocks]]\ntype = "list"\n', "needs either each or items"),
    ('title = "t"\n[[blocks]]\ntype = "table"\neach = "r"\ncolumns = [{ header = "h" }]\n',
     "columns[0]"),
    ('title = "t"\nmedia = "A5"' + GOOD_BLOCK, "media must be one of"),
    ('kind = "other"\ntitle = "t"' + GOOD_BLOCK, "differs from the file name"),
    ('title = "t"\n', "at least one [[blocks]]"),
    ('title = "t"\ncolour = "red"' + GOOD_BLOCK, "unknown key(s) colour"),
    ('title = "t"\n[[blocks]]\ntype = "group"\n[[blocks.blocks]]\ntype = "nope"\n',
     r"blocks[0].blocks[0]: type must be one of"),
    ('title = "t" = 2', "unreadable"),
])
def test_a_bad_template_is_refused_at_load_naming_the_file(tmp_path, text, message):
    write(tmp_path, "doc", text)
    with pytest.raises(TemplateError) as raised:
        load_templates(tmp_path)
    assert str(raised.value).startswith(str(tmp_path / "doc.toml") + ": ")
    assert message in str(raised.value)


def test_an_empty_template_directory_is_an_error(tmp_path):
    with pytest.raises(TemplateError, match="no print templates"):
        load_templates(tmp_path)


def test_conditions_repeats_and_formatting(tmp_path):
    write(tmp_path, "demo", '''
title = "{name} 的单据"
media = "A4"
[choices.state]
ok = "正常"
[[blocks]]
type = "paragraph"
text = "有备注：{remark}"
when = "remark"
[[blocks]]
type = "paragraph"
text = "无备注"
unless = "remark"
[[blocks]]
type = "field"
label = "部门"
value = "{departments}"
[[blocks]]
type = "group"
each = "people"
  [[blocks.blocks]]
  type = "field"
  label = "{index}"
  value = "{who.name}：{state:@state}{extra?}"
[[blocks]]
type = "list"
items = ["固定一", "{name}"]
numbered = false
[[blocks]]
type = "qr"
payload = "{url}"
[[blocks]]
type = "spacer"
lines = 2
''')
    data = {"name": "测试", "remark": "", "departments": ["甲局", "乙局"], "url": "u:1",
            "people": [{"who": {"name": "一"}, "state": "ok"},
                       {"who": {"name": "二"}, "state": "ok", "extra": "！"}]}
    document = load_templates(tmp_path).render("demo", data, "k")
    assert document.title == "测试 的单据"
    assert document.blocks[0] == Paragraph("无备注")
    assert document.blocks[1] == Field("部门", "甲局、乙局")
    assert document.blocks[2:4] == (Field("1", "一：正常"), Field("2", "二：正常！"))
    assert document.blocks[4] == ItemList(("固定一", "测试"), numbered=False)
    assert document.blocks[5] == QrCode("u:1")


def test_queue_ticket_goes_through_its_template():
    ticket = QueueTicket(number="B023", service_name="不动产登记", centre_name="某某中心",
                         floor="一楼", area="", window="3号窗口",
                         issued_at=datetime(2026, 11, 22, 14, 7, tzinfo=UTC), waiting_ahead=0,
                         appointment_id=None)
    document = queue_ticket_document(ticket, "530102-01", lambda s: s)
    assert document.job_key == "ticket:530102-01:20261122:B023"
    assert document.kind == "queue_ticket" and document.media is Media.ROLL_80MM
    assert Paragraph("B023", TextSize.HUGE, center=True, bold=True) in document.blocks
    assert Field("等候地点", "一楼 3号窗口") in document.blocks
    assert Field("前面等候", "0 人") in document.blocks  # zero is a number, not an absence
    assert Field("取号时间", "2026-11-22 14:07") in document.blocks
    assert "预约签到" not in document.text()
    assert Heading("排队票") in document.blocks


def test_document_is_immutable_and_text_has_everything():
    document = PrintDocument("demo", "k", "标题", [  # a list is frozen into a tuple
        PrintLine("一行"), Field("编号", "007"), ItemList(("甲", "乙")),
        Table(("列一", "列二"), (("a", "1"),)), QrCode("payload-9", "扫码"),
        Signature("申请人（签字）", date="2026年1月2日")], meta={"n": "1"})
    assert isinstance(document.blocks, tuple)
    with pytest.raises(FrozenInstanceError):
        document.title = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        document.meta["n"] = "2"  # type: ignore[index]
    assert document.text().splitlines() == [
        "标题", "一行", "编号：007", "1. 甲", "2. 乙", "列一  列二", "a  1", "[QR] payload-9",
        "扫码", "申请人（签字）：", "2026年1月2日"]


def test_a_table_row_must_fit_its_header():
    with pytest.raises(ValueError):
        Table(("a", "b"), (("only one",),))
