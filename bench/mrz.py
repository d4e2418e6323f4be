"""MRZ reading from camera frames, timed and scored: this project's reader
(``devices.vision.mrz_ocr.read_mrz_text``: band finding, OCR-B templates and Tesseract, check
digits) against plain Tesseract on the whole frame with an MRZ whitelist, whose lines are
accepted when ``parse_mrz`` (every check digit) accepts them. Frames are generated
(``devices.sim.mrz_scenes``, made-up holders, fixed seed) for TD3, TD2 and TD1, clean and
moderately degraded, plus data pages without an MRZ. A wrong reading is the failure that
matters: it would be used to open a chip.

    .venv/bin/python -m bench.mrz [--frames 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytesseract

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.emrtd.mrz import MrzError, format_mrz, parse_mrz  # noqa: E402
from devices.sim.mrz_scenes import (  # noqa: E402
    CLEAN,
    MODERATE,
    mrz_scene,
    page_without_mrz_scene,
    random_specimen,
)
from devices.vision.mrz_ocr import MRZ_CHARS, read_mrz_text  # noqa: E402

WIDTHS = {30, 36, 44}


def plain_tesseract(image: np.ndarray) -> str | None:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    text = pytesseract.image_to_string(
        gray, config=f"--psm 6 -c tessedit_char_whitelist={MRZ_CHARS}")
    lines = [ln.replace(" ", "") for ln in text.splitlines()]
    lines = [ln for ln in lines if len(ln) in WIDTHS and "<" in ln]
    for count in (3, 2):
        for start in range(len(lines) - count + 1):
            block = lines[start:start + count]
            try:
                return format_mrz(parse_mrz("\n".join(block)))
            except MrzError:
                continue
    return None


def score(reader: Callable[[np.ndarray], str | None],
          frames: list[tuple[np.ndarray, str | None]]) -> tuple[int, int, int, list[float]]:
    right = wrong = none = 0
    times: list[float] = []
    for image, expected in frames:
        start = time.perf_counter()
        got = reader(image)
        times.append((time.perf_counter() - start) * 1000)
        if got is None:
            none += 1
        elif expected is not None and got == expected:
            right += 1
        else:
            wrong += 1
    return right, wrong, none, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per format and condition")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20261122)
    sets: list[tuple[str, list[tuple[np.ndarray, str | None]]]] = []
    for fmt in ("TD3", "TD2", "TD1"):
        for name, conditions in (("clean", CLEAN), ("moderate", MODERATE)):
            frames = []
            for i in range(args.frames):
                scene = mrz_scene(random_specimen(fmt, rng), 1000 + i, conditions)
                frames.append((scene.image, scene.text))
            sets.append((f"{fmt} {name}", frames))
    sets.append(("no MRZ", [(page_without_mrz_scene(2000 + i).image, None)
                            for i in range(args.frames)]))
    print(f"{args.frames} generated 1280x720 frames per row; right / wrong / none, "
          "median ms per frame\n")
    print("| frames | reader | right | wrong | none | median ms |")
    print("|---|---|---:|---:|---:|---:|")
    for label, frames in sets:
        for name, reader in (("this project", read_mrz_text),
                             ("plain Tesseract", plain_tesseract)):
            right, wrong, none, times = score(reader, frames)
            print(f"| {label} | {name} | {right} | {wrong} | {none} | "
                  f"{statistics.median(times):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
