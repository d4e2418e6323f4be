"""Reading the machine-readable zone (MRZ) of a passport or permit from a camera frame:
TD3 (2 x 44, passports), TD2 (2 x 36) and TD1 (3 x 30, card permits such as 往来港澳通行证).

Two opinions per character, then the check digits:
- The band is found with the OpenCV blackhat / gradient / closing recipe, cut out upright and
  split into glyphs: the MRZ is OCR-B on a fixed 2.54 mm pitch, one glyph per character, so
  the rows must come out exactly 44, 36 or 30 glyphs long. Each glyph is matched against
  OCR-B templates (the first opinion); Tesseract reads the band with an MRZ set-up (the
  second), and its characters are aligned onto the glyphs. Tesseract's English model reads
  long runs of the filler ``<`` as ``K``; the template of ``<`` does not.
- Every field has a type (digits, letters, either): a letter in a digit field is mapped back
  (O->0, I->1, B->8 ...) and the reverse. Where the two opinions differ by a classic
  confusion, both are tried, and the check digits choose; a single cheapest answer passing
  every check digit is accepted. Where they differ otherwise (a blot, glare), or differ in
  a name (no check digit covers names), the frame is not read.

Limits that no reading can lift: check digits cannot tell apart characters whose values
differ by a multiple of 10 (G/6, L/1, U/0, A/0, K/<), so where both opinions agree on such a
confusion in a document number, the reading is wrong and passes; the chip refuses it (the
identify flow then asks the citizen to type). Nothing here logs or raises with MRZ content
(personal data); pytesseract hands Tesseract the band as a temporary PNG, deleted at once.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytesseract
from PIL import Image, ImageDraw, ImageFont

from devices.emrtd.mrz import SHAPES, Mrz, MrzError, check_digit, parse_mrz

log = logging.getLogger(__name__)

# Tesseract's OpenMP threads cost more than they save on a crop this small (measured here:
# about 0.6 s a call with them, 0.2 s without). pytesseract passes only os.environ to the
# child process; an operator's own setting wins.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

OCRB_PATH = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
_INDEX = {char: i for i, char in enumerate(MRZ_CHARS)}
_TESSERACT_CONFIG = (
    f"--oem 1 --psm 6 -c tessedit_char_whitelist={MRZ_CHARS} "
    # No dictionary: an MRZ line is not English, and words pull letters into digit fields.
    "-c load_system_dawg=0 -c load_freq_dawg=0"
)
TESSERACT_TIMEOUT_S = 5

# Band finding works on a frame scaled to this width; kernels are sized for it.
_WORK_WIDTH = 640
# Cap height (pixels) of the crop handed to Tesseract; its LSTM normalises lines to ~36 px.
_TESSERACT_CAP_PX = 24
# Glyph templates: the cell around a glyph, resized to this many pixels (w, h).
_CELL = (20, 26)
# A filler by template must beat the next glyph by this much (normalised correlation) to
# outvote Tesseract; the upside-down test counts glyphs matching a filler this well.
_FILLER_SCORE, _FILLER_MARGIN = 0.6, 0.02
# Template blur, in hundredths of the font size (measured best on generated frames).
_TEMPLATE_BLUR = 10.0
_MAX_BANDS = 3  # candidate regions tried per frame
_MAX_CHANGES_PER_FIELD = 1  # classic confusions tried per check digit
_MAX_COMBINATIONS = 2000
_MAX_TIES_PER_FIELD = 2  # positions per field where the two opinions may differ
_CLEAR_MARGIN = 0.05  # a template match this far ahead of the next stands alone
_MIN_GLYPH_SCORE = 0.55  # below this no template looks like the glyph (measured: print
# scores 0.66-0.86 at worst in a generated frame, ink blots 0.16-0.48)
_PLAUSIBLE = 0.1  # a confusion is tried where its template scores within this of the best

# Classic confusions between the letter and digit that look alike in OCR-B.
TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "T": "1", "Z": "2",
            "S": "5", "G": "6", "B": "8", "A": "4"}
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "4": "A", "5": "S", "6": "G", "8": "B"}
# In fields that may hold either, each of these is worth trying in place of the other.
# G/6, L/1 and U/0 are left out: their values differ by 10, so no check digit can tell them
# apart and trying them only makes ties.
_AMBIGUOUS = {"0": "OQD", "O": "0QD", "Q": "O0", "D": "0O", "1": "I", "I": "1", "2": "Z",
              "Z": "2", "5": "S", "S": "5", "8": "B", "B": "8"}


@dataclass(frozen=True, repr=False)
class MrzReading:
    """An MRZ read from a frame whose every check digit passed. ``corrections`` counts the
    characters changed from what was seen (letter/digit mappings, fillers, alternatives)."""

    lines: tuple[str, ...]
    mrz: Mrz
    corrections: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        # Personal data: only the document's shape, never its number or names.
        return (f"MrzReading({self.mrz.format}, {self.mrz.document_code}, "
                f"{self.mrz.issuing_state}, corrections={self.corrections})")

    __str__ = __repr__


def read_mrz(image_bgr: np.ndarray) -> MrzReading | None:
    """The MRZ in a BGR frame (H x W x 3 uint8), or None when there is none or it cannot be
    read with every check digit passing."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError("expected an H x W x 3 uint8 BGR image")
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    for band in _bands(gray)[:_MAX_BANDS]:
        zone = _zone(gray, band)
        if zone is None:
            continue
        reading = _read_zone(zone)
        if reading is not None:
            return reading
    return None


def read_mrz_text(image_bgr: np.ndarray) -> str | None:
    """``read_mrz`` as the flows' ``MrzTextReader``: the corrected lines, or None."""
    reading = read_mrz(image_bgr)
    return reading.text if reading else None


# -- finding the band -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Band:
    centre: tuple[float, float]
    size: tuple[float, float]  # along the lines, across them
    angle: float  # the lines' tilt in degrees, within 90 either way


def _bands(gray: np.ndarray) -> list[_Band]:
    """Regions dense in dark, horizontal-stroked print whose shape can be an MRZ, largest
    first (the OpenCV blackhat / gradient / closing recipe)."""
    scale = _WORK_WIDTH / gray.shape[1]
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    rect = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 5))
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (21, 13))
    blackhat = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, rect)
    grad = np.abs(cv2.Sobel(blackhat, cv2.CV_32F, 1, 0, ksize=-1))
    grad = cv2.normalize(grad, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    grad = cv2.morphologyEx(grad, cv2.MORPH_CLOSE, rect)
    _, mask = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, square)
    mask = cv2.erode(mask, None, iterations=4)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[float, _Band]] = []
    for contour in contours:
        box = cv2.minAreaRect(contour)
        w, h = max(box[1]), min(box[1])
        # The direction of the box's long side, as a tilt of at most 90 degrees either way
        # (which way up the page is, is found later from the fillers).
        corners = cv2.boxPoints(box)
        edges = [corners[(i + 1) % 4] - corners[i] for i in range(2)]
        dx, dy = max(edges, key=lambda e: float(np.hypot(*e)))
        angle = float(np.degrees(np.arctan2(dy, dx)))
        angle = (angle + 90) % 180 - 90
        cx, cy = box[0]
        # The narrowest MRZ (TD1, 76 mm) still spans a fifth of a frame it can be read in.
        if h <= 2 or w / h < 4 or w < 0.18 * _WORK_WIDTH:
            continue
        found.append((w * h, _Band((cx / scale, cy / scale), (w / scale, h / scale), angle)))
    found.sort(key=lambda item: -item[0])
    return [band for _, band in found]


# -- the zone: rows of glyphs ---------------------------------------------------------------
@dataclass
class _Glyph:
    x: float  # centre
    top: float
    bottom: float
    width: float


@dataclass
class _Zone:
    image: np.ndarray  # upright gray crop, paper flattened to white
    rows: list[list[_Glyph]]
    cap: float  # median glyph height


def _upright(gray: np.ndarray, centre: tuple[float, float], size: tuple[float, float],
             angle: float) -> np.ndarray:
    width, height = int(size[0]), int(size[1])
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[0, 2] += width / 2 - centre[0]
    matrix[1, 2] += height / 2 - centre[1]
    return cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def _flatten(gray: np.ndarray, cap: float) -> np.ndarray:
    # Divide by the paper's brightness (a closing wider than a stroke removes the print), so
    # uneven light and a tinted page become white paper with dark print.
    k = max(3, int(cap * 0.8) | 1)
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, cv2.getStructuringElement(
        cv2.MORPH_RECT, (k, k)))
    flat = gray.astype(np.float32) / np.maximum(paper.astype(np.float32), 1.0)
    return np.clip(flat * 255, 0, 255).astype(np.uint8)


def _zone(gray: np.ndarray, band: _Band) -> _Zone | None:
    """Cut the band out upright with room around it, straighten it by its rows of glyphs and
    keep it only if it holds two or three long rows of same-sized glyphs."""
    width, height = band.size
    # The closing and erosion shrink the blob; the rows may reach a line pitch beyond it.
    pad = max(0.8 * height, 16.0)
    size = (width * 1.08 + 2 * pad, height + 2 * pad)
    crop = _upright(gray, band.centre, size, band.angle)
    rows, cap = _rows(_flatten(crop, height / 3))
    if len(rows) < 2:
        return None
    # Straighten by the slope of the longest row's baseline, then cut again.
    longest = max(rows, key=len)
    xs = np.array([g.x for g in longest])
    bottoms = np.array([g.bottom for g in longest])
    slope = float(np.polyfit(xs, bottoms, 1)[0])
    skew = float(np.degrees(np.arctan(slope)))
    if abs(skew) > 0.2:
        crop = _upright(gray, band.centre, size, band.angle + skew)
    flat = _flatten(crop, cap)
    rows, cap = _rows(flat)
    if len(rows) < 2:
        return None
    rows = rows[-3:] if len(rows) >= 3 and _similar(rows[-3:]) else rows[-2:]
    if not _similar(rows):
        return None
    return _Zone(flat, rows, cap)


def _similar(rows: list[list[_Glyph]]) -> bool:
    # MRZ rows start in one column and (nearly) end in one: each is a full line of 30/36/44.
    lefts = [r[0].x for r in rows]
    rights = [r[-1].x for r in rows]
    span = max(rights) - min(lefts)
    return max(lefts) - min(lefts) < 0.08 * span and max(rights) - min(rights) < 0.08 * span


def _rows(flat: np.ndarray) -> tuple[list[list[_Glyph]], float]:
    """Glyph-sized dark components grouped into rows of at least 20, top to bottom."""
    _, ink = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    boxes = stats[1:count]
    boxes = boxes[(boxes[:, cv2.CC_STAT_HEIGHT] >= 6) & (boxes[:, cv2.CC_STAT_AREA] >= 12)]
    if len(boxes) < 20:
        return [], 0.0
    heights = boxes[:, cv2.CC_STAT_HEIGHT].astype(float)
    cap = float(np.median(heights))
    keep = ((heights > 0.6 * cap) & (heights < 1.45 * cap)
            & (boxes[:, cv2.CC_STAT_WIDTH] < 2.6 * cap))
    glyphs = sorted((_Glyph(x=b[0] + b[2] / 2, top=float(b[1]), bottom=float(b[1] + b[3]),
                            width=float(b[2])) for b in boxes[keep]),
                    key=lambda g: (g.top + g.bottom) / 2)
    rows: list[list[_Glyph]] = []
    for glyph in glyphs:
        middle = (glyph.top + glyph.bottom) / 2
        if rows and abs(middle - np.median([(g.top + g.bottom) / 2 for g in rows[-1]])) \
                < 0.5 * cap:
            rows[-1].append(glyph)
        else:
            rows.append([glyph])
    rows = [_tidy(_contiguous(sorted(r, key=lambda g: g.x), cap), cap) for r in rows]
    return [r for r in rows if len(r) >= 20], cap


def _contiguous(row: list[_Glyph], cap: float) -> list[_Glyph]:
    # An MRZ line has no gaps wider than a filler; specks of desk or page print beyond a
    # gap belong to something else.
    runs: list[list[_Glyph]] = []
    for glyph in row:
        if runs and glyph.x - runs[-1][-1].x < 2.2 * cap:
            runs[-1].append(glyph)
        else:
            runs.append([glyph])
    return max(runs, key=len)


def _tidy(row: list[_Glyph], cap: float) -> list[_Glyph]:
    """Join pieces of one broken glyph and split glyphs that blur ran together: OCR-B's
    pitch is about its cap height."""
    joined: list[_Glyph] = []
    for glyph in row:
        if joined and glyph.x - joined[-1].x < 0.45 * cap:
            last = joined.pop()
            left = min(last.x - last.width / 2, glyph.x - glyph.width / 2)
            right = max(last.x + last.width / 2, glyph.x + glyph.width / 2)
            glyph = _Glyph((left + right) / 2, min(last.top, glyph.top),
                           max(last.bottom, glyph.bottom), right - left)
        joined.append(glyph)
    split: list[_Glyph] = []
    for glyph in joined:
        parts = max(1, round(glyph.width / cap)) if glyph.width > 1.4 * cap else 1
        for i in range(parts):
            left = glyph.x - glyph.width / 2 + glyph.width * i / parts
            split.append(_Glyph(left + glyph.width / parts / 2, glyph.top, glyph.bottom,
                                glyph.width / parts))
    return split


# -- recognising the zone -------------------------------------------------------------------
def _read_zone(zone: _Zone) -> MrzReading | None:
    cells = [_cells(zone, row) for row in zone.rows]
    if _upside_down(cells):
        zone = _rotated(zone)
        # A cell is framed symmetrically about its glyph: turning the page turns the cell.
        cells = [row[::-1, ::-1].copy() for row in reversed(cells)]
    fmt = _grid_format(zone.rows)
    if fmt is None:
        # Glyphs ran together or were lost (blur, a blot): without the template's second
        # opinion Tesseract alone would have the names unchecked. The next frame may do.
        return None
    scores = [row @ _templates().T for row in cells]
    if min(float(row.max(axis=1).min()) for row in scores) < _MIN_GLYPH_SCORE:
        return None  # a blot, glare or a finger over a character: no glyph to trust there
    text_rows = _tesseract(zone)
    if text_rows is None:
        return None
    found = _candidates(scores, text_rows, fmt)
    return _solve(*found, fmt) if found else None


def _grid_format(rows: list[list[_Glyph]]) -> str | None:
    """The format whose shape the rows have glyph for glyph."""
    for fmt, (count, width) in SHAPES.items():
        if len(rows) == count and all(len(r) == width for r in rows):
            return fmt
    return None


@functools.lru_cache(maxsize=1)
def _templates() -> np.ndarray:
    """OCR-B's glyphs (in ``MRZ_CHARS`` order) framed as ``_cell`` frames a glyph seen in a
    frame: zero mean, unit norm, so a dot product is the normalised correlation."""
    size = 120
    if not OCRB_PATH.exists():
        raise FileNotFoundError(f"MRZ font missing: {OCRB_PATH} (apt-get install fonts-ocr-b)")
    font = ImageFont.truetype(str(OCRB_PATH), size)
    cap = 0.71 * size  # OCR-B's letter height at this size
    cells = []
    for char in MRZ_CHARS:
        canvas = Image.new("L", (2 * size, 2 * size), 255)
        ImageDraw.Draw(canvas).text((size // 2, int(1.5 * size)), char, font=font, fill=0,
                                    anchor="ls")
        ink = np.asarray(canvas)
        ys, xs = np.nonzero(ink < 128)
        # Blurred as a camera blurs print, so a sharp stroke does not decide the match.
        soft = cv2.GaussianBlur(ink, (0, 0), _TEMPLATE_BLUR * size / 100)
        cells.append(_cell(soft, (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2,
                           cap))
    return np.stack(cells)


def _cell(image: np.ndarray, x: float, y: float, cap: float) -> np.ndarray:
    """The glyph centred at (x, y) in a box sized by the row's cap height, so a glyph's own
    size and proportions still count, scaled to ``_CELL``."""
    half_w, half_h = 0.55 * cap, 0.62 * cap
    src = np.float32([[x - half_w, y - half_h], [x + half_w, y - half_h],
                      [x - half_w, y + half_h]])
    dst = np.float32([[0, 0], [_CELL[0], 0], [0, _CELL[1]]])
    cell = cv2.warpAffine(image, cv2.getAffineTransform(src, dst), _CELL,
                          flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    cell = cell.astype(np.float32).ravel()
    cell -= cell.mean()
    return cell / max(float(np.linalg.norm(cell)), 1e-6)


def _cells(zone: _Zone, row: list[_Glyph]) -> np.ndarray:
    """Each glyph of a row framed as the templates are (glyphs x cell pixels)."""
    return np.stack([_cell(zone.image, g.x, (g.top + g.bottom) / 2, zone.cap) for g in row])


def _upside_down(cells: list[np.ndarray]) -> bool:
    # A page held upside down shows '>' where its fillers are.
    filler = _templates()[MRZ_CHARS.index("<")]
    turned = filler[::-1]  # the cell's pixels in reverse: the glyph turned half round
    upright = sum(int((row @ filler > _FILLER_SCORE).sum()) for row in cells)
    flipped = sum(int((row @ turned > _FILLER_SCORE).sum()) for row in cells)
    return flipped > upright + 2


def _rotated(zone: _Zone) -> _Zone:
    h, w = zone.image.shape
    rows = [[_Glyph(w - g.x, h - g.bottom, h - g.top, g.width) for g in reversed(row)]
            for row in reversed(zone.rows)]
    return _Zone(zone.image[::-1, ::-1].copy(), rows, zone.cap)


def _tesseract(zone: _Zone) -> list[str] | None:
    """Tesseract's lines for the zone (spaces dropped, rows shorter than 10 left out)."""
    top = min(g.top for g in zone.rows[0]) - 0.6 * zone.cap
    bottom = max(g.bottom for g in zone.rows[-1]) + 0.6 * zone.cap
    left = min(r[0].x for r in zone.rows) - 1.5 * zone.cap
    right = max(r[-1].x for r in zone.rows) + 1.5 * zone.cap
    h, w = zone.image.shape
    crop = zone.image[max(0, int(top)):min(h, int(bottom)), max(0, int(left)):min(w, int(right))]
    scale = _TESSERACT_CAP_PX / zone.cap
    crop = cv2.resize(crop, None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    crop = cv2.copyMakeBorder(crop, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
    try:
        text = pytesseract.image_to_string(crop, lang="eng", config=_TESSERACT_CONFIG,
                                           timeout=TESSERACT_TIMEOUT_S)
    except (RuntimeError, OSError, pytesseract.TesseractError) as error:
        # TesseractNotFoundError is an OSError; a timeout is a RuntimeError.
        log.warning("MRZ OCR failed: %s", type(error).__name__)
        return None
    rows = ["".join(line.split()) for line in text.splitlines()]
    return [row for row in rows if len(row) >= 10]


def _candidates(scores_rows: list[np.ndarray], text_rows: list[str], fmt: str
                ) -> tuple[list[list[dict[str, int]]], list[str]] | None:
    """Per position the characters it may be, each with a cost: 0 for what Tesseract and the
    template agree on (or a clear filler), 1 each where they differ by a classic confusion
    (or the template alone is unsure between two), 3 for a classic confusion neither saw.
    Also what was first seen there. None where they differ otherwise. ``scores_rows`` holds
    each row's template scores (glyphs x ``MRZ_CHARS``)."""
    best_rows = ["".join(MRZ_CHARS[i] for i in scores.argmax(axis=1)) for scores in scores_rows]
    aligned_rows = _assign(text_rows, best_rows)
    candidates: list[list[dict[str, int]]] = []
    seen_lines: list[str] = []
    for scores, aligned, kinds in zip(scores_rows, aligned_rows, _LAYOUTS[fmt], strict=True):
        line: list[dict[str, int]] = []
        seen = []
        for k, kind in enumerate(kinds):
            allowed = _ALLOWED[kind]
            ranked = allowed[np.argsort(-scores[k, allowed])]
            first, second = ranked[0], ranked[1]
            template, margin = MRZ_CHARS[first], scores[k, first] - scores[k, second]
            tesseract = _typed(aligned[k], kind) if aligned[k] else None
            options: dict[str, int]
            if template == "<" and margin >= _FILLER_MARGIN:
                # Tesseract's K, E or G for a filler is its known failure; the template's
                # filler is its surest glyph.
                options = {"<": 0} if tesseract in (None, "<") else {"<": 0, tesseract: 2}
            elif tesseract == template or (tesseract is None and margin >= _CLEAR_MARGIN):
                options = {template: 0}
            else:
                other = tesseract or MRZ_CHARS[second]
                if _similarity(template, other) == 1.0:
                    # Not a confusion print or OCR is known for: the glyph is damaged or
                    # the alignment is off, and the truth may be neither.
                    return None
                options = {other: 1, template: 1}
            if kind == "x":
                # A classic confusion is worth trying only where the glyph looks enough like
                # it; elsewhere it would just be one more way to pass a check by accident.
                for char, cost in list(options.items()):
                    for other in _AMBIGUOUS.get(char, ""):
                        if scores[k, _INDEX[other]] >= scores[k, first] - _PLAUSIBLE:
                            options.setdefault(other, cost + 3)
            line.append(options)
            seen.append(aligned[k] or template)
        candidates.append(line)
        seen_lines.append("".join(seen))
    return candidates, seen_lines


def _assign(text_rows: list[str], best_rows: list[str]) -> list[list[str | None]]:
    """Tesseract's characters placed on the glyphs: its lines matched to the rows in order
    (skipping a line of page print, or leaving a row it missed empty), then aligned."""
    n, m = len(text_rows), len(best_rows)
    pairs: list[tuple[float, list[tuple[int, int]]]] = []
    if n >= m:
        for chosen in itertools.combinations(range(n), m):
            pairs.append((0.0, list(zip(chosen, range(m), strict=True))))
    else:
        for chosen in itertools.combinations(range(m), n):
            pairs.append((0.0, list(zip(range(n), chosen, strict=True))))
    best: tuple[float, list[list[str | None]]] | None = None
    for _, matching in pairs:
        total = 0.0
        aligned: list[list[str | None]] = [[None] * len(row) for row in best_rows]
        for t, r in matching:
            cost, placed = _align(text_rows[t], best_rows[r])
            total += cost
            aligned[r] = placed
        if best is None or total < best[0]:
            best = (total, aligned)
    return best[1] if best else [[None] * len(row) for row in best_rows]


def _similarity(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if TO_DIGIT.get(a) == b or TO_DIGIT.get(b) == a or b in _AMBIGUOUS.get(a, "") \
            or {a, b} <= set("<KEC"):
        return 0.3
    return 1.0


def _align(text: str, cells: str) -> tuple[float, list[str | None]]:
    """Edit-distance alignment of a Tesseract line to a row of glyphs read by template:
    each glyph gets the character Tesseract put there, or None."""
    gap = 0.7
    n, m = len(text), len(cells)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1) * gap
    cost[0, :] = np.arange(m + 1) * gap
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + _similarity(text[i - 1], cells[j - 1]),
                             cost[i - 1, j] + gap, cost[i, j - 1] + gap)
    aligned: list[str | None] = [None] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + _similarity(text[i - 1], cells[j - 1]):
            aligned[j - 1] = text[i - 1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + gap:
            i -= 1
        else:
            j -= 1
    return float(cost[n, m]), aligned


# -- correcting with the check digits -------------------------------------------------------
# Field kinds: "a" letters or filler, "n" digits (or filler: an unknown part of a birth date),
# "x" either, "s" sex, "c" check digit, "f" check digit or filler.
_LAYOUTS: dict[str, tuple[str, ...]] = {
    "TD3": ("a" * 44,
            "x" * 9 + "c" + "aaa" + "n" * 6 + "c" + "s" + "n" * 6 + "c" + "x" * 14 + "f" + "c"),
    "TD2": ("a" * 36,
            "x" * 9 + "f" + "aaa" + "n" * 6 + "c" + "s" + "n" * 6 + "c" + "x" * 7 + "c"),
    "TD1": ("aa" + "aaa" + "x" * 9 + "f" + "x" * 15,
            "n" * 6 + "c" + "s" + "n" * 6 + "c" + "aaa" + "x" * 11 + "c",
            "a" * 30),
}
_ALLOWED = {kind: np.array([i for i, c in enumerate(MRZ_CHARS) if c in allowed])
            for kind, allowed in {"a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ<", "n": "0123456789<",
                                  "c": "0123456789", "f": "0123456789<", "s": "MFX<",
                                  "x": MRZ_CHARS}.items()}
_Span = tuple[int, int, int]  # line, start, end
_Pos = tuple[int, int]  # line, column


def _fields(fmt: str) -> list[tuple[tuple[_Span, ...], _Pos]]:
    """Each check digit: the spans it covers and where it stands; the composite last."""
    if fmt == "TD1":
        return [(((0, 5, 14),), (0, 14)), (((1, 0, 6),), (1, 6)), (((1, 8, 14),), (1, 14)),
                (((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)), (1, 29))]
    width = SHAPES[fmt][1]
    fields = [(((1, 0, 9),), (1, 9)), (((1, 13, 19),), (1, 19)), (((1, 21, 27),), (1, 27))]
    if fmt == "TD3":
        fields.append((((1, 28, 42),), (1, 42)))
    fields.append((((1, 0, 10), (1, 13, 20), (1, 21, width - 1)), (1, width - 1)))
    return fields


def correct_mrz(lines: Sequence[str]) -> MrzReading | None:
    """MRZ lines from one OCR (or a hardware MRZ reader) corrected until every check digit
    passes: letters and digits mapped to what each field allows, miscounted filler runs
    refitted, classic confusions tried in fields that take both. None when no reading passes
    or two pass equally well. With one opinion only, a misread name cannot be noticed."""
    seen = [_clean(line) for line in lines]
    seen = [line for line in seen if len(line) >= 10]
    found: list[MrzReading] = []
    for fmt in _formats(seen):
        for chosen in _pick_rows(seen, SHAPES[fmt][0]):
            fitted = _fit_lengths(chosen, fmt)
            if fitted is None:
                continue
            lines_, refitted = fitted
            candidates = _text_candidates(lines_, fmt)
            if candidates is None:
                continue
            reading = _solve(candidates, lines_, fmt, refitted)
            if reading is not None:
                found.append(reading)
    texts = {reading.text for reading in found}
    return found[0] if len(texts) == 1 else None


def _text_candidates(lines: list[str], fmt: str) -> list[list[dict[str, int]]] | None:
    candidates = []
    for line, kinds in zip(lines, _LAYOUTS[fmt], strict=True):
        row = []
        for char, kind in zip(line, kinds, strict=True):
            typed = _typed(char, kind)
            if typed is None:
                return None
            options = {typed: 0}
            if kind == "x":
                options.update((other, 3) for other in _AMBIGUOUS.get(typed, ""))
            row.append(options)
        candidates.append(row)
    return candidates


def _clean(line: str) -> str:
    line = line.upper().replace("«", "<<").replace("‹", "<")
    return "".join(c for c in line if c in MRZ_CHARS)


def _formats(lines: list[str]) -> list[str]:
    fits = []
    for fmt, (rows, width) in SHAPES.items():
        if len(lines) < rows:
            continue
        off = min(sum(abs(len(line) - width) for line in lines[i:i + rows])
                  for i in range(len(lines) - rows + 1))
        if off <= 3 * rows:
            fits.append((off, fmt))
    return [fmt for _, fmt in sorted(fits)]


def _pick_rows(lines: list[str], rows: int) -> list[list[str]]:
    # OCR may add a row of page print above or below the zone.
    return [lines[i:i + rows] for i in range(len(lines) - rows, -1, -1)]


def _fit_lengths(lines: list[str], fmt: str) -> tuple[list[str], int] | None:
    """Lines made the format's length where the difference can only be miscounted fillers
    (the run after a name, or the longest run elsewhere), with the characters changed."""
    width = SHAPES[fmt][1]
    name_row = 2 if fmt == "TD1" else 0
    fitted: list[str] = []
    changed = 0
    for row, line in enumerate(lines):
        if row == name_row:
            named = _name_fillers(line)
            changed += sum(a != b for a, b in zip(line, named, strict=True))
            line = named
        diff = width - len(line)
        changed += abs(diff)
        if diff == 0:
            fitted.append(line)
            continue
        if abs(diff) > 3:
            return None
        if row == name_row:
            head = line.rstrip("<")
            if len(head) >= width or len(line) - len(head) < max(2, -diff):
                return None
            fitted.append(head.ljust(width, "<"))
            continue
        runs = [(m.end() - m.start(), m.start(), m.end()) for m in re.finditer(r"<+", line)]
        runs = [r for r in runs if r[0] >= 2 and r[0] + diff >= 1]
        if not runs:
            return None
        _, start, end = max(runs)
        fitted.append(line[:start] + "<" * (end - start + diff) + line[end:])
    return fitted, changed


def _name_fillers(line: str) -> str:
    # After the last name only fillers follow; Tesseract reads long runs of them as K, C, E.
    match = re.search(r"<<[A-Z<]*?[A-Z](<[<KCE]*)$", line)
    if match and match.group(1).count("<") >= 2:
        return line[:match.start(1)] + "<" * len(match.group(1))
    return line


def _typed(char: str, kind: str) -> str | None:
    """``char`` as the field kind allows it, mapped across letter/digit if need be."""
    if kind == "a":
        return TO_LETTER.get(char) if char.isdigit() else char
    if kind in "nc":
        if char.isdigit() or (char == "<" and kind == "n"):
            return char
        return TO_DIGIT.get(char)
    if kind == "f":
        return char if char.isdigit() or char == "<" else TO_DIGIT.get(char)
    if kind == "s":
        return char if char in "MFX<" else {"H": "M", "N": "M", "E": "F", "P": "F"}.get(char)
    return char


def _solve(candidates: list[list[dict[str, int]]], seen: list[str], fmt: str,
           already: int = 0) -> MrzReading | None:
    """The cheapest choice of characters that passes every check digit and parses, if it is
    the only one at its cost. A position no check digit covers must have one cheapest
    character: there two opinions cannot be settled. ``already`` counts corrections made
    before (refitted lengths)."""
    fields = _fields(fmt)
    covered = {(r, c) for spans, at in fields for r, s, e in spans for c in range(s, e)}
    covered |= {at for _, at in fields}
    base: list[list[str]] = []
    extra: dict[_Pos, dict[str, int]] = {}  # position -> other character -> added cost
    base_cost = 0
    for r, line in enumerate(candidates):
        row = []
        for c, options in enumerate(line):
            cheapest = min(options.values())
            ties = sorted(ch for ch, cost in options.items() if cost == cheapest)
            if len(ties) > 1 and (r, c) not in covered:
                return None
            row.append(ties[0])
            base_cost += cheapest
            others = {ch: cost - cheapest for ch, cost in options.items() if ch != ties[0]}
            if others and (r, c) in covered:
                extra[(r, c)] = others
        base.append(row)
    lines = ["".join(row) for row in base]
    *checked, (composite_spans, composite_at) = fields
    per_field = []
    for spans, at in checked:
        edits = _field_edits(lines, spans, at, extra, fmt)
        if not edits:
            return None
        per_field.append(edits)
    if np.prod([len(edits) for edits in per_field]) > _MAX_COMBINATIONS:
        return None  # so unsure that some combination would pass by accident
    # What only the composite covers (TD1 and TD2 optional data) and its own digit are
    # settled with it, once the other fields are.
    own = {(r, c) for spans, at in checked for r, s, e in spans for c in range(s, e)}
    own |= {at for _, at in checked}
    composite_extra = {p: alts for p, alts in extra.items() if p not in own}
    found: dict[tuple[str, ...], int] = {}
    for combo in itertools.product(*per_field):
        cost = sum(added for added, _ in combo)
        text = _apply(lines, {p: ch for _, edits in combo for p, ch in edits.items()})
        for added, edits in _field_edits(text, composite_spans, composite_at,
                                         composite_extra, fmt):
            final = _apply(text, edits)
            try:
                parse_mrz("\n".join(final))
            except MrzError:
                continue
            key = tuple(final)
            found[key] = min(found.get(key, cost + added), cost + added)
    if not found:
        return None
    cheapest = min(found.values())
    answers = [text for text, cost in found.items() if cost == cheapest]
    if len(answers) != 1:
        return None  # two readings pass equally well: neither can be trusted
    final = answers[0]
    changed = already + sum(a != b for x, y in zip(seen, final, strict=True)
                            for a, b in zip(x, y, strict=True))
    return MrzReading(final, parse_mrz("\n".join(final)), changed)


def _apply(lines: Sequence[str], edits: dict[_Pos, str]) -> list[str]:
    rows = [list(line) for line in lines]
    for (r, c), char in edits.items():
        rows[r][c] = char
    return ["".join(row) for row in rows]


def _passes(lines: list[str], spans: tuple[_Span, ...], at: _Pos, fmt: str) -> bool:
    digit = lines[at[0]][at[1]]
    data = "".join(lines[r][s:e] for r, s, e in spans)
    if digit == "<" and _LAYOUTS[fmt][at[0]][at[1]] == "f":
        # TD3's empty personal number; or a TD1/TD2 document number longer than 9, whose
        # digit is in the optional data (parse_mrz checks it there).
        return set(data) <= {"<"} or fmt != "TD3"
    return digit.isdigit() and check_digit(data) == digit


def _field_edits(lines: list[str], spans: tuple[_Span, ...], at: _Pos,
                 extra: dict[_Pos, dict[str, int]], fmt: str) -> list[tuple[int, dict[_Pos, str]]]:
    """The edits that make this field's check digit pass, each with its added cost: every
    choice between equal opinions, and up to ``_MAX_CHANGES_PER_FIELD`` costlier ones."""
    positions = [(r, c) for r, s, e in spans for c in range(s, e) if (r, c) in extra]
    if at in extra:
        positions.append(at)
    ties = [p for p in positions if 0 in extra[p].values()]
    if len(ties) > _MAX_TIES_PER_FIELD:
        return []  # too unsure of this field to trust any answer
    costly = [p for p in positions if any(v > 0 for v in extra[p].values())]
    tie_choices = [[None, *[ch for ch, v in extra[p].items() if v == 0]] for p in ties]
    found: list[tuple[int, dict[_Pos, str]]] = []
    for picks in itertools.product(*tie_choices):
        tie_edits = {p: ch for p, ch in zip(ties, picks, strict=True) if ch is not None}
        for n in range(_MAX_CHANGES_PER_FIELD + 1):
            for chosen in itertools.combinations([p for p in costly if p not in tie_edits], n):
                for chars in itertools.product(*([ch for ch, v in extra[p].items() if v > 0]
                                                 for p in chosen)):
                    edits = {**tie_edits, **dict(zip(chosen, chars, strict=True))}
                    if _passes(_apply(lines, edits), spans, at, fmt):
                        found.append((sum(extra[p][ch] for p, ch in edits.items()), edits))
    if not found:
        return []
    # Costlier answers than one classic confusion more are not kept: each is another
    # chance for a wrong reading to pass by accident.
    cheapest = min(cost for cost, _ in found)
    return [(cost, edits) for cost, edits in found if cost <= cheapest + 3]
