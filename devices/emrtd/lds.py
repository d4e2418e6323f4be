"""Parsers for the LDS1 files the kiosk reads: EF.COM, DG1 (MRZ) and DG2 (face).

ICAO 9303 Part 10 section 4.7 for the templates, ISO/IEC 19794-5:2005 for the facial record
inside DG2. Chip content is untrusted input: every parser raises only ``LdsError`` (a
``ValueError``) whose message names the structure that was wrong, never the data in it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devices.emrtd.tlv import Tlv, TlvError, parse_all, parse_one

if TYPE_CHECKING:
    from PIL import Image

TAG_COM = 0x60
TAG_DG1 = 0x61
TAG_DG2 = 0x75
TAG_LDS_VERSION = 0x5F01
TAG_UNICODE_VERSION = 0x5F36
TAG_TAG_LIST = 0x5C
TAG_MRZ = 0x5F1F
TAG_BIT_GROUP = 0x7F61  # biometric information group template
TAG_BIT = 0x7F60  # biometric information template
TAG_BHT = 0xA1  # biometric header template
TAG_BDB = 0x5F2E  # biometric data block
TAG_BDB_ENCIPHERED = 0x7F2E

# Data-group number -> the tag its file starts with (Part 10, table 35).
DG_TAGS: dict[int, int] = {
    1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68,
    9: 0x69, 10: 0x6A, 11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70,
}
TAG_DGS: dict[int, int] = {tag: number for number, tag in DG_TAGS.items()}

# MRZ total length -> (lines, characters per line): TD3 passport, TD2, TD1 card (e.g. 往来港澳通行证).
MRZ_SHAPES: dict[int, tuple[int, int]] = {88: (2, 44), 72: (2, 36), 90: (3, 30)}
MRZ_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")

FACE_MIME = {0: "image/jpeg", 1: "image/jp2"}
JPEG_MAGIC = b"\xff\xd8\xff"
JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_CODESTREAM_MAGIC = b"\xff\x4f\xff\x51"


class LdsError(ValueError):
    """A file from the chip does not have the structure ICAO 9303 prescribes."""


@dataclass(frozen=True)
class Com:
    """EF.COM: which LDS and Unicode versions the chip follows and which data groups it has."""

    lds_version: str  # "1.7"
    unicode_version: str  # "4.0.0"
    tags: tuple[int, ...]  # file tags as listed, e.g. (0x61, 0x75)

    @property
    def data_groups(self) -> tuple[int, ...]:
        """Data-group numbers for the listed tags that are known (unknown tags skipped)."""
        return tuple(TAG_DGS[t] for t in self.tags if t in TAG_DGS)


@dataclass(frozen=True)
class FaceImage:
    """The portrait from DG2. Personal data: repr shows only its type and size."""

    mime: str  # "image/jpeg" or "image/jp2"
    data: bytes = field(repr=False)
    width: int
    height: int


def _outer(data: bytes, tag: int, name: str) -> Tlv:
    try:
        tlv = parse_one(bytes(data), allow_trailing=True)
    except TlvError as exc:
        raise LdsError(f"{name}: {exc}") from None
    if tlv.tag != tag:
        raise LdsError(f"{name}: starts with tag {tlv.tag:X}, expected {tag:X}")
    return tlv


def _children(tlv: Tlv, name: str) -> list[Tlv]:
    try:
        return parse_all(tlv.value)
    except TlvError as exc:
        raise LdsError(f"{name}: {exc}") from None


def _child(children: list[Tlv], tag: int, name: str) -> Tlv:
    for child in children:
        if child.tag == tag:
            return child
    raise LdsError(f"{name}: tag {tag:X} missing")


def _ascii_digits(value: bytes, size: int, name: str) -> str:
    if len(value) != size or not value.isdigit():
        raise LdsError(f"EF.COM: {name} must be {size} ASCII digits")
    return value.decode("ascii")


def parse_com(data: bytes) -> Com:
    com = _outer(data, TAG_COM, "EF.COM")
    children = _children(com, "EF.COM")
    lds = _ascii_digits(_child(children, TAG_LDS_VERSION, "EF.COM").value, 4, "LDS version")
    uni = _ascii_digits(_child(children, TAG_UNICODE_VERSION, "EF.COM").value, 6,
                        "Unicode version")
    tags = tuple(_child(children, TAG_TAG_LIST, "EF.COM").value)
    # "0107" is LDS 1.7; "040000" is Unicode 4.0.0.
    return Com(lds_version=f"{int(lds[:2])}.{int(lds[2:])}",
               unicode_version=f"{int(uni[:2])}.{int(uni[2:4])}.{int(uni[4:])}",
               tags=tags)


def parse_dg1(data: bytes) -> str:
    """The MRZ, its lines joined by "\\n" (2x44 TD3, 2x36 TD2 or 3x30 TD1)."""
    dg1 = _outer(data, TAG_DG1, "DG1")
    raw = _child(_children(dg1, "DG1"), TAG_MRZ, "DG1").value
    shape = MRZ_SHAPES.get(len(raw))
    if shape is None:
        raise LdsError(f"DG1: MRZ of {len(raw)} characters is not TD1, TD2 or TD3")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise LdsError("DG1: MRZ is not ASCII") from None
    if not MRZ_ALPHABET.issuperset(text):
        raise LdsError("DG1: MRZ has characters outside A-Z, 0-9 and <")
    lines, width = shape
    return "\n".join(text[i * width:(i + 1) * width] for i in range(lines))


def parse_dg2(data: bytes) -> FaceImage:
    """The first face image of DG2."""
    dg2 = _outer(data, TAG_DG2, "DG2")
    group = _child(_children(dg2, "DG2"), TAG_BIT_GROUP, "DG2")
    templates = [t for t in _children(group, "DG2 7F61") if t.tag == TAG_BIT]
    if not templates:
        raise LdsError("DG2: no biometric information template (7F60)")
    # The group's count (tag 02) says how many follow; the first is the one we show.
    parts = _children(templates[0], "DG2 7F60")
    for part in parts:
        if part.tag in (TAG_BDB, TAG_BDB_ENCIPHERED):
            return parse_facial_record(part.value)
    raise LdsError("DG2: no biometric data block (5F2E/7F2E)")


# ISO/IEC 19794-5:2005 sizes.
_RECORD_HEADER = 14  # "FAC\0", version, record length (4), number of images (2)
_FACIAL_INFO = 20
_FEATURE_POINT = 8
_IMAGE_INFO = 12


def parse_facial_record(block: bytes) -> FaceImage:
    """The first image of an ISO/IEC 19794-5 facial record (the DG2 biometric data block)."""
    if len(block) < _RECORD_HEADER:
        raise LdsError("DG2: facial record header truncated")
    if block[:4] != b"FAC\x00":
        raise LdsError("DG2: biometric data block is not an ISO 19794-5 facial record")
    if block[4:8] != b"010\x00":
        raise LdsError("DG2: unsupported ISO 19794-5 record version")
    if int.from_bytes(block[12:14], "big") < 1:
        raise LdsError("DG2: facial record holds no image")
    pos = _RECORD_HEADER
    if len(block) < pos + _FACIAL_INFO:
        raise LdsError("DG2: facial information block truncated")
    record_length = int.from_bytes(block[pos:pos + 4], "big")
    feature_points = int.from_bytes(block[pos + 4:pos + 6], "big")
    image_info = pos + _FACIAL_INFO + feature_points * _FEATURE_POINT
    image_start = image_info + _IMAGE_INFO
    if len(block) < image_start:
        raise LdsError("DG2: image information truncated")
    image_type = block[image_info + 1]
    width = int.from_bytes(block[image_info + 2:image_info + 4], "big")
    height = int.from_bytes(block[image_info + 4:image_info + 6], "big")
    image_length = record_length - (image_start - pos)
    if image_length <= 0:
        raise LdsError("DG2: facial record length leaves no image data")
    if image_start + image_length > len(block):
        raise LdsError("DG2: image data truncated")
    image = bytes(block[image_start:image_start + image_length])
    return FaceImage(mime=_image_mime(image_type, image), data=image, width=width,
                     height=height)


def _image_mime(image_type: int, image: bytes) -> str:
    # The bytes decide: some issuers label JPEG 2000 images as JPEG in the header.
    if image.startswith(JPEG_MAGIC):
        return "image/jpeg"
    if image.startswith(JP2_MAGIC) or image.startswith(J2K_CODESTREAM_MAGIC):
        return "image/jp2"
    if image_type in FACE_MIME:
        raise LdsError("DG2: image data does not match its declared format")
    raise LdsError(f"DG2: unknown image data type {image_type}")


def decode_face(face: FaceImage) -> Image.Image:
    """Decode the portrait with Pillow (JPEG 2000 needs Pillow built with OpenJPEG)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(face.data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as exc:
        raise LdsError(f"DG2: face image does not decode ({type(exc).__name__})") from None
    return image
