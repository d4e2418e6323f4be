"""Where in a frame a QR code probably is, found cheaply, before anything can read it.

A QR code is a patch dense with edges in both directions of its grid; a desk, a hand or a sheet
of paper is not, and a line of text is dense mostly across its strokes. The frame is looked at a
quarter of its size (about 1 ms for 1280x720), where a patch of module-sized detail still shows
as edge energy although the modules themselves no longer resolve, which is what lets this find
codes too small or too blurred for the decoder's own finder-pattern search.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SCALE = 4  # the frame is searched at 1/_SCALE of its size
_WINDOW = 11  # energy is summed over this many reduced pixels (44 at full size)
_KEEP = 0.45  # a region is where the energy is above this share of the frame's peak
_FLOOR = 6.0  # mean gradient below which a frame has nothing code-like at all


@dataclass(frozen=True)
class Box:
    """An axis-aligned region in full-frame pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def side(self) -> int:
        return max(self.w, self.h)

    @classmethod
    def around(cls, quad: np.ndarray) -> Box:
        x0, y0 = np.floor(quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
        return cls(int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def likely_regions(gray: np.ndarray, count: int = 2) -> list[Box]:
    """Up to ``count`` regions that look most like a code, best first."""
    h, w = gray.shape[:2]
    small = cv2.resize(gray, (w // _SCALE, h // _SCALE), interpolation=cv2.INTER_AREA)
    gx = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 1, 0, ksize=3))
    gy = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 0, 1, ksize=3))
    window = (_WINDOW, _WINDOW)
    energy = np.minimum(cv2.boxFilter(gx, cv2.CV_32F, window),
                        cv2.boxFilter(gy, cv2.CV_32F, window))
    peak = float(energy.max())
    if peak < _FLOOR:
        return []
    mask = (energy > _KEEP * peak).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if n <= 1:
        return []
    score = np.bincount(labels.ravel(), weights=energy.ravel(), minlength=n)[1:]
    boxes = []
    for i in np.argsort(-score)[:count] + 1:
        x, y, bw, bh = (int(v) * _SCALE for v in stats[i][:4])
        boxes.append(Box(x, y, bw, bh))
    return boxes


_OUTLINE_SIDE = 160  # the region is outlined at this size: enough for a quad, cheap to close


def outline(gray: np.ndarray, box: Box, margin: float = 0.35) -> np.ndarray | None:
    """The four corners of the code-like patch in ``box``, in frame pixels, or None.

    Dark modules are thresholded against their neighbourhood, then closed into one solid
    patch; its convex outline reduced to four points is the code's quadrilateral, perspective
    included, which the decoder's finder-pattern search could not see (too small, blurred).
    """
    h, w = gray.shape[:2]
    pad = margin * box.side + 8
    x0, y0 = int(max(0, box.x - pad)), int(max(0, box.y - pad))
    x1, y1 = int(min(w, box.x + box.w + pad)), int(min(h, box.y + box.h + pad))
    roi = gray[y0:y1, x0:x1]
    if roi.size == 0:
        return None
    scale = _OUTLINE_SIDE / max(roi.shape)
    small = cv2.resize(roi, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    side = max(small.shape)
    dark = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                 (side // 6) | 1, 3)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, (side // 30) | 1),) * 2)
    solid = cv2.morphologyEx(cv2.morphologyEx(dark, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN,
                             kernel)
    contours, _ = cv2.findContours(solid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    patch = max(contours, key=cv2.contourArea)
    if cv2.contourArea(patch) < 0.03 * small.size:
        return None
    hull = cv2.convexHull(patch)
    perimeter = cv2.arcLength(hull, True)
    quad = None
    for tolerance in (0.02, 0.04, 0.06, 0.1):
        approx = cv2.approxPolyDP(hull, tolerance * perimeter, True)
        if len(approx) == 4:
            quad = approx.reshape(4, 2).astype(np.float32)
            break
    if quad is None:
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
    centre = quad.mean(axis=0)
    # Clockwise in image coordinates (y down); which corner comes first does not matter to a
    # decoder, which finds the code's orientation from its finder patterns.
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    return quad / scale + np.array([x0, y0], dtype=np.float32)
