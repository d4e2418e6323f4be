"""Find a document lying under the camera and warp it flat (the 高拍仪 job's geometry).

The page is looked for twice over on a reduced copy of the frame: as a bright, unsaturated
region (paper on a darker desk or the capture area's pad), and as a closed outline of strong
edges (for when uneven light splits that region or joins it to a pale patch of desk). Each
region's convex hull is simplified to its sides; sides that run along the frame border are
dropped (they are where the picture ends, not the paper), the remaining four are refitted to
the contour's own points and intersected. So a card's rounded corners give its true
rectangle, and a corner out of view still gives a quad, with that corner outside the frame
and the detection marked ``cut``. A candidate is kept only if its quad follows its outline
and it is lighter just inside its edges than just outside: a patch of desk, or a photo box
or table inside a page, is not.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np

# Detection runs on a copy this wide: the outline of a page needs no more, and it keeps the
# analysis of a 1280x720 frame to a few milliseconds.
WORK_WIDTH = 640
# Candidates smaller than this share of the frame are desk texture, not a document.
MIN_AREA_FRACTION = 0.01
# A region is a document when its quad explains its outline: the areas of the region's convex
# hull and of the quad agree to this ratio (the hull: text and a heading band bite into the
# bright region, not into its outline).
MIN_FILL = 0.9
# Interior angles of a photographed rectangle under moderate perspective.
MIN_ANGLE_DEG, MAX_ANGLE_DEG = 65.0, 115.0
# A side's length ratio to its opposite side (perspective foreshortening) at most this.
MAX_OPPOSITE_RATIO = 1.6
# How far the quad's aspect may be from the paper's before it is taken for something else.
ASPECT_TOLERANCE = 0.35
# Within this many work pixels of the frame edge a contour touches the border.
BORDER_MARGIN_PX = 3
# The bright-region mask is trusted first; the edge mask's outline of the same document
# must be this much larger (per step of trust) to replace it.
SAME_DOCUMENT_MARGIN = 0.1
# A quad follows its region when this share of points along its sides lies within this
# distance (work pixels) of the region's outline.
OUTLINE_TOLERANCE_PX = 2.5
MIN_OUTLINE_SUPPORT = 0.85
# Just inside a document's edges it is brighter than just outside by at least this
# (Michelson contrast, so it holds in a dim frame as in a bright one).
MIN_EDGE_CONTRAST = 0.12
# The bands compared: this wide, this far from the edge (work pixels).
RING_PX, RING_GAP_PX = 6, 3


class PaperKind(enum.StrEnum):
    A4 = "a4"
    ID1 = "id1"  # ISO/IEC 7810 ID-1: 身份证, bank cards, permits
    PASSPORT = "passport"  # ICAO 9303 TD3 data page

    @property
    def size_mm(self) -> tuple[float, float]:
        """(short side, long side) in millimetres."""
        return _PAPER_MM[self]

    @property
    def aspect(self) -> float:
        """Long side over short side."""
        short, long = self.size_mm
        return long / short


_PAPER_MM: dict[PaperKind, tuple[float, float]] = {
    PaperKind.A4: (210.0, 297.0),
    PaperKind.ID1: (53.98, 85.6),
    PaperKind.PASSPORT: (88.0, 125.0),
}


class Orientation(enum.StrEnum):
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"


@dataclass(frozen=True, repr=False)
class Quad:
    """Four corners in frame pixels, clockwise from the top-left as the camera sees them.
    A corner may lie outside the frame when the document is cut."""

    corners: np.ndarray  # 4 x 2 float32

    def __repr__(self) -> str:
        points = ", ".join(f"({x:.0f},{y:.0f})" for x, y in self.corners)
        return f"Quad({points})"

    @property
    def area(self) -> float:
        return float(abs(cv2.contourArea(self.corners.astype(np.float32))))

    @property
    def sides(self) -> tuple[float, float, float, float]:
        """Top, right, bottom, left lengths."""
        c = self.corners
        lengths = [float(np.linalg.norm(c[(i + 1) % 4] - c[i])) for i in range(4)]
        return lengths[0], lengths[1], lengths[2], lengths[3]

    @property
    def diagonal(self) -> float:
        c = self.corners
        return float(max(np.linalg.norm(c[2] - c[0]), np.linalg.norm(c[3] - c[1])))

    @property
    def orientation(self) -> Orientation:
        """Landscape when the page's sides across the frame are the longer ones."""
        top, right, bottom, left = self.sides
        return Orientation.LANDSCAPE if top + bottom > left + right else Orientation.PORTRAIT

    @property
    def aspect(self) -> float:
        """Long over short, from the mean of opposite sides."""
        top, right, bottom, left = self.sides
        across, down = (top + bottom) / 2, (left + right) / 2
        return max(across, down) / max(1e-6, min(across, down))

    def shift(self, other: Quad) -> float:
        """The largest corner movement to ``other``, as a share of this quad's diagonal."""
        moved = np.linalg.norm(self.corners - other.corners, axis=1)
        return float(moved.max() / max(1.0, self.diagonal))

    def inside(self, width: int, height: int) -> bool:
        c = self.corners
        return bool((c[:, 0] >= 0).all() and (c[:, 0] <= width - 1).all()
                    and (c[:, 1] >= 0).all() and (c[:, 1] <= height - 1).all())


@dataclass(frozen=True, repr=False)
class Detection:
    """A document found in a frame."""

    quad: Quad
    frame_size: tuple[int, int]  # width, height
    # Sides of the frame the document runs off: "top", "right", "bottom", "left".
    cut_sides: frozenset[str]

    def __repr__(self) -> str:
        cut = ",".join(sorted(self.cut_sides)) or "-"
        return f"Detection({self.quad!r}, cut={cut}, coverage={self.coverage:.2f})"

    @property
    def cut(self) -> bool:
        return bool(self.cut_sides)

    @property
    def coverage(self) -> float:
        """The document's visible share of the frame."""
        width, height = self.frame_size
        frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        visible, _ = cv2.intersectConvexConvex(self.quad.corners.astype(np.float32), frame)
        return float(visible) / float(width * height)


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points clockwise (image axes: y down) starting at the one nearest the frame's
    top-left. Sorting by angle around the centre keeps the order right for a page rotated
    by any angle, where sorting by x+y alone swaps corners near 45 degrees."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]
    start = int(np.argmin(pts.sum(axis=1)))
    return np.roll(pts, -start, axis=0)


def page_size_px(kind: PaperKind, orientation: Orientation, long_side_px: int) -> tuple[int, int]:
    """(width, height) of a flat page of ``kind`` whose long side is ``long_side_px``."""
    short = max(1, round(long_side_px / kind.aspect))
    if orientation is Orientation.LANDSCAPE:
        return long_side_px, short
    return short, long_side_px


def warp(image: np.ndarray, quad: Quad, kind: PaperKind, long_side_px: int | None = None,
         orientation: Orientation | None = None) -> np.ndarray:
    """The document flattened to its paper's aspect, as the camera sees it turned (a page
    lying sideways stays landscape: which way up the text runs is for the clerk to see).
    Without ``long_side_px`` the page keeps about the resolution it has in the frame."""
    orientation = orientation or quad.orientation
    if long_side_px is None:
        top, right, bottom, left = quad.sides
        long_side_px = max(8, round(max(top, right, bottom, left)))
    width, height = page_size_px(kind, orientation, long_side_px)
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]],
                      np.float32)
    matrix = cv2.getPerspectiveTransform(quad.corners.astype(np.float32), target)
    top, right, bottom, left = quad.sides
    enlarging = long_side_px > max(top, right, bottom, left)
    flags = cv2.INTER_CUBIC if enlarging else cv2.INTER_LINEAR
    return cv2.warpPerspective(image, matrix, (width, height), flags=flags,
                               borderMode=cv2.BORDER_REPLICATE)


def find_document(image: np.ndarray, kind: PaperKind | None = None) -> Detection | None:
    """The largest plausible document in a BGR frame, or None. With ``kind`` a whole quad
    (not cut) whose aspect is far from that paper's is not taken. About 5 ms for 1280x720."""
    height, width = image.shape[:2]
    scale = min(1.0, WORK_WIDTH / width)
    small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                  interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    best: tuple[float, np.ndarray, frozenset[str]] | None = None
    smooth, masks = _region_masks(small)
    for trust, mask in enumerate(masks):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            area = cv2.contourArea(contour)
            if area < MIN_AREA_FRACTION * w * h or area > 0.98 * w * h:
                continue
            # A less trusted mask's outline replaces a document already found only when it
            # is clearly bigger (another document, not the same one drawn a pixel wider):
            # otherwise the choice would flicker between them from frame to frame.
            if best is not None and area <= best[0] * (1.0 + SAME_DOCUMENT_MARGIN * trust):
                continue
            points = contour.reshape(-1, 2).astype(np.float32)
            cut_sides = _border_sides(points, w, h)
            corners = _quad_of(contour, w, h)
            hull_area = cv2.contourArea(cv2.convexHull(contour))
            if (corners is None or not _plausible(corners, hull_area, cut_sides, kind)
                    or not _follows(contour, corners, w, h)):
                if not cut_sides:
                    continue
                # A corner too near the border to place: the visible part's box still says
                # where the document is and that it is cut.
                corners = cv2.boxPoints(cv2.minAreaRect(points)).astype(np.float32)
            if not _stands_out(smooth, corners):
                continue
            best = (area, corners, cut_sides)
    if best is None:
        return None
    _, corners, cut_sides = best
    # Pixel centres: work pixel i covers frame pixels [i/scale, (i+1)/scale).
    corners = (corners + 0.5) / scale - 0.5
    return Detection(Quad(order_corners(corners)), (width, height), cut_sides)


# -- candidates ---------------------------------------------------------------------------------
def _region_masks(small: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    # A median filter wipes out wood grain and fabric weave but keeps the paper's edge
    # (5x5 twice: OpenCV's larger medians are several times slower).
    smooth = cv2.medianBlur(cv2.medianBlur(gray, 5), 5)
    masks = []

    # Paper: brighter than the desk and nearly colourless.
    saturation = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[:, :, 1]
    saturation = cv2.medianBlur(saturation, 5)
    paperness = cv2.subtract(smooth, cv2.multiply(saturation, 0.5))
    _, bright = cv2.threshold(paperness, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel)
    masks.append(cv2.morphologyEx(bright, cv2.MORPH_CLOSE, kernel, iterations=2))

    # Outline: strong edges closed into a ring and filled; opening the filled shape cuts off
    # desk edges (wood grain) that happen to touch the outline.
    median = float(np.median(smooth))
    edges = cv2.Canny(smooth, max(20.0, 0.5 * median), max(60.0, 1.2 * median))
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=1)
    outlines, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(edges)
    cv2.drawContours(filled, outlines, -1, 255, cv2.FILLED)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    filled = cv2.morphologyEx(filled, cv2.MORPH_OPEN, opening)
    # Back onto the edge itself: the dilation above drew the outline a pixel wide outside.
    masks.append(cv2.erode(filled, np.ones((3, 3), np.uint8)))
    return smooth, masks


def _quad_of(contour: np.ndarray, w: int, h: int) -> np.ndarray | None:
    """The document's four corners from a region's contour; those of a document running off
    the frame are where its visible sides meet, outside the frame."""
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    # The finest simplification with few enough vertices: a coarser one would swallow the
    # short stretch of frame border where a corner leaves the picture.
    for epsilon in (0.008, 0.012, 0.02, 0.03, 0.04):
        approx = cv2.approxPolyDP(hull, epsilon * perimeter, True).reshape(-1, 2)
        if 4 <= len(approx) <= 8:
            poly = approx.astype(np.float32)
            break
    else:
        return None
    sides = [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
    sides = [s for s in sides if _on_border(s, w, h) is None]
    if len(sides) > 4:
        # Short leftovers of a rounded or dog-eared corner are not sides of the page.
        longest = sorted(range(len(sides)),
                         key=lambda i: -float(np.linalg.norm(sides[i][1] - sides[i][0])))[:4]
        sides = [sides[i] for i in sorted(longest)]
    if len(sides) != 4:
        return None
    points = contour.reshape(-1, 2).astype(np.float32)
    lines = [_fit_side(points, a, b, w, h) for a, b in sides]
    corners = []
    for i in range(4):
        corner = _intersect(lines[i - 1], lines[i])
        if corner is None:
            return None
        corners.append(corner)
    return np.array(corners, np.float32)


def _follows(contour: np.ndarray, corners: np.ndarray, w: int, h: int) -> bool:
    """Whether the quad's sides run along the region's outline (inside the frame): a bump
    where a desk edge touched the outline bends a fitted side away from it."""
    m = BORDER_MARGIN_PX + 1
    samples = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        for t in np.linspace(0.15, 0.85, 15):
            x, y = a + t * (b - a)
            if m < x < w - 1 - m and m < y < h - 1 - m:
                samples.append(abs(cv2.pointPolygonTest(contour, (float(x), float(y)), True)))
    if not samples:
        return False
    return float(np.mean(np.asarray(samples) <= OUTLINE_TOLERANCE_PX)) >= MIN_OUTLINE_SUPPORT


def _stands_out(smooth: np.ndarray, corners: np.ndarray) -> bool:
    """Whether the quad is brighter just inside its visible edges than just outside, as paper
    on a desk or on the scanner's dark pad is. A patch of desk is not, and neither is a
    photo box or a table inside a page: the page around them is as light or lighter. (So a
    sheet on a white desk is not found: the kiosk's capture area is dark.)"""
    h, w = smooth.shape[:2]
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, np.round(corners).astype(np.int32), 255)
    ring = np.ones((2 * RING_PX + 1, 2 * RING_PX + 1), np.uint8)
    gap = np.ones((2 * RING_GAP_PX + 1, 2 * RING_GAP_PX + 1), np.uint8)
    core = cv2.erode(inside, gap)
    inner = cv2.subtract(core, cv2.erode(core, ring))
    halo = cv2.dilate(inside, gap)
    outer = cv2.subtract(cv2.dilate(halo, ring), halo)
    if cv2.countNonZero(inner) == 0 or cv2.countNonZero(outer) == 0:
        return False
    paper = float(cv2.mean(smooth, inner)[0])
    desk = float(cv2.mean(smooth, outer)[0])
    return (paper - desk) / max(1.0, paper + desk) >= MIN_EDGE_CONTRAST


def _border_sides(points: np.ndarray, w: int, h: int) -> frozenset[str]:
    m = BORDER_MARGIN_PX
    touched = set()
    if (points[:, 1] <= m).any():
        touched.add("top")
    if (points[:, 0] >= w - 1 - m).any():
        touched.add("right")
    if (points[:, 1] >= h - 1 - m).any():
        touched.add("bottom")
    if (points[:, 0] <= m).any():
        touched.add("left")
    return frozenset(touched)


def _on_border(side: tuple[np.ndarray, np.ndarray], w: int, h: int) -> str | None:
    (x0, y0), (x1, y1) = side
    m = BORDER_MARGIN_PX + 1
    if y0 <= m and y1 <= m:
        return "top"
    if y0 >= h - 1 - m and y1 >= h - 1 - m:
        return "bottom"
    if x0 <= m and x1 <= m:
        return "left"
    if x0 >= w - 1 - m and x1 >= w - 1 - m:
        return "right"
    return None


def _fit_side(points: np.ndarray, a: np.ndarray, b: np.ndarray, w: int,
              h: int) -> tuple[np.ndarray, np.ndarray]:
    """A line through the contour points along side a-b, corners and frame border left out,
    so rounded corners and the border do not bend it. Returns (point, unit direction)."""
    direction = b - a
    length = float(np.linalg.norm(direction))
    unit = direction / max(length, 1e-6)
    normal = np.array([-unit[1], unit[0]], np.float32)
    rel = points - a
    along = rel @ unit
    across = np.abs(rel @ normal)
    m = BORDER_MARGIN_PX
    inside = ((points[:, 0] > m) & (points[:, 0] < w - 1 - m)
              & (points[:, 1] > m) & (points[:, 1] < h - 1 - m))
    keep = (along > 0.12 * length) & (along < 0.88 * length) & (across < 4.0) & inside
    near = points[keep]
    if len(near) < 5:
        return a, unit
    vx, vy, x0, y0 = cv2.fitLine(near, cv2.DIST_HUBER, 0, 0.01, 0.01).reshape(4)
    return np.array([x0, y0], np.float32), np.array([vx, vy], np.float32)


def _intersect(first: tuple[np.ndarray, np.ndarray],
               second: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    (p, r), (q, s) = first, second
    cross = float(r[0] * s[1] - r[1] * s[0])
    if abs(cross) < 1e-3:  # parallel: not two sides of one corner
        return None
    t = float((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / cross
    return p + t * r


def _plausible(corners: np.ndarray, hull_area: float, cut_sides: frozenset[str],
               kind: PaperKind | None) -> bool:
    quad = Quad(order_corners(corners))
    if not cv2.isContourConvex(quad.corners.reshape(-1, 1, 2)):
        return False
    if quad.area <= 0:
        return False
    sides = quad.sides
    for i in range(4):
        if min(sides[i], sides[(i + 2) % 4]) <= 0:
            return False
        if max(sides[i], sides[(i + 2) % 4]) / min(sides[i], sides[(i + 2) % 4]) \
                > MAX_OPPOSITE_RATIO:
            return False
    if cut_sides:
        # Only the visible part can be compared with the region; its shape is unknown.
        return True
    for angle in _angles(quad.corners):
        if not MIN_ANGLE_DEG <= angle <= MAX_ANGLE_DEG:
            return False
    if hull_area / quad.area < MIN_FILL or quad.area / hull_area < MIN_FILL:
        return False
    if kind is not None and abs(quad.aspect / kind.aspect - 1.0) > ASPECT_TOLERANCE:
        return False
    return True


def _angles(corners: np.ndarray) -> list[float]:
    angles = []
    for i in range(4):
        u = corners[i - 1] - corners[i]
        v = corners[(i + 1) % 4] - corners[i]
        cos = float(u @ v) / max(1e-6, float(np.linalg.norm(u) * np.linalg.norm(v)))
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return angles
