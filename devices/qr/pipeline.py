"""This project's QR pipeline: zxing-cpp as it comes, then cheap second tries where it failed.

First the backend reads the whole frame exactly as the raw decoder would, so the pipeline reads
whatever the raw decoder reads, at the same cost. Only when that reads nothing does a second pass
look again, within a budget of decoder calls:

1. where the code was last seen (streaming only: ``feed``), cut out and scaled up;
2. the regions that look most like a code (devices.qr.locate), cut out and scaled up to about
   six pixels a module: the decoder reads small and noisy codes there that it misses at full
   frame, where its binarizer and finder search work at the frame's own scale;
3. a code located in a cut-out but not read: rectified flat from its four corners, then the
   same sharpened (blur, motion);
4. the best region's own outline (its patch of modules closed into a quadrilateral), rectified
   and sharpened: strong perspective and codes too small for the finder search.

Each stage stays because the pipeline reads less of the benchmark's hard set without it
(bench/qr.py prints the pipeline without each). What was measured and dropped: re-reading the
quads zxing-cpp located at full frame but did not read (the cut-outs of 2 find the same codes),
whole-frame second tries (another binarizer, half size, blurred, sharpened: few reads for a
full-frame price), sharpening cut-outs before rectifying, bilinear instead of bicubic resampling.

Frames the raw decoder reads cost nothing more; frames it cannot read, including every frame
without a code, pay for the second pass (about 3x the raw decoder's time on such a frame).

``feed`` adds agreement across frames (devices.qr.voting): one frame never hands on a payload
by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from devices.qr.decoders import Detection, QrDecoder, make_decoder, texts_of
from devices.qr.locate import Box, likely_regions, outline
from devices.qr.regions import crop_upscaled, plausible_quad, rectify, sharpen
from devices.qr.voting import Votes

# The second-pass stages, by name; the benchmark switches each off in turn.
MEMORY = "memory"  # where the code was last seen (feed only)
LIKELY = "likely"  # the regions that look most like a code, cut out and scaled up
OUTLINE = "outline"  # the best region's own outline, rectified
SHARPEN = "sharpen"  # a sharpened second read of each rectified code
STAGES = frozenset({MEMORY, LIKELY, OUTLINE, SHARPEN})

# Decoder calls a second pass may make: bounds what a frame without a code costs.
SECOND_PASS_BUDGET = 8
# Frames a code's last position is kept for after it was last seen.
MEMORY_FRAMES = 15


@dataclass(frozen=True)
class _Region:
    box: Box
    quad: np.ndarray | None  # four corners, when the code was located itself
    source: str
    outline: bool = False  # outline the patch here if the decoder cannot locate a code


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    raise ValueError("expected an H x W x 3 BGR or H x W grey uint8 image")


class QrPipeline:
    """Reads QR codes from camera frames; one instance per camera stream (it keeps memory).

    Not thread-safe: one consumer thread feeds it.
    """

    name = "pipeline"

    def __init__(self, decoder: QrDecoder | str = "zxing", *, enhance: bool = True,
                 stages: Iterable[str] = STAGES, confirm: int = 2, window: int = 4,
                 budget: int = SECOND_PASS_BUDGET) -> None:
        self.decoder = make_decoder(decoder) if isinstance(decoder, str) else decoder
        self.stages = frozenset(stages) if enhance else frozenset()
        unknown = self.stages - STAGES
        if unknown:
            raise ValueError(f"unknown pipeline stages: {sorted(unknown)}")
        self.budget = budget
        self._votes = Votes(confirm, window)
        self._last_seen: Box | None = None
        self._unseen_frames = 0
        # Which pass read the last frame ("first", a stage name, or None): for the benchmark.
        self.last_stage: str | None = None

    # -- one frame ---------------------------------------------------------------------------
    def decode(self, image: np.ndarray) -> list[str]:
        """Texts of the codes in one frame (BGR or grey), with no history."""
        return texts_of(self._read(to_gray(image), last_seen=None))

    # -- a stream ----------------------------------------------------------------------------
    def feed(self, image: np.ndarray) -> str | None:
        """Read one frame of a stream; returns a payload once frames agree on it, else None."""
        found = self._read(to_gray(image), last_seen=self._last_seen)
        if found:
            read = [d for d in found if d.text is not None]
            self._last_seen = Box.around((read or found)[0].quad)
            self._unseen_frames = 0
        elif self._last_seen is not None:
            self._unseen_frames += 1
            if self._unseen_frames > MEMORY_FRAMES:
                self._last_seen = None
        return self._votes.add(texts_of(found))

    def reset(self) -> None:
        """Forget the stream: votes and where the code was (a new citizen, a new read)."""
        self._votes.reset()
        self._last_seen = None
        self._unseen_frames = 0

    # -- the passes --------------------------------------------------------------------------
    def _read(self, gray: np.ndarray, last_seen: Box | None) -> list[Detection]:
        """What was read, with positions; failing that, the codes located but not read."""
        self.last_stage = None
        first = self.decoder.detect(gray)
        if any(d.text is not None for d in first):
            self.last_stage = "first"
            return [d for d in first if d.text is not None]
        if not self.stages:
            return first
        regions: list[_Region] = []
        if last_seen is not None and MEMORY in self.stages:
            regions.append(_Region(last_seen, None, MEMORY, outline=True))
        if LIKELY in self.stages:
            boxes = likely_regions(gray)
            regions += [_Region(box, None, LIKELY, outline=i == 0) for i, box in enumerate(boxes)]
        return self._second_pass(gray, regions) or first

    def _second_pass(self, gray: np.ndarray, regions: list[_Region]) -> list[Detection]:
        calls = 0
        tried: list[tuple[bool, float, float]] = []
        queue = list(regions)
        while queue and calls < self.budget:
            region = queue.pop(0)
            # A quad and a box at the same place are different tries (rectified vs cut out).
            kind, (cx, cy) = region.quad is not None, region.box.centre
            if any(k == kind and abs(cx - x) + abs(cy - y) < 12 for k, x, y in tried):
                continue
            tried.append((kind, cx, cy))
            if region.quad is not None:
                flat = rectify(gray, region.quad)
                for image in ([flat, sharpen(flat)] if SHARPEN in self.stages else [flat]):
                    if calls >= self.budget:
                        break
                    calls += 1
                    texts = texts_of(self.decoder.detect(image, thorough=False))
                    if texts:
                        self.last_stage = region.source
                        return [Detection(t, region.quad) for t in texts]
                continue
            roi, scale, (ox, oy) = crop_upscaled(gray, region.box)
            if roi.shape[0] < 16 or roi.shape[1] < 16:
                continue
            calls += 1
            offset = np.array([ox, oy], dtype=np.float32)
            seen = [Detection(d.text, d.quad / scale + offset)
                    for d in self.decoder.detect(roi, thorough=False)]
            read = [d for d in seen if d.text is not None]
            if read:
                self.last_stage = region.source
                return read
            # Located in the cut-out but not read: rectify it next, before other regions; and
            # the patch's own outline, which holds where the decoder's finder search did not.
            located = [_Region(Box.around(d.quad), d.quad, region.source) for d in seen
                       if plausible_quad(d.quad, gray.shape)]
            if region.outline and OUTLINE in self.stages:
                quad = outline(gray, region.box)
                if quad is not None and plausible_quad(quad, gray.shape):
                    located.append(_Region(Box.around(quad), quad, OUTLINE))
            queue[:0] = located
        return []
