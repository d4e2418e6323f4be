"""Cut a region out of a frame and make it easier to read: scaled up, rectified, sharpened.

Each is a cheap OpenCV call on a few hundred pixels square, so a second try on a region costs a
fraction of a full-frame decode.
"""

from __future__ import annotations

import cv2
import numpy as np

from devices.qr.locate import Box

# Side, in pixels, a region is scaled to for a second read: about 6 pixels a module for the
# largest appointment codes (version 10, 57 modules), where a decoder's binarizer is at ease.
TARGET_SIDE = 400
MAX_UPSCALE = 3.0
# Rectified square: the code fills 1 - 2 * _RECTIFY_MARGIN of it, the rest is its quiet zone;
# over 5 pixels a module for a version-10 code. 320 read fewer codes in strong perspective.
RECTIFIED_SIDE = 420
_RECTIFY_MARGIN = 0.12


def crop_upscaled(gray: np.ndarray, box: Box, margin: float = 0.35
                  ) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The box with a margin, scaled up towards TARGET_SIDE; returns the crop, its scale and
    the offset of its top-left corner in the frame (to map positions back)."""
    h, w = gray.shape[:2]
    pad = margin * box.side + 8
    x0, y0 = int(max(0, box.x - pad)), int(max(0, box.y - pad))
    x1, y1 = int(min(w, box.x + box.w + pad)), int(min(h, box.y + box.h + pad))
    roi = gray[y0:y1, x0:x1]
    scale = min(MAX_UPSCALE, max(1.0, TARGET_SIDE / max(box.side, 1)))
    if scale > 1.05 and roi.size:
        roi = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    else:
        scale = 1.0
    return roi, scale, (x0, y0)


def plausible_quad(quad: np.ndarray, frame_shape: tuple[int, ...]) -> bool:
    """Whether four corners can be a code seen by a camera: convex, not tiny, not a sliver,
    mostly inside the frame."""
    q = quad.astype(np.float32).reshape(-1, 1, 2)
    if cv2.contourArea(q) < 400 or not cv2.isContourConvex(q):
        return False
    sides = np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)
    if sides.min() * 4 < sides.max():
        return False
    h, w = frame_shape[:2]
    cx, cy = quad.mean(axis=0)
    return 0 <= cx < w and 0 <= cy < h


def rectify(gray: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The code at ``quad`` warped flat and square, RECTIFIED_SIDE pixels with a quiet zone:
    undoes perspective and scales small codes up in one resampling."""
    n = float(RECTIFIED_SIDE)
    m = _RECTIFY_MARGIN * n
    square = np.array([[m, m], [n - m, m], [n - m, n - m], [m, n - m]], dtype=np.float32)
    homography = cv2.getPerspectiveTransform(quad.astype(np.float32), square)
    return cv2.warpPerspective(gray, homography, (RECTIFIED_SIDE, RECTIFIED_SIDE),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def sharpen(gray: np.ndarray, sigma: float = 2.0, amount: float = 1.5) -> np.ndarray:
    """Unsharp mask: gives edges back to a defocused or shaken code."""
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return cv2.addWeighted(gray, 1 + amount, blurred, -amount, 0)
