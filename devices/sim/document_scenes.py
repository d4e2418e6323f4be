"""Synthetic "a page photographed on a desk" frames, for tests and the simulated camera.

A page (an A4 证明 with a table, an ID-1 card, a passport data page; all text fictional) is
drawn with Pillow, laid on a textured desk through a perspective transform with a soft
shadow, lit unevenly and given sensor noise. Every frame comes from a seed: the same seed
gives the same page, desk and placement, and ``frame`` changes only the noise, so a run of
frames of one still scene looks like a camera watching a page that does not move.

Each scene carries the truth a test checks against: where the page's corners are in the
frame, and where its dark heading band lies on the page.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from devices.printing.fonts import FONT_PATH
from devices.vision.document import Orientation, PaperKind

FRAME_SIZE = (1280, 720)
OCR_B_PATH = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"

# How the page is rendered before it is photographed (pixels per millimetre).
_RENDER_PX_PER_MM = {PaperKind.A4: 4.0, PaperKind.ID1: 10.0, PaperKind.PASSPORT: 8.0}
# The page's long side in the frame when it is well placed: a citizen holds a card closer
# than a sheet, so each fills a useful part of a 1280x720 frame.
_PLACED_LONG_PX = {PaperKind.A4: 620.0, PaperKind.ID1: 560.0, PaperKind.PASSPORT: 720.0}
# The heading band's top and bottom, as shares of the page height (upright page).
_BAND = {PaperKind.A4: (0.06, 0.11), PaperKind.ID1: (0.07, 0.22),
         PaperKind.PASSPORT: (0.05, 0.15)}
_PAPER_BGR = (228, 234, 236)  # a slightly warm white, as office paper photographs
_INK = (35, 35, 40)


class SceneVariant(enum.StrEnum):
    WELL_PLACED = "well_placed"
    TOO_SMALL = "too_small"  # far away
    TOO_CLOSE = "too_close"  # runs off the top and bottom of the frame
    CORNER_OUT = "corner_out"  # one corner out of the frame
    BLURRED = "blurred"  # out of focus
    GLARE = "glare"  # a reflection of the ceiling light on the page
    DARK = "dark"  # under-exposed
    NO_DOCUMENT = "no_document"  # the desk alone


@dataclass(frozen=True, repr=False)
class Scene:
    image: np.ndarray  # the BGR frame
    variant: SceneVariant
    kind: PaperKind
    orientation: Orientation
    # The page's corners in the frame, clockwise from the page's own top-left; None without
    # a page. They may lie outside the frame.
    corners: np.ndarray | None
    # The dark heading band as (top, bottom) shares of the upright page's height.
    band: tuple[float, float]

    def __repr__(self) -> str:
        return f"Scene({self.variant}, {self.kind}, {self.orientation})"


def render_scene(variant: SceneVariant = SceneVariant.WELL_PLACED,
                 kind: PaperKind = PaperKind.A4, *, seed: int = 0, frame: int = 0,
                 orientation: Orientation | None = None, shift: tuple[float, float] = (0, 0),
                 size: tuple[int, int] = FRAME_SIZE) -> Scene:
    """One frame of ``variant``. ``shift`` moves the page (pixels), for frames of a hand
    still moving it; ``orientation`` turns an A4 sheet landscape or a card portrait."""
    natural = Orientation.PORTRAIT if kind is PaperKind.A4 else Orientation.LANDSCAPE
    orientation = orientation or natural
    clean, corners = _still(variant, kind, seed, orientation, (float(shift[0]), float(shift[1])),
                            size)
    width, height = size
    noise = np.random.default_rng([seed, frame]).standard_normal((height, width, 1),
                                                                 dtype=np.float32) * 2.5
    image = np.clip(clean.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return Scene(image, variant, kind, orientation,
                 None if corners is None else corners.copy(), _BAND[kind])


@functools.lru_cache(maxsize=8)
def _still(variant: SceneVariant, kind: PaperKind, seed: int, orientation: Orientation,
           shift: tuple[float, float],
           size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The scene before sensor noise (cached: consecutive frames of one scene share it)."""
    natural = Orientation.PORTRAIT if kind is PaperKind.A4 else Orientation.LANDSCAPE
    rng = np.random.default_rng(seed)
    image = _desk(seed, size).astype(np.float32)
    corners: np.ndarray | None = None
    if variant is not SceneVariant.NO_DOCUMENT:
        page, alpha = _page(kind, seed)
        if orientation is not natural:
            page, alpha = np.rot90(page), np.rot90(alpha)
        corners = _placement(variant, page.shape[1] / page.shape[0], kind, rng, size, shift)
        image = _lay(image, page, alpha, corners)
        if variant is SceneVariant.GLARE:
            image = _glare(image, corners, rng)
    image *= _lighting(rng, size)
    if variant is SceneVariant.DARK:
        image *= 0.27
    if variant is SceneVariant.BLURRED:
        image = cv2.GaussianBlur(image, (0, 0), 3.5)
    # Half floats: a third of the memory, and a blown-out highlight stays above 255 until
    # the noise is added, as a sensor clips after its noise.
    still = image.astype(np.float16)
    still.flags.writeable = False
    if corners is not None:
        corners.flags.writeable = False
    return still, corners


def clear_caches() -> None:
    """Forget the pages, desks and scenes kept for the next frame (memory; a test proving
    that a seed alone makes the frame)."""
    _page.cache_clear()
    _desk.cache_clear()
    _still.cache_clear()


def render_page(kind: PaperKind, seed: int = 0) -> np.ndarray:
    """The flat page as printed (BGR), upright in its natural orientation."""
    return _page(kind, seed)[0].copy()


# -- the page -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _page(kind: PaperKind, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(BGR page, alpha 0..1) for the kind; cached: rendering text is the slow part."""
    short_mm, long_mm = kind.size_mm
    ppm = _RENDER_PX_PER_MM[kind]
    if kind is PaperKind.A4:
        size = (round(short_mm * ppm), round(long_mm * ppm))
    else:
        size = (round(long_mm * ppm), round(short_mm * ppm))
    background = {PaperKind.A4: _PAPER_BGR, PaperKind.ID1: (236, 226, 214),
                  PaperKind.PASSPORT: (220, 232, 226)}[kind]
    canvas = Image.new("RGB", size, background[::-1])
    draw = ImageDraw.Draw(canvas)
    rng = np.random.default_rng(seed)
    w, h = size
    band_top, band_bottom = (round(f * h) for f in _BAND[kind])
    draw.rectangle((round(0.06 * w), band_top, round(0.94 * w), band_bottom),
                   fill=_INK[::-1])
    title = {PaperKind.A4: "证  明", PaperKind.ID1: "测试卡 SPECIMEN",
             PaperKind.PASSPORT: "样本 SPECIMEN 护照"}[kind]
    title_font = _font(round(0.7 * (band_bottom - band_top)))
    draw.text((w // 2, (band_top + band_bottom) // 2), title, font=title_font,
              fill=(245, 245, 245), anchor="mm")
    if kind is PaperKind.A4:
        _a4_body(draw, w, h, band_bottom, rng)
    else:
        _card_body(draw, kind, w, h, band_bottom, rng)
    page = cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR)
    alpha = np.ones((h, w), np.float32)
    if kind is PaperKind.ID1:
        # ID-1 corners are rounded (r = 3.18 mm): the detector must not take the arcs for sides.
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), round(3.18 * ppm),
                                               fill=255)
        alpha = np.asarray(mask, np.float32) / 255.0
    page.flags.writeable = False
    alpha.flags.writeable = False
    return page, alpha


@functools.lru_cache(maxsize=32)
def _font(size: int, path: str = str(FONT_PATH)) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, max(6, size))


_A4_LINES = (
    "兹证明测试申请人甲同志系本单位职工，",
    "自二〇一八年起在本单位工作至今，特此证明。",
    "本证明仅用于办理测试事项，复印无效。",
    "This certificate is a synthetic specimen for software tests.",
)


def _a4_body(draw: ImageDraw.ImageDraw, w: int, h: int, top: int,
             rng: np.random.Generator) -> None:
    left, right = round(0.1 * w), round(0.9 * w)
    body = _font(round(0.022 * h))
    y = top + round(0.05 * h)
    for line in _A4_LINES:
        draw.text((left, y), line, font=body, fill=_INK[::-1])
        y += round(0.04 * h)
    # A table of fictional figures: rows differ by seed so two pages never look alike.
    rows, cols = 6, 4
    table_top = y + round(0.03 * h)
    row_h = round(0.045 * h)
    col_w = (right - left) / cols
    headers = ("项目", "年度", "金额（元）", "备注")
    for r in range(rows + 1):
        draw.line((left, table_top + r * row_h, right, table_top + r * row_h),
                  fill=_INK[::-1], width=2)
    for c in range(cols + 1):
        x = round(left + c * col_w)
        draw.line((x, table_top, x, table_top + rows * row_h), fill=_INK[::-1], width=2)
    cell = _font(round(0.018 * h))
    for r in range(rows):
        for c in range(cols):
            text = headers[c] if r == 0 else (
                f"测试{r}" if c == 0 else str(2018 + r) if c == 1
                else f"{int(rng.integers(1000, 99999)):,}" if c == 2 else "—")
            draw.text((round(left + (c + 0.5) * col_w), table_top + r * row_h + row_h // 2),
                      text, font=cell, fill=_INK[::-1], anchor="mm")
    # 公章: a red ring with text, so colour survives into the capture as on a real 证明.
    cx, cy, radius = round(0.7 * w), round(table_top + rows * row_h + 0.12 * h), round(0.09 * w)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius),
                 outline=(200, 30, 30), width=max(3, radius // 12))
    draw.text((cx, cy), "测试专用章", font=_font(radius // 3), fill=(200, 30, 30), anchor="mm")
    draw.text((left, cy + radius + round(0.02 * h)), "二〇二五年一月一日", font=body,
              fill=_INK[::-1])


def _card_body(draw: ImageDraw.ImageDraw, kind: PaperKind, w: int, h: int, top: int,
               rng: np.random.Generator) -> None:
    photo = (round(0.06 * w), top + round(0.08 * h), round(0.3 * w), round(0.86 * h))
    if kind is PaperKind.ID1:
        photo = (round(0.68 * w), top + round(0.08 * h), round(0.92 * w), round(0.82 * h))
    draw.rectangle(photo, fill=(150, 150, 155), outline=_INK[::-1], width=2)
    text_left = round(0.06 * w) if kind is PaperKind.ID1 else round(0.35 * w)
    font = _font(round(0.055 * h))
    labels = ("姓名 测试", "性别 男  民族 汉", f"编号 T{int(rng.integers(10**7, 10**8))}",
              "有效期 2030.01.01")
    y = top + round(0.08 * h)
    for label in labels:
        draw.text((text_left, y), label, font=font, fill=_INK[::-1])
        y += round(0.1 * h)
    if kind is PaperKind.PASSPORT:
        mrz = _font(round(0.05 * h), OCR_B_PATH)
        number = f"T{int(rng.integers(10**7, 10**8))}"
        lines = ("P<CHNSPECIMEN<<TEST<<<<<<<<<<<<<<<<<<<<<<<<<",
                 f"{number}<0CHN9001013M3001014<<<<<<<<<<<<<<02")
        for i, line in enumerate(lines):
            draw.text((round(0.04 * w), round(0.84 * h) + i * round(0.07 * h)), line,
                      font=mrz, fill=_INK[::-1])


# -- the photograph -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _desk(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Wood grain or a grey fabric, chosen by the seed (cached, read-only)."""
    width, height = size
    rng = np.random.default_rng([seed, 7])
    low = cv2.resize(rng.normal(0, 1, (9, 16)).astype(np.float32), size,
                     interpolation=cv2.INTER_CUBIC)
    fine = rng.standard_normal((height, width), dtype=np.float32)
    if seed % 3 == 2:
        base = np.array([95, 98, 102], np.float32) + np.float32(rng.uniform(-10, 10))
        weave = 10 * np.sin(np.arange(width, dtype=np.float32) / 1.7)[None, :] * np.sin(
            np.arange(height, dtype=np.float32) / 1.9)[:, None]
        shade = 12 * low + weave + 6 * fine
    else:
        base = np.array([48, 88, 138], np.float32) * np.float32(rng.uniform(0.8, 1.15))
        y = np.arange(height, dtype=np.float32)[:, None] + 25 * low
        grain = np.sin(y * np.float32(2 * math.pi / rng.uniform(9, 16))) \
            + 0.5 * np.sin(y * np.float32(2 * math.pi / rng.uniform(3, 5)))
        shade = 14 * grain + 10 * low + 5 * fine
    desk = np.clip(base[None, None, :] + shade[:, :, None], 0, 255).astype(np.uint8)
    desk.flags.writeable = False
    return desk


def _placement(variant: SceneVariant, aspect: float, kind: PaperKind,
               rng: np.random.Generator, size: tuple[int, int],
               shift: tuple[float, float]) -> np.ndarray:
    """Where the page's corners land: a rectangle turned a little, seen a little from the
    front (the top edge shorter: the camera leans back), then moved for the variant."""
    width, height = size
    long_px = _PLACED_LONG_PX[kind]
    angle = rng.uniform(-6.0, 6.0)
    if variant is SceneVariant.TOO_SMALL:
        long_px *= 0.38
    keystone = rng.uniform(0.0, 0.08)
    if variant is SceneVariant.TOO_CLOSE:
        # Taller than the frame, so it runs off the top and the bottom, yet narrower.
        long_px = 1.08 * height * max(aspect, 1 / aspect) if aspect >= 1 else 1.25 * height
        angle, keystone = 0.0, 0.0
    elif variant is SceneVariant.CORNER_OUT:
        # Turned enough that one corner can leave the frame while its neighbours stay in.
        long_px *= 0.9
        angle = rng.choice([-1, 1]) * rng.uniform(15.0, 18.0)
    page_w = long_px if aspect >= 1 else long_px * aspect
    page_h = long_px / aspect if aspect >= 1 else long_px
    if variant is not SceneVariant.TOO_CLOSE:
        # A sheet turned to fit: the frame is wider than it is tall.
        fit = min(1.0, 0.86 * height / page_h, 0.9 * width / page_w)
        page_w, page_h = page_w * fit, page_h * fit
    half_w, half_h = page_w / 2, page_h / 2
    rect = np.array([[-half_w * (1 - keystone), -half_h], [half_w * (1 - keystone), -half_h],
                     [half_w * (1 + keystone / 2), half_h], [-half_w * (1 + keystone / 2), half_h]],
                    np.float64)
    theta = math.radians(angle)
    rotation = np.array([[math.cos(theta), -math.sin(theta)],
                         [math.sin(theta), math.cos(theta)]])
    corners = rect @ rotation.T
    centre = np.array([width / 2 + rng.uniform(-40, 40), height / 2 + rng.uniform(-20, 20)])
    if variant is SceneVariant.TOO_CLOSE:
        centre = np.array([width / 2, height / 2])
    corners += centre
    if variant is SceneVariant.CORNER_OUT:
        # The rightmost corner 45 px past the right edge; the others stay in view.
        corners[:, 0] += width + 45 - corners[:, 0].max()
        corners[:, 1] += np.clip(0, 10 - corners[:, 1].min(), height - 10 - corners[:, 1].max())
    return (corners + np.asarray(shift, np.float64)).astype(np.float32)


def _lay(desk: np.ndarray, page: np.ndarray, alpha: np.ndarray,
         corners: np.ndarray) -> np.ndarray:
    height, width = desk.shape[:2]
    # Shrink to about the size it will have first, so the warp does not alias the text.
    target_long = float(max(np.linalg.norm(corners[1] - corners[0]),
                            np.linalg.norm(corners[3] - corners[0])))
    factor = min(1.0, 1.25 * target_long / max(page.shape[:2]))
    if factor < 1.0:
        page = cv2.resize(page, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    ph, pw = page.shape[:2]
    source = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, corners)
    flat = cv2.warpPerspective(page.astype(np.float32), matrix, (width, height),
                               flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(np.ascontiguousarray(alpha), matrix, (width, height),
                                flags=cv2.INTER_LINEAR)[:, :, None]
    shadow_matrix = matrix.copy()
    shadow_matrix[:2, 2] += (5.0, 7.0)
    shadow = cv2.warpPerspective(np.ascontiguousarray(alpha), shadow_matrix, (width, height))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 6.0)[:, :, None]
    out = desk * (1.0 - 0.45 * shadow)
    return out * (1.0 - cover) + flat * cover


def _glare(image: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A blown-out reflection somewhere on the page's middle."""
    height, width = image.shape[:2]
    weights = rng.dirichlet(np.ones(4)) * 0.5 + 0.125
    cx, cy = (weights[:, None] * corners).sum(axis=0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    spot = 420.0 * np.exp(-r2 / (2 * 48.0 ** 2))
    return image + spot[:, :, None]


def _lighting(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """The ceiling light falls off across the desk."""
    width, height = size
    gx, gy = rng.uniform(-0.12, 0.12, 2)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    return (1.0 + gx * xs + gy * ys - 0.15 * (xs ** 2 + ys ** 2))[:, :, None]
