from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, features

from devices.emrtd import tlv
from devices.emrtd.files import EF
from devices.emrtd.lds import (
    Com,
    FaceImage,
    LdsError,
    decode_face,
    parse_com,
    parse_dg1,
    parse_dg2,
    parse_facial_record,
)
from tests.emrtd import factory
from tests.emrtd.factory import (
    SPECIMEN_TD3,
    facial_record,
    make_com,
    make_dg1,
    make_dg2,
    make_face_jpeg,
    make_passport,
    make_test_pki,
    permit_td1,
)

TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
       "D231458907UTO7408122F1204159<<<<<<<6"]


@pytest.fixture(scope="module")
def passport() -> factory.TestPassport:
    return make_passport(make_test_pki())


# --- EF.COM ---------------------------------------------------------------------------

def test_com_of_the_factory_passport(passport):
    com = parse_com(passport.files[EF.COM])
    assert com == Com(lds_version="1.7", unicode_version="4.0.0", tags=(0x61, 0x75))
    assert com.data_groups == (1, 2)


def test_com_lists_every_data_group_and_skips_unknown_tags():
    com = parse_com(make_com(tags=(0x61, 0x75, 0x6E, 0x6F, 0x42), lds_version="0108",
                             unicode_version="060100"))
    assert com.lds_version == "1.8" and com.unicode_version == "6.1.0"
    assert com.data_groups == (1, 2, 14, 15)


@pytest.mark.parametrize(("data", "reason"), [
    (tlv.encode(0x61, b""), "expected 60"),
    (tlv.encode(0x60, tlv.encode(0x5F36, b"040000") + tlv.encode(0x5C, b"a")), "5F01 missing"),
    (tlv.encode(0x60, tlv.encode(0x5F01, b"01x7") + tlv.encode(0x5F36, b"040000")
                + tlv.encode(0x5C, b"a")), "LDS version"),
])
def test_com_structure_errors(data, reason):
    with pytest.raises(LdsError, match=reason):
        parse_com(data)


# --- DG1 ------------------------------------------------------------------------------

def test_dg1_td3_passport(passport):
    assert parse_dg1(passport.files[EF.DG1]) == "\n".join(SPECIMEN_TD3)
    assert passport.mrz == "\n".join(SPECIMEN_TD3)


@pytest.mark.parametrize("lines", [permit_td1(), TD2], ids=["TD1", "TD2"])
def test_dg1_card_and_td2_formats(lines):
    text = parse_dg1(make_dg1(lines))
    assert text.split("\n") == lines


def test_dg1_tolerates_padding_after_the_template():
    assert parse_dg1(make_dg1(SPECIMEN_TD3) + b"\x00\x00") == "\n".join(SPECIMEN_TD3)


@pytest.mark.parametrize(("mrz", "reason"), [
    ("P<UTO" + "<" * 80, "85 characters"),
    (SPECIMEN_TD3[0] + SPECIMEN_TD3[1].lower(), "characters outside"),
])
def test_dg1_bad_mrz_says_why_without_the_mrz(mrz, reason):
    with pytest.raises(LdsError, match=reason) as err:
        parse_dg1(tlv.encode(0x61, tlv.encode(0x5F1F, mrz.encode())))
    assert "ERIKSSON" not in str(err.value).upper()


def test_dg1_non_ascii():
    with pytest.raises(LdsError, match="not ASCII"):
        parse_dg1(tlv.encode(0x61, tlv.encode(0x5F1F, "张".encode() * 30)))


def test_factory_mrz_check_digits_are_valid():
    from tests.emrtd.factory import check_digit

    line2 = SPECIMEN_TD3[1]
    assert check_digit(line2[0:9]) == line2[9]
    assert check_digit(line2[13:19]) == line2[19]
    assert check_digit(line2[21:27]) == line2[27]
    assert check_digit(line2[0:10] + line2[13:20] + line2[21:43]) == line2[43]
    line1, line2, _ = permit_td1()
    assert check_digit(line1[5:14]) == line1[14]
    assert check_digit(line2[0:6]) == line2[6]
    assert check_digit(line2[8:14]) == line2[14]


# --- DG2 ------------------------------------------------------------------------------

def test_dg2_face_of_the_factory_passport(passport):
    face = parse_dg2(passport.files[EF.DG2])
    assert face.mime == "image/jpeg"
    assert face.data == make_face_jpeg()
    assert (face.width, face.height) == (360, 480)
    image = decode_face(face)
    assert image.size == (face.width, face.height)
    assert image.format == "JPEG"


def test_dg2_repr_does_not_carry_the_image(passport):
    face = parse_dg2(passport.files[EF.DG2])
    assert len(repr(face)) < 100


def test_dg2_with_feature_points_and_enciphered_block_tag():
    jpeg = make_face_jpeg()
    dg2 = make_dg2(jpeg, 360, 480, bdb_tag=0x7F2E, feature_points=3)
    face = parse_dg2(dg2)
    assert face.data == jpeg and (face.width, face.height) == (360, 480)


@pytest.mark.skipif(not features.check("jpg_2000"), reason="Pillow built without OpenJPEG")
def test_dg2_jpeg2000_face_decodes():
    out = io.BytesIO()
    Image.new("RGB", (120, 160), (200, 150, 120)).save(out, "JPEG2000")
    face = parse_dg2(make_dg2(out.getvalue(), 120, 160, image_type=1))
    assert face.mime == "image/jp2"
    assert decode_face(face).size == (120, 160)


def test_dg2_image_bytes_must_match_a_known_format():
    with pytest.raises(LdsError, match="does not match"):
        parse_dg2(make_dg2(b"GIF89a" + bytes(50), 10, 10))
    with pytest.raises(LdsError, match="unknown image data type 7"):
        parse_dg2(make_dg2(b"GIF89a" + bytes(50), 10, 10, image_type=7))


def test_undecodable_face_raises_lds_error():
    with pytest.raises(LdsError, match="does not decode"):
        decode_face(FaceImage("image/jpeg", b"\xff\xd8\xff" + bytes(100), 10, 10))


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda r: b"XYZ\x00" + r[4:], "not an ISO 19794-5"),
    (lambda r: r[:4] + b"030\x00" + r[8:], "unsupported"),
    (lambda r: r[:12] + b"\x00\x00" + r[14:], "no image"),
    (lambda r: r[:14] + b"\x00\x00\x00\x10" + r[18:], "leaves no image"),
    (lambda r: r[:14] + b"\x00\xff\xff\xff" + r[18:], "image data truncated"),
    (lambda r: r[:18] + b"\xff\xff" + r[20:], "image information truncated"),
])
def test_facial_record_errors(mutate, reason):
    record = facial_record(make_face_jpeg(), 360, 480)
    with pytest.raises(LdsError, match=reason):
        parse_facial_record(mutate(record))


def test_dg2_without_templates():
    with pytest.raises(LdsError, match="7F61 missing"):
        parse_dg2(tlv.encode(0x75, tlv.encode(0x02, b"\x01")))
    with pytest.raises(LdsError, match="7F60"):
        parse_dg2(tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01"))))
    with pytest.raises(LdsError, match="5F2E"):
        parse_dg2(tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x7F60, tlv.encode(
            0xA1, b"")))))


# --- truncation and fuzzing: only LdsError ever escapes --------------------------------

PARSERS = {EF.COM: parse_com, EF.DG1: parse_dg1, EF.DG2: parse_dg2}


def _prefix_lengths(size: int) -> list[int]:
    return sorted(set(range(min(size, 300))) | set(range(300, size, 97)))


@pytest.mark.parametrize("ef", list(PARSERS))
def test_every_truncation_raises_lds_error(passport, ef):
    data = passport.files[ef]
    for n in _prefix_lengths(len(data)):
        with pytest.raises(LdsError):
            PARSERS[ef](data[:n])


def test_truncated_facial_record_raises_lds_error():
    record = facial_record(make_face_jpeg(2_000, 60, 80), 60, 80)
    for n in range(len(record)):
        with pytest.raises(LdsError):
            parse_facial_record(record[:n])


@settings(max_examples=300)
@given(data=st.binary(max_size=300), ef=st.sampled_from(list(PARSERS)))
def test_random_bytes_only_raise_lds_error(data, ef):
    try:
        PARSERS[ef](data)
    except LdsError:
        pass


@settings(max_examples=300)
@given(ef=st.sampled_from(list(PARSERS)), data=st.data())
def test_mutated_files_only_raise_lds_error(ef, data):
    original = make_passport(make_test_pki()).files[ef]
    if ef == EF.DG2:  # keep the interesting part, the headers, in reach
        original = make_dg2(make_face_jpeg(2_000, 60, 80), 60, 80)
    index = data.draw(st.integers(0, len(original) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = original[:index] + bytes([value]) + original[index + 1:]
    try:
        result = PARSERS[ef](mutated)
    except LdsError:
        return
    if ef == EF.DG2:
        try:
            decode_face(result)
        except LdsError:
            pass


# --- the synthetic face -----------------------------------------------------------------

def test_face_jpeg_is_near_the_requested_size_and_portrait_shaped():
    jpeg = make_face_jpeg(20_000)
    assert 15_000 <= len(jpeg) <= 20_000
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.size == (360, 480)
    small = make_face_jpeg(8_000)
    assert 5_000 <= len(small) <= 8_000
