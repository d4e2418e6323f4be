"""Camera frames of a QR appointment code held over the kiosk desk, generated from a seed.

This is the hard set the QR benchmark and tests decode: 1280x720 BGR frames of a printed slip or
a phone screen showing a code of 80–200 characters, under the conditions a kiosk camera sees
(clean, rotated, perspective, blur, noise, low contrast, glare, small), and frames with no code
but with code-like clutter (text, checkerboards, module grids with finder squares that decode to
nothing). Every frame is a pure function of its seed, so a figure can be reproduced anywhere.

Severities are drawn from ranges that run from easy to past what a decoder can read, so a set
has a spread of difficulty rather than a cliff. They were set, before any work on the pipeline,
so that raw zxing-cpp decodes about three quarters of the code frames, as the issue measured on
such frames: on the default 320-frame set it reads 77% (clean and rotated all, perspective 91%,
glare 86%, noise and small 69%, low contrast 57%, blur 46%) and pyzbar 57%. Noise is set as
the ratio of the code's contrast to the sensor noise, what a decoder's binarizer meets.

A frame takes about 60 ms to make on one core; bench/qr.py makes the set on every core.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import cv2
import numpy as np
import segno

CONDITIONS = ("clean", "rotated", "perspective", "blur", "noise", "low_contrast", "glare",
              "small")
NO_CODE = "no_code"
DEFAULT_SEED = 20240604
QUIET_ZONE = 4  # modules of white around the code, as printed by segno and ISO/IEC 18004

Size = tuple[int, int]  # (width, height), as OpenCV takes it


@dataclass(frozen=True, repr=False)
class Sample:
    """One frame of the set; ``expected`` is None for a frame without a code."""

    name: str
    image: np.ndarray
    expected: str | None
    condition: str
    corners: np.ndarray | None = None  # where the code is, as placed_qr_scene gives it

    def __repr__(self) -> str:
        return f"Sample({self.name}, {self.condition})"


@dataclass(frozen=True)
class _Pose:
    """Where the code sits: centre, side in pixels (quiet zone included), rotations in degrees."""

    cx: float
    cy: float
    side: float
    roll: float
    tilt_x: float
    tilt_y: float


@dataclass(frozen=True)
class _Look:
    """How the frame is spoiled once the code is in place."""

    light: float = 215.0  # white of the slip or screen
    dark: float = 35.0  # its black modules
    blur_sigma: float = 0.6  # defocus, in pixels
    motion_px: float = 0.0  # motion blur length
    noise_sigma: float = 3.0
    glare: float = 0.0  # peak added brightness of a specular spot
    glare_radius: float = 0.0  # in units of the code side
    jpeg_quality: int = 92  # MJPG cameras deliver compressed frames


def appointment_payload(rng: np.random.Generator) -> str:
    """A stand-in for a signed appointment code: scheme, key id, then base64url body and
    signature; 80–200 ASCII characters, as the booking system's codes are."""
    total = int(rng.integers(80, 201))
    head = f"ZZA1.k{int(rng.integers(1, 10))}."
    body_chars = total - len(head)
    raw = rng.integers(0, 256, size=math.ceil(body_chars * 3 / 4) + 3, dtype=np.uint8).tobytes()
    return head + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")[:body_chars]


def qr_modules(payload: str) -> np.ndarray:
    """The code's modules as a bool array (True = dark), quiet zone included."""
    code = segno.make(payload, error="m", micro=False, boost_error=False)
    return np.array(list(code.matrix_iter(scale=1, border=QUIET_ZONE)), dtype=bool)


# -- background --------------------------------------------------------------------------------

def desk_background(rng: np.random.Generator, size: Size = (1280, 720)) -> np.ndarray:
    """A desk: a colour with smooth texture, a few objects and some printed text (uint8 BGR)."""
    w, h = size
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    # Texture is low-frequency, so it is made small and scaled up: a full-size float pass per
    # frame would make the 300-frame set slow to generate.
    shape = (h // 24 + 1, w // 24 + 1)
    grain = rng.normal(0, 1, size=shape).astype(np.float32)[..., None] * float(rng.uniform(4, 14))
    tint = rng.normal(0, 1, size=(*shape, 3)).astype(np.float32) * float(rng.uniform(0, 4))
    small = base + grain + tint
    img = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(1, 5))):
        _draw_object(img, rng, size)
    for _ in range(int(rng.integers(1, 4))):
        _draw_text_block(img, rng, size)
    return img


def _illumination(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Light falling off across the desk: a gain per pixel, (h, w, 1) float32."""
    w, h = size
    gx, gy = rng.uniform(-0.35, 0.35, size=2)
    xs = (gx * (np.arange(w, dtype=np.float32) / w - 0.5))[None, :]
    ys = (gy * (np.arange(h, dtype=np.float32) / h - 0.5))[:, None]
    return (1.0 + xs + ys)[..., None].astype(np.float32)


def _draw_object(img: np.ndarray, rng: np.random.Generator, size: Size) -> None:
    w, h = size
    colour = tuple(float(c) for c in rng.uniform(20, 245, size=3))
    centre = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
    box = ((centre[0], centre[1]), (float(rng.uniform(80, 500)), float(rng.uniform(60, 400))),
           float(rng.uniform(0, 180)))
    pts = cv2.boxPoints(box).astype(np.int32)
    cv2.fillConvexPoly(img, pts, colour, lineType=cv2.LINE_AA)


_GLYPHS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789 -:/."


def _draw_text_block(img: np.ndarray, rng: np.random.Generator, size: Size) -> None:
    w, h = size
    x0, y0 = int(rng.uniform(0, w * 0.8)), int(rng.uniform(30, h))
    scale = float(rng.uniform(0.4, 1.2))
    ink = tuple(float(c) for c in rng.uniform(0, 90, size=3))
    for line in range(int(rng.integers(1, 6))):
        text = "".join(rng.choice(list(_GLYPHS), size=int(rng.integers(8, 40))))
        y = int(y0 + line * 34 * scale)
        cv2.putText(img, text, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                    max(1, int(scale * 2)), cv2.LINE_AA)


# -- the code in the scene ---------------------------------------------------------------------

def _corners(pose: _Pose) -> np.ndarray:
    """Project the code's square, tilted in 3D, through a pinhole camera onto the frame."""
    half = pose.side / 2
    square = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]],
                      dtype=np.float64)
    r, ax, ay = (math.radians(a) for a in (pose.roll, pose.tilt_x, pose.tilt_y))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    focal = 1000.0  # a 1280x720 webcam of about 65 degrees horizontal field of view
    pts = square @ (ry @ rx @ rz).T
    z = focal + pts[:, 2]
    return np.stack([pose.cx + focal * pts[:, 0] / z, pose.cy + focal * pts[:, 1] / z], axis=1)


def _carrier(modules: np.ndarray, look: _Look, phone: bool, px: int) -> tuple[np.ndarray, int]:
    """The slip or phone screen carrying the code, ``px`` pixels a module; returns the image
    and the width of the border around the code's quiet zone, in pixels."""
    n = modules.shape[0]
    grey = np.where(modules, look.dark, look.light).astype(np.float32)
    code = cv2.resize(grey, (n * px, n * px), interpolation=cv2.INTER_NEAREST)
    border = px * (6 if phone else 3)
    out = np.full((n * px + 2 * border,) * 2, look.light, np.float32)
    out[border:border + n * px, border:border + n * px] = code
    if phone:
        # The bezel: a dark frame around the lit screen.
        bezel = px * 3
        out[:bezel, :] = out[-bezel:, :] = 20
        out[:, :bezel] = out[:, -bezel:] = 20
    return out, border


def _place(frame: np.ndarray, modules: np.ndarray, pose: _Pose, look: _Look, phone: bool,
           tint: np.ndarray) -> None:
    """Draw the carrier into ``frame`` (float32 BGR, changed in place) at ``pose``."""
    n = modules.shape[0]
    module_px = pose.side / n
    px = int(min(8, max(2, math.ceil(module_px * 2))))  # at least 2x supersampled, bounded
    card, border = _carrier(modules, look, phone, px)
    size = card.shape[0]
    # The whole card, not only the code, lands in the frame: where its corners go.
    src = np.array([[border, border], [border + n * px, border], [border + n * px, border + n * px],
                    [border, border + n * px]], dtype=np.float32)
    homography = cv2.getPerspectiveTransform(src, _corners(pose).astype(np.float32))
    card_corners = np.array([[[0, 0]], [[size, 0]], [[size, size]], [[0, size]]], np.float32)
    outline = cv2.perspectiveTransform(card_corners, homography)[:, 0, :]
    h, w = frame.shape[:2]
    x0, y0 = np.floor(outline.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    # Supersample the warp where modules are small, so the code is not aliased into a new one.
    f = 2 if module_px < 3 else 1
    to_roi = np.array([[f, 0, -x0 * f], [0, f, -y0 * f], [0, 0, 1]], np.float64) @ homography
    roi_size = ((x1 - x0) * f, (y1 - y0) * f)
    warped = cv2.warpPerspective(card, to_roi, roi_size, flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpPerspective(np.ones_like(card), to_roi, roi_size, flags=cv2.INTER_LINEAR,
                               borderValue=0)
    if f > 1:
        warped = cv2.resize(warped, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    roi = frame[y0:y1, x0:x1]
    roi *= 1 - mask[..., None]
    roi += (warped * mask)[..., None] * tint[None, None, :].astype(np.float32)


def _spoil(img: np.ndarray, look: _Look, rng: np.random.Generator, centre: tuple[float, float],
           side: float, gain: np.ndarray | None = None) -> np.ndarray:
    """Light, optics and sensor: float32 scene in, the camera's uint8 frame out."""
    h, w = img.shape[:2]
    img *= _illumination(rng, (w, h)) if gain is None else gain
    if look.glare > 0:
        # A specular spot from a ceiling light on glossy paper or glass, over part of the code.
        gx = centre[0] + rng.uniform(-0.35, 0.35) * side
        gy = centre[1] + rng.uniform(-0.35, 0.35) * side
        radius = max(4.0, look.glare_radius * side)
        stretch = rng.uniform(0.5, 1.0)
        x0, x1 = int(max(0, gx - 3 * radius)), int(min(w, gx + 3 * radius))
        y0, y1 = int(max(0, gy - 3 * radius)), int(min(h, gy + 3 * radius))
        if x1 > x0 and y1 > y0:
            xs = ((np.arange(x0, x1, dtype=np.float32) - gx) / radius) ** 2
            ys = ((np.arange(y0, y1, dtype=np.float32) - gy) / (radius * stretch)) ** 2
            spot = look.glare * np.exp(-1.5 * (ys[:, None] + xs[None, :]))
            img[y0:y1, x0:x1] += spot[..., None].astype(np.float32)
    if look.motion_px > 1:
        length = int(round(look.motion_px))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5),
                                      float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))
    if look.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), look.blur_sigma)
    # Sensor noise, mostly in luminance as a camera's ISP leaves it.
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(look.noise_sigma)
    img += noise[..., None]
    np.clip(img, 0, 255, out=img)
    out = img.astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def _pose_and_look(condition: str, rng: np.random.Generator, n: int, size: Size
                   ) -> tuple[_Pose, _Look]:
    w, h = size
    u = rng.uniform
    module_px = u(3.0, 6.0)
    roll, tilt_x, tilt_y = u(-12, 12), u(-12, 12), u(-12, 12)
    look = _Look(light=u(185, 235), dark=u(20, 60), blur_sigma=u(0.4, 0.9),
                 noise_sigma=u(1.5, 4.0), jpeg_quality=int(rng.integers(80, 95)))
    if condition == "clean":
        pass
    elif condition == "rotated":
        roll = u(0, 360)
        tilt_x, tilt_y = u(-20, 20), u(-20, 20)
    elif condition == "perspective":
        tilt = u(35, 68)
        heading = u(0, 2 * math.pi)
        tilt_x, tilt_y = tilt * math.cos(heading), tilt * math.sin(heading)
        module_px = u(3.2, 6.0)
    elif condition == "blur":
        module_px = u(2.6, 5.0)
        if rng.random() < 0.5:
            look = _replace(look, blur_sigma=module_px * u(0.25, 0.55))
        else:
            look = _replace(look, blur_sigma=module_px * u(0.12, 0.3),
                            motion_px=module_px * u(1.0, 2.5))
    elif condition == "noise":
        module_px = u(2.4, 4.5)
        # Dim light: the sensor's gain brings noise up against a weak signal; what matters to a
        # decoder is the ratio of the code's contrast to the noise.
        light, dark = u(110, 200), u(25, 60)
        look = _replace(look, light=light, dark=dark, noise_sigma=(light - dark) / u(4.5, 11),
                        jpeg_quality=int(rng.integers(60, 85)))
    elif condition == "low_contrast":
        light = u(90, 220)
        look = _replace(look, light=light, dark=light - u(8, 38), noise_sigma=u(2.0, 5.0))
    elif condition == "glare":
        look = _replace(look, glare=u(120, 320), glare_radius=u(0.12, 0.48))
    elif condition == "small":
        module_px = u(1.15, 2.1)
        look = _replace(look, blur_sigma=u(0.3, 0.7))
    elif condition != NO_CODE:
        raise ValueError(f"unknown condition {condition!r}")
    side = module_px * n
    margin = side * 0.9
    cx = u(min(margin, w / 2), max(w - margin, w / 2))
    cy = u(min(margin, h / 2), max(h - margin, h / 2))
    return _Pose(cx, cy, side, roll, tilt_x, tilt_y), look


def _replace(look: _Look, **changes: float) -> _Look:
    return _Look(**{**look.__dict__, **changes})


def qr_scene(payload: str, condition: str, rng: np.random.Generator,
             size: Size = (1280, 720)) -> np.ndarray:
    """A frame showing ``payload`` as a QR code under ``condition`` (one of CONDITIONS)."""
    return placed_qr_scene(payload, condition, rng, size)[0]


def placed_qr_scene(payload: str, condition: str, rng: np.random.Generator,
                    size: Size = (1280, 720)) -> tuple[np.ndarray, np.ndarray]:
    """As qr_scene, with where the code landed: its corners (quiet zone included), 4 x 2 float,
    clockwise from the top left of the code as printed."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}")
    modules = qr_modules(payload)
    frame = desk_background(rng, size).astype(np.float32)
    pose, look = _pose_and_look(condition, rng, modules.shape[0], size)
    phone = bool(rng.random() < 0.5)
    tint = np.ones(3) if not phone else rng.uniform(0.9, 1.05, size=3)
    _place(frame, modules, pose, look, phone, tint)
    return _spoil(frame, look, rng, (pose.cx, pose.cy), pose.side), _corners(pose)


def no_code_scene(rng: np.random.Generator, size: Size = (1280, 720)) -> np.ndarray:
    """A desk with code-like clutter and no decodable QR code."""
    frame, look = _no_code_canvas(rng, size)
    return _spoil(frame, look, rng, (size[0] / 2, size[1] / 2), 200.0)


def _no_code_canvas(rng: np.random.Generator, size: Size) -> tuple[np.ndarray, _Look]:
    w, h = size
    img = desk_background(rng, size)
    decoys: list[tuple[np.ndarray, float, float, float]] = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["grid", "checker", "text", "bars"])
        side = float(rng.uniform(120, 380))
        cx = float(rng.uniform(side / 2, w - side / 2))
        cy = float(rng.uniform(side / 2, h - side / 2))
        n = int(rng.integers(21, 58))
        if kind == "grid":
            modules = _decoy_modules(rng, n)
        elif kind == "checker":
            cell = int(rng.integers(2, 8))
            yy, xx = np.mgrid[0:n, 0:n]
            modules = ((yy // cell + xx // cell) % 2).astype(bool)
        elif kind == "bars":
            modules = np.tile(rng.random(n) < 0.5, (n, 1))
        else:
            _draw_text_block(img, rng, size)
            continue
        decoys.append((modules, cx, cy, side))
    frame = img.astype(np.float32)
    for modules, cx, cy, side in decoys:
        pose = _Pose(cx, cy, side, float(rng.uniform(0, 360)), float(rng.uniform(-25, 25)),
                     float(rng.uniform(-25, 25)))
        look = _Look(light=float(rng.uniform(170, 235)), dark=float(rng.uniform(20, 70)))
        _place(frame, modules, pose, look, bool(rng.random() < 0.4), np.ones(3))
    look = _Look(blur_sigma=float(rng.uniform(0.4, 1.2)), noise_sigma=float(rng.uniform(1.5, 25)),
                 jpeg_quality=int(rng.integers(60, 95)))
    return frame, look


def _decoy_modules(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random modules with three finder squares and timing lines: looks like a QR code to a
    detector, but its format and data are noise, so nothing may decode from it."""
    modules = rng.random((n, n)) < 0.5
    finder = np.ones((7, 7), bool)
    finder[1:6, 1:6] = False
    finder[2:5, 2:5] = True
    for y, x in ((0, 0), (0, n - 7), (n - 7, 0)):
        modules[y:y + 7, x:x + 7] = finder
    modules[6, 8:n - 8] = np.arange(8, n - 8) % 2 == 0
    modules[8:n - 8, 6] = np.arange(8, n - 8) % 2 == 0
    out = np.zeros((n + 2 * QUIET_ZONE,) * 2, bool)
    out[QUIET_ZONE:-QUIET_ZONE, QUIET_ZONE:-QUIET_ZONE] = modules
    return out


def sample(index: int, condition: str, seed: int = DEFAULT_SEED,
           size: Size = (1280, 720)) -> Sample:
    """Frame ``index`` of ``condition``: the same frame whatever else is generated."""
    rng = np.random.default_rng([seed, CONDITIONS.index(condition) + 1
                                 if condition in CONDITIONS else 0, index])
    name = f"{condition}-{index:03d}"
    if condition == NO_CODE:
        return Sample(name, no_code_scene(rng, size), None, condition)
    payload = appointment_payload(rng)
    image, corners = placed_qr_scene(payload, condition, rng, size)
    return Sample(name, image, payload, condition, corners)


def hard_set(seed: int = DEFAULT_SEED, count: int = 320, no_code_share: float = 0.125,
             size: Size = (1280, 720)) -> list[Sample]:
    """``count`` frames: ``no_code_share`` of them without a code, the rest spread evenly over
    CONDITIONS."""
    no_code = round(count * no_code_share)
    coded = count - no_code
    samples = [sample(i, CONDITIONS[i % len(CONDITIONS)], seed, size) for i in range(coded)]
    samples += [sample(i, NO_CODE, seed, size) for i in range(no_code)]
    return samples


@dataclass(frozen=True, repr=False)
class Clip:
    """Consecutive frames of one code held in front of the camera (a hand is never still)."""

    name: str
    frames: list[np.ndarray]
    expected: str | None
    condition: str

    def __repr__(self) -> str:
        return f"Clip({self.name}, {len(self.frames)} frames)"


def clip(index: int, condition: str, frames: int = 6, seed: int = DEFAULT_SEED,
         size: Size = (1280, 720)) -> Clip:
    """``frames`` frames of one scene: the code keeps its place give or take a hand's tremor
    (a few pixels, a degree), while noise, compression and glare change from frame to frame."""
    known = (*CONDITIONS, NO_CODE)
    if condition not in known:
        raise ValueError(f"unknown condition {condition!r}")
    stream = [seed, 100 + known.index(condition), index]
    rng = np.random.default_rng(stream)
    w, h = size
    gain = _illumination(rng, size)
    name = f"clip-{condition}-{index:03d}"
    if condition == NO_CODE:
        canvas, look = _no_code_canvas(rng, size)
        shots = [_spoil(canvas.copy(), look, np.random.default_rng([*stream, f]),
                        (w / 2, h / 2), 200.0, gain) for f in range(frames)]
        return Clip(name, shots, None, condition)
    payload = appointment_payload(rng)
    modules = qr_modules(payload)
    background = desk_background(rng, size).astype(np.float32)
    pose, look = _pose_and_look(condition, rng, modules.shape[0], size)
    phone = bool(rng.random() < 0.5)
    tint = np.ones(3) if not phone else rng.uniform(0.9, 1.05, size=3)
    shots = []
    for f in range(frames):
        frame_rng = np.random.default_rng([*stream, f])
        dx, dy = frame_rng.normal(0, 2.0, size=2)
        held = _Pose(pose.cx + dx, pose.cy + dy, pose.side, pose.roll + frame_rng.normal(0, 1.0),
                     pose.tilt_x + frame_rng.normal(0, 1.0), pose.tilt_y + frame_rng.normal(0, 1.0))
        frame = background.copy()
        _place(frame, modules, held, look, phone, tint)
        shots.append(_spoil(frame, look, frame_rng, (held.cx, held.cy), held.side, gain))
    return Clip(name, shots, payload, condition)
