"""The card text → IdentityDocument, with fictional people."""

from __future__ import annotations

from datetime import date

import pytest

from devices import idnumber
from devices.ga467 import record
from devices.ga467.tables import GENDERS, NATIONS
from devices.identity import Authenticity, DocumentType, PhotoStatus

TODAY = date(2025, 6, 1)


def fictional_number(first17: str = "11010119900307123") -> str:
    return first17 + idnumber.check_digit(first17)


def fields(**overrides: str) -> dict[str, str]:
    base = {"name": "测试甲", "gender_code": "1", "nation_code": "01", "birth": "19900307",
            "address": "北京市东城区测试路1号", "id_number": fictional_number(),
            "issuer": "北京市公安局东城分局", "valid_from": "20200101",
            "valid_until": "20400101"}
    base.update(overrides)
    return base


def decode(**overrides: str):
    return record.to_document(record.encode_text(**fields(**overrides)), today=TODAY)


def test_layout_fills_256_bytes():
    assert sum(width for _, width in record.LAYOUT) * 2 == 256
    assert len(record.encode_text(**fields())) == 256


def test_a_valid_record_decodes():
    doc = decode()
    assert doc.document_type is DocumentType.RESIDENT_ID
    assert doc.name == "测试甲"
    assert doc.gender == "男"
    assert doc.ethnicity == "汉"
    assert doc.nationality == "CHN"
    assert doc.birth_date == date(1990, 3, 7)
    assert doc.address == "北京市东城区测试路1号"
    assert doc.id_number == fictional_number()
    assert doc.issuer == "北京市公安局东城分局"
    assert (doc.valid_from, doc.valid_until) == (date(2020, 1, 1), date(2040, 1, 1))
    assert doc.photo is None and doc.photo_status is PhotoStatus.UNAVAILABLE
    assert doc.authenticity is Authenticity.VERIFIED and doc.authenticity_detail == "SAM"


def test_long_term_validity_has_no_end():
    assert decode(valid_until="长期").valid_until is None


def test_padding_is_removed_but_inner_characters_stay():
    doc = decode(name="买买提·测试", address="新疆测试县 测试乡")
    assert doc.name == "买买提·测试"
    assert doc.address == "新疆测试县 测试乡"


@pytest.mark.parametrize("code, word", sorted(GENDERS.items()))
def test_gender_codes(code, word):
    assert decode(gender_code=code).gender == word


@pytest.mark.parametrize("code", ["05", "29", "56", "97", "98"])
def test_nation_codes(code):
    assert decode(nation_code=code).ethnicity == NATIONS[code]


def test_nation_table_is_complete():
    assert sorted(NATIONS) == [f"{n:02d}" for n in range(1, 57)] + ["97", "98"]
    assert len(set(NATIONS.values())) == len(NATIONS)


@pytest.mark.parametrize("overrides, field", [
    ({"gender_code": "3"}, "gender"),
    ({"nation_code": "57"}, "nation"),
    ({"nation_code": "00"}, "nation"),
    ({"birth": "19900230"}, "birth"),
    ({"valid_from": "2020010A"}, "valid_from"),
    ({"valid_until": "20100101"}, "valid_until"),
    ({"name": ""}, "name"),
    ({"issuer": ""}, "issuer"),
])
def test_bad_fields_are_named(overrides, field):
    with pytest.raises(record.RecordError) as caught:
        decode(**overrides)
    assert caught.value.field == field


def test_bad_check_digit_is_a_bad_record_without_the_number_in_the_message():
    number = fictional_number()
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    with pytest.raises(record.RecordError) as caught:
        decode(id_number=wrong)
    assert caught.value.field == "id_number"
    assert "checkDigit" in str(caught.value)
    assert wrong not in str(caught.value) and number[:14] not in str(caught.value)


@pytest.mark.parametrize("kind", ["I", "J"])
def test_other_card_kinds_are_recognised(kind):
    with pytest.raises(record.OtherCardKind):
        decode(reserved=" " * 17 + kind)


def test_wrong_size_or_encoding():
    with pytest.raises(record.RecordError):
        record.to_document(bytes(255))
    with pytest.raises(record.RecordError):
        record.to_document(b"\x00\xd8" * 128)  # lone surrogates: not UCS-2 text


def test_photo_bytes_make_the_photo_available():
    doc = record.to_document(record.encode_text(**fields()), photo=b"\x89PNG...", today=TODAY)
    assert doc.photo_status is PhotoStatus.AVAILABLE


def test_repr_hides_personal_data():
    doc = decode()
    text = repr(doc) + repr(record.split_text(record.encode_text(**fields())))
    assert "测试甲" not in text and "19900307" not in text and "测试路" not in text
