"""Specimen data pages (ICAO 9303-like, made-up data) photographed by a simulated camera, for
MRZ reading tests, the simulated camera and testers: a TD3 passport page, a TD2 document and
a TD1 card (卡式通行证), their MRZ set in OCR-B with every check digit computed, lying on a desk
at a slight angle and perspective, blurred, noisy and unevenly lit.

Everything is drawn from a seed, so a frame that fails can be drawn again exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from devices.emrtd.mrz import SHAPES, Mrz, format_mrz
from devices.printing.fonts import FONT_PATH

OCRB_PATH = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
FRAME_SIZE = (1280, 720)  # width, height
PX_PER_MM = 12.0  # the flat page is drawn at about 300 dpi, then photographed

# ID-3 (passport page), ID-2 and ID-1 (card) sizes, Part 3 / Part 4 / Part 5.
PAGE_MM: dict[str, tuple[float, float]] = {"TD3": (125.0, 88.0), "TD2": (105.0, 74.0),
                                           "TD1": (85.6, 54.0)}
_PITCH_MM = 2.54  # ten characters an inch
_LINE_PITCH_MM = 4.23  # six lines an inch
_MRZ_BOTTOM_MM = {"TD3": 4.5, "TD2": 4.5, "TD1": 3.0}  # last baseline above the bottom edge

SPECIMENS: dict[str, Mrz] = {
    # ICAO 9303 Part 4 / Part 5 specimens of the imaginary state of Utopia.
    "utopia-td3": Mrz(format="TD3", document_code="P", issuing_state="UTO",
                      document_number="L898902C3", birth_date="740812", sex="F",
                      expiry_date="120415", nationality="UTO", surname="ERIKSSON",
                      given_names="ANNA MARIA", optional_data="ZE184226B"),
    "utopia-td2": Mrz(format="TD2", document_code="I", issuing_state="UTO",
                      document_number="D23145890", birth_date="740812", sex="F",
                      expiry_date="120415", nationality="UTO", surname="ERIKSSON",
                      given_names="ANNA MARIA", optional_data=""),
    "utopia-td1": Mrz(format="TD1", document_code="I", issuing_state="UTO",
                      document_number="D23145890", birth_date="740812", sex="F",
                      expiry_date="120415", nationality="UTO", surname="ERIKSSON",
                      given_names="ANNA MARIA", optional_data="", optional_data_2=""),
    # Made-up people on Chinese-style documents: a passport (PO = 普通护照) and a card-format
    # permit (往来港澳通行证-like, code CS). Not real document numbers.
    "chn-passport-td3": Mrz(format="TD3", document_code="PO", issuing_state="CHN",
                            document_number="EC1234567", birth_date="900307", sex="M",
                            expiry_date="340306", nationality="CHN", surname="CESHI",
                            given_names="YANGBEN", optional_data="MOLBNGJPKIMM"),
    "chn-permit-td1": Mrz(format="TD1", document_code="CS", issuing_state="CHN",
                          document_number="C01234567", birth_date="851120", sex="F",
                          expiry_date="310815", nationality="CHN", surname="CESHI",
                          given_names="LINGLING", optional_data="", optional_data_2=""),
}

_SURNAMES = ("ZHANG", "WANG", "LI", "ZHAO", "CHEN", "OUYANG", "SITU", "ERIKSSON", "MUSTERMANN",
             "DUPONT", "GARCIA<LOPEZ", "NGUYEN", "OKONKWO", "SCHMIDT")
_GIVEN = ("WEI", "XIAOMING", "JIANGUO", "LINGLING", "ANNA<MARIA", "PETER<JOHN", "MEI", "HAO",
          "ZIHAN", "YUTONG", "JEAN<LUC", "FATIMA", "OLUWASEUN", "KARL<HEINZ")
_STATES = ("UTO", "CHN", "D<<", "FRA", "GBR", "HKG", "MAC")
_CODES = {"TD3": ("P", "PO", "PE"), "TD2": ("I", "AC", "ID"), "TD1": ("I", "CS", "ID")}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class Conditions:
    """How the page is photographed; every range is drawn from uniformly."""

    px_per_mm: tuple[float, float]  # the page's scale in the frame
    rotation_deg: float  # up to this much either way
    perspective: float  # corner jitter, as a share of the page's width
    blur_sigma: tuple[float, float]
    noise_sigma: float
    light: float  # depth of the uneven lighting, 0 = even
    jpeg_quality: int  # 0 = no compression round trip


CLEAN = Conditions(px_per_mm=(6.5, 8.0), rotation_deg=2.0, perspective=0.01,
                   blur_sigma=(0.5, 0.8), noise_sigma=2.0, light=0.1, jpeg_quality=0)
MODERATE = Conditions(px_per_mm=(5.5, 7.5), rotation_deg=8.0, perspective=0.03,
                      blur_sigma=(0.9, 1.4), noise_sigma=6.0, light=0.35, jpeg_quality=80)


@dataclass(frozen=True, repr=False)
class MrzScene:
    """A camera frame and what it shows: the MRZ text (None when the page has none)."""

    image: np.ndarray  # 1280 x 720 BGR uint8
    mrz: Mrz | None
    text: str | None
    seed: int

    def __repr__(self) -> str:
        shown = self.mrz.format if self.mrz else "no MRZ"
        return f"MrzScene(seed={self.seed}, {shown})"


def random_specimen(fmt: str, rng: np.random.Generator) -> Mrz:
    """A made-up holder and document of format ``fmt`` with plausible fields."""
    if fmt not in SHAPES:
        raise ValueError(f"unknown MRZ format {fmt!r}")

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    def date(first_year: int, last_year: int) -> str:
        year = int(rng.integers(first_year, last_year + 1)) % 100
        return f"{year:02d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"

    number = pick(("E", "C", "L", "G")) + "".join(
        _ALNUM[int(rng.integers(len(_ALNUM)))] if rng.random() < 0.25 else
        str(int(rng.integers(10))) for _ in range(8))
    state = pick(_STATES)
    optional = ""
    if fmt == "TD3" and rng.random() < 0.6:
        optional = "".join(_ALNUM[int(rng.integers(len(_ALNUM)))]
                           for _ in range(int(rng.integers(6, 15))))
    return Mrz(format=fmt, document_code=pick(_CODES[fmt]), issuing_state=state,
               document_number=number, birth_date=date(1940, 2019), sex=pick(("M", "F", "<")),
               expiry_date=date(2024, 2036), nationality=state,
               surname=pick(_SURNAMES).replace("<", " "),
               given_names=pick(_GIVEN).replace("<", " "), optional_data=optional)


def mrz_scene(specimen: str | Mrz, seed: int, conditions: Conditions = CLEAN,
              smudge: tuple[tuple[int, int], ...] = ()) -> MrzScene:
    """A frame of ``specimen`` (a ``SPECIMENS`` key, or an ``Mrz``); ``smudge`` lists MRZ
    character cells (line, column) to blot with ink."""
    mrz = SPECIMENS[specimen] if isinstance(specimen, str) else specimen
    text = format_mrz(mrz)
    rng = np.random.default_rng(seed)
    page = render_page(mrz, rng, smudge=smudge)
    image = photograph(page, PAGE_MM[mrz.format], rng, conditions)
    return MrzScene(image, mrz, text, seed)


def page_without_mrz_scene(seed: int, conditions: Conditions = CLEAN) -> MrzScene:
    """A data page whose MRZ zone is empty (a visa page, the cover side of a card): printed
    fields and a guilloche, but nothing an MRZ reader may report."""
    rng = np.random.default_rng(seed)
    mrz = random_specimen("TD3", rng)
    page = render_page(mrz, rng, with_mrz=False)
    return MrzScene(photograph(page, PAGE_MM["TD3"], rng, conditions), None, None, seed)


# -- the flat page --------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _font(path: Path, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size_px)


def _px(mm: float) -> int:
    return round(mm * PX_PER_MM)


def render_page(mrz: Mrz, rng: np.random.Generator, *, with_mrz: bool = True,
                smudge: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """The data page flat, at ``PX_PER_MM``, as BGR: header, photo, printed fields, guilloche
    and the MRZ in OCR-B (character pitch 2.54 mm, line pitch 4.23 mm)."""
    width_mm, height_mm = PAGE_MM[mrz.format]
    size = (_px(width_mm), _px(height_mm))
    tint = rng.uniform(225, 245, 3)
    page = Image.new("RGB", size, tuple(int(c) for c in tint))
    draw = ImageDraw.Draw(page)
    _guilloche(draw, size, rng)
    _printed_fields(page, mrz)
    if with_mrz:
        _mrz_text(draw, mrz, size)
    rgb = np.asarray(page).copy()
    for line, column in smudge:
        # Its own generator, so a blotted page is photographed exactly as the clean one.
        _blot(rgb, mrz.format, line, column, np.random.default_rng([line, column]))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _guilloche(draw: ImageDraw.ImageDraw, size: tuple[int, int],
               rng: np.random.Generator) -> None:
    # Security print: fine coloured waves over the whole page, which an MRZ finder must ignore.
    width, height = size
    xs = np.arange(0, width, 4)
    for k in range(14):
        colour = (int(rng.uniform(150, 210)), int(rng.uniform(170, 215)), int(rng.uniform(190, 235)))
        base = height * (k + 0.5) / 14
        amp, period, phase = rng.uniform(8, 30), rng.uniform(150, 500), rng.uniform(0, 6.3)
        ys = base + amp * np.sin(xs / period * 2 * np.pi + phase)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=2)


def _printed_fields(page: Image.Image, mrz: Mrz) -> None:
    draw = ImageDraw.Draw(page)
    width, height = page.size
    mrz_top = height - _px(_MRZ_BOTTOM_MM[mrz.format] + SHAPES[mrz.format][0] * _LINE_PITCH_MM
                           + 2)
    chinese = mrz.issuing_state == "CHN"
    title = {"TD3": "中华人民共和国护照 PASSPORT" if chinese else "UTOPIA  PASSPORT",
             "TD2": "TRAVEL DOCUMENT", "TD1": "往来港澳通行证 EXIT-ENTRY PERMIT" if chinese
             else "IDENTITY CARD"}[mrz.format]
    ink = (40, 40, 60)
    draw.text((_px(4), _px(2.5)), title, font=_font(FONT_PATH, _px(3.2)), fill=ink)
    # Photo: a grey box with a head and shoulders.
    left, top = _px(4), _px(9)
    photo_w = int(width * 0.27)
    photo_h = min(int(photo_w * 1.3), mrz_top - top - _px(2))
    photo = Image.new("RGB", (photo_w, photo_h), (200, 205, 210))
    face = ImageDraw.Draw(photo)
    cx = photo_w // 2
    face.ellipse((cx - photo_w // 5, photo_h // 6, cx + photo_w // 5, photo_h // 6 + photo_w // 2),
                 fill=(120, 110, 105))
    face.ellipse((0, int(photo_h * 0.7), photo_w, int(photo_h * 1.3)), fill=(70, 75, 90))
    page.paste(photo, (left, top))
    fields = (("Type/类型", mrz.document_code), ("Country code/国家码", mrz.issuing_state),
              ("No./号码", mrz.document_number), ("Surname/姓", mrz.surname),
              ("Given names/名", mrz.given_names), ("Sex/性别", mrz.sex),
              ("Date of birth/出生日期", _printed_date(mrz.birth_date)),
              ("Date of expiry/有效期至", _printed_date(mrz.expiry_date)))
    label_font, value_font = _font(FONT_PATH, _px(1.7)), _font(FONT_PATH, _px(2.6))
    x, y = left + photo_w + _px(5), top
    step = max(_px(4.8), (mrz_top - top) // len(fields))
    for label, value in fields:
        if y + step > mrz_top:
            break
        draw.text((x, y), label, font=label_font, fill=(90, 90, 110))
        draw.text((x, y + _px(1.9)), value, font=value_font, fill=ink)
        y += step


def _printed_date(yymmdd: str) -> str:
    months = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    if not yymmdd.isdigit():
        return yymmdd
    return f"{yymmdd[4:6]} {months[int(yymmdd[2:4]) - 1]} {yymmdd[0:2]}"


def _cell_origin(fmt: str, line: int, column: int) -> tuple[float, float]:
    """Left edge and baseline of an MRZ character cell, in page pixels."""
    rows, columns = SHAPES[fmt]
    width_mm, height_mm = PAGE_MM[fmt]
    left_mm = (width_mm - columns * _PITCH_MM) / 2
    baseline_mm = height_mm - _MRZ_BOTTOM_MM[fmt] - (rows - 1 - line) * _LINE_PITCH_MM
    return (left_mm + column * _PITCH_MM) * PX_PER_MM, baseline_mm * PX_PER_MM


def _mrz_text(draw: ImageDraw.ImageDraw, mrz: Mrz, size: tuple[int, int]) -> None:
    # OCR-B's advance is 0.723 em: an em that makes the advance the 2.54 mm pitch gives the
    # font's own cap height (about 2.5 mm, OCR-B size 1).
    font = _font(OCRB_PATH, round(_PITCH_MM * PX_PER_MM / 0.723))
    for row, text in enumerate(format_mrz(mrz).split("\n")):
        for column, char in enumerate(text):
            x, baseline = _cell_origin(mrz.format, row, column)
            draw.text((x, baseline), char, font=font, fill=(25, 25, 30), anchor="ls")


def _blot(rgb: np.ndarray, fmt: str, line: int, column: int, rng: np.random.Generator) -> None:
    # Ink or dirt over a character cell and a little around it: dark, irregular, translucent.
    x, baseline = _cell_origin(fmt, line, column)
    cx, cy = int(x + _PITCH_MM * PX_PER_MM / 2), int(baseline - 1.2 * PX_PER_MM)
    mask = np.zeros(rgb.shape[:2], np.float32)
    for _ in range(6):
        dx, dy = rng.normal(0, 0.6 * PX_PER_MM, 2)
        axes = (int(rng.uniform(0.9, 1.6) * PX_PER_MM), int(rng.uniform(0.9, 1.5) * PX_PER_MM))
        cv2.ellipse(mask, (int(cx + dx), int(cy + dy)), axes, float(rng.uniform(0, 180)), 0,
                    360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), PX_PER_MM * 0.3)[..., None] * 0.85
    rgb[:] = (rgb * (1 - mask) + np.array([50, 45, 40]) * mask).astype(np.uint8)


# -- the photograph -------------------------------------------------------------------------
def photograph(page: np.ndarray, page_mm: tuple[float, float], rng: np.random.Generator,
               conditions: Conditions = CLEAN) -> np.ndarray:
    """The page lying on a desk under the camera: a 1280 x 720 BGR frame."""
    width, height = FRAME_SIZE
    frame = _desk(rng).astype(np.float32)
    # A page held too close for the frame is held a little further away.
    scale = min(rng.uniform(*conditions.px_per_mm),
                0.92 * width / page_mm[0], 0.85 * height / page_mm[1])
    pw, ph = page_mm[0] * scale, page_mm[1] * scale
    angle = np.deg2rad(rng.uniform(-conditions.rotation_deg, conditions.rotation_deg))
    half = np.array([[-pw, -ph], [pw, -ph], [pw, ph], [-pw, ph]]) / 2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = half @ rot.T + rng.normal(0, conditions.perspective * pw / 2, (4, 2))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    margin = 20
    centre = np.array([rng.uniform(margin - lo[0], width - margin - hi[0]) if
                       width - 2 * margin > hi[0] - lo[0] else width / 2,
                       rng.uniform(margin - lo[1], height - margin - hi[1]) if
                       height - 2 * margin > hi[1] - lo[1] else height / 2])
    dst = (corners + centre).astype(np.float32)
    src = np.array([[0, 0], [page.shape[1], 0], [page.shape[1], page.shape[0]],
                    [0, page.shape[0]]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    # Downscale the page first so the warp does not alias the fine print.
    factor = scale / PX_PER_MM
    small = cv2.resize(page, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    matrix = matrix @ np.diag([1 / factor, 1 / factor, 1.0])
    warped = cv2.warpPerspective(small, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(small.shape[:2], np.float32), matrix, (width, height))
    shadow = cv2.GaussianBlur(np.roll(mask, (6, 5), axis=(0, 1)), (0, 0), 6)[..., None]
    frame *= 1 - 0.35 * shadow
    frame = frame * (1 - mask[..., None]) + warped.astype(np.float32) * mask[..., None]
    frame *= _lighting(rng, conditions.light)[..., None]
    sigma = rng.uniform(*conditions.blur_sigma)
    frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    frame += conditions.noise_sigma * rng.standard_normal(frame.shape, dtype=np.float32)
    image = np.clip(frame, 0, 255).astype(np.uint8)
    if conditions.jpeg_quality:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY,
                                                conditions.jpeg_quality])
        if ok:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image


def _desk(rng: np.random.Generator) -> np.ndarray:
    width, height = FRAME_SIZE
    base = rng.uniform(60, 150, 3)
    coarse = cv2.resize(rng.normal(0, 12, (9, 16, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.normal(0, 10, (height, width)).astype(np.float32),
                             (0, 0), 1.5)
    return np.clip(base + coarse + grain[..., None], 0, 255)


def _lighting(rng: np.random.Generator, depth: float) -> np.ndarray:
    width, height = FRAME_SIZE
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * (xs / width - 0.5) + np.sin(direction) * (ys / height - 0.5))
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    spot = np.exp(-(((xs - cx) / width) ** 2 + ((ys - cy) / height) ** 2) * 3)
    return (1 - depth / 2) + depth * (0.6 * ramp + 0.6 * spot)

