"""QR decoding, measured: pyzbar, raw zxing-cpp and this project's pipeline on the same frames in
the same run, then the pipeline on short clips (voting, memory), then the camera's preview rate
at 1280x720 while a second thread decodes.

The frames are the generated hard set (devices/sim/qr_scenes.py, fixed seed): 1280x720 frames
of an appointment code of 80–200 characters, clean, rotated, in perspective, blurred, noisy, in
low contrast, under glare, small, and frames without a code but with code-like clutter. With
``--frames DIR`` the same comparison runs on someone else's frames instead: DIR/NAME.png with the
expected text in DIR/NAME.txt (no .txt: a frame without a code). ``--write-frames DIR`` writes
the generated set in that form, to decode it with other tools.

Every contestant gets the BGR frame and converts it to grey with OpenCV inside its time. Time
per frame is the best of ``--repeats`` runs, contestants interleaved frame by frame, so other
processes on the machine inflate the figures as little as they can. A frame is decoded when the
expected text is among the texts read; a false read is any other text (on a frame without a
code, any text at all). The pipeline rows without one of its stages are how each stage was
chosen: a stage stays only if the pipeline reads less without it.

Preview rate: a grabber thread decodes MJPG frames (pre-encoded hard-set frames, as a USB
camera's MJPG stream needs decoding) at a 30 fps schedule into a latest-frame slot; a preview
thread takes each new frame and converts it as a texture upload would (BGR to RGB, flipped);
the real CameraQrReader reads from the same camera, read after read. Frames are never queued:
a decoder slower than the camera skips frames, and the reader keeps decoding to its share of a
core (devices.qr.camera_reader.DECODE_SHARE). Decodes per second can exceed the camera's rate
with a code in view: each new read starts on the frame in view, decoded once already by the
read before. The machine's load average is printed with it: other processes take cores too.

It is a benchmark, not a test: a missed target is printed, not turned into an exit status.

    .venv/bin/python -m bench.qr [--count 320] [--repeats 3] [--seconds 5]
    .venv/bin/python -m bench.qr --frames DIR
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.camera import Camera  # noqa: E402
from devices.camera import Frame as CameraFrame  # noqa: E402
from devices.contract import DeviceState  # noqa: E402
from devices.qr.camera_reader import CameraQrReader  # noqa: E402
from devices.qr.decoders import PyzbarDecoder, ZxingDecoder  # noqa: E402
from devices.qr.pipeline import LIKELY, MEMORY, OUTLINE, SHARPEN, STAGES, QrPipeline  # noqa: E402
from devices.sim import qr_scenes  # noqa: E402
from devices.sim.qr_scenes import NO_CODE, Sample  # noqa: E402

RAW = "zxing-cpp raw"
PIPELINE = "pipeline (zxing-cpp + second tries)"
TARGETS = ("targets: the pipeline decodes >= 10% more of the hard set than raw zxing-cpp, at "
           "<= 1.5x its median time, with no false reads; the preview holds 25 fps on 2 cores")


@dataclass(frozen=True)
class Contestant:
    label: str
    decode: Callable[[np.ndarray], list[str]]  # BGR frame in, texts out


@dataclass
class Result:
    label: str
    decoded: int = 0
    coded: int = 0
    no_code: int = 0
    false_reads: int = 0
    times: list[float] = field(default_factory=list)
    no_code_times: list[float] = field(default_factory=list)
    by_condition: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.decoded / self.coded if self.coded else 0.0


def _grey(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def contestants(ablation: bool = True) -> list[Contestant]:
    pyzbar, zxing = PyzbarDecoder(), ZxingDecoder()
    out = [Contestant("pyzbar", lambda bgr: pyzbar.decode(_grey(bgr))),
           Contestant(RAW, lambda bgr: zxing.decode(_grey(bgr))),
           Contestant(PIPELINE, QrPipeline().decode)]
    if ablation:
        for stage in (LIKELY, OUTLINE, SHARPEN):
            out.append(Contestant(f"pipeline without {stage}",
                                  QrPipeline(stages=STAGES - {stage}).decode))
    return out


# -- frames ------------------------------------------------------------------------------------
def _generate(job: tuple[int, str, int]) -> Sample:
    index, condition, seed = job
    return qr_scenes.sample(index, condition, seed)


def generated_set(seed: int, count: int) -> list[Sample]:
    """qr_scenes.hard_set, made on every core: the same frames, sooner."""
    no_code = round(count * 0.125)
    coded = count - no_code
    conditions = qr_scenes.CONDITIONS
    jobs = [(i, conditions[i % len(conditions)], seed) for i in range(coded)]
    jobs += [(i, NO_CODE, seed) for i in range(no_code)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_generate, jobs, chunksize=8))


def load_frames(directory: Path) -> list[Sample]:
    """NAME.png frames, each with its expected text in NAME.txt, if it shows a code."""
    samples = []
    for png in sorted(directory.glob("*.png")):
        image = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {png}")
        txt = png.with_suffix(".txt")
        # A text editor's final newline is not part of the code.
        expected = txt.read_text(encoding="utf-8").rstrip("\r\n") if txt.exists() else None
        samples.append(Sample(png.stem, image, expected, "code" if expected else NO_CODE))
    if not samples:
        raise SystemExit(f"no .png frames in {directory}")
    return samples


def write_frames(samples: Sequence[Sample], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for s in samples:
        cv2.imwrite(str(directory / f"{s.name}.png"), s.image)
        if s.expected is not None:
            (directory / f"{s.name}.txt").write_text(s.expected, encoding="utf-8")


# -- single frames -----------------------------------------------------------------------------
def compare(samples: Sequence[Sample], entrants: Sequence[Contestant],
            repeats: int = 3) -> list[Result]:
    results = [Result(c.label) for c in entrants]
    for s in samples:
        for entrant, result in zip(entrants, results, strict=True):
            best, texts = float("inf"), []
            for _ in range(max(1, repeats)):
                started = time.perf_counter()
                texts = entrant.decode(s.image)
                best = min(best, time.perf_counter() - started)
            result.times.append(best)
            if s.expected is None:
                result.no_code += 1
                result.no_code_times.append(best)
                result.false_reads += len(texts)
            else:
                result.coded += 1
                hit = s.expected in texts
                result.decoded += hit
                result.by_condition[s.condition] += hit
                result.false_reads += sum(t != s.expected for t in texts)
    return results


def _ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def print_comparison(results: Sequence[Result], samples: Sequence[Sample]) -> None:
    raw = next((r for r in results if r.label == RAW), results[0])
    raw_median = statistics.median(raw.times)
    print(f"| decoder{'':<37} | decoded | rate | vs raw | false | median ms | vs raw "
          "| p95 ms | no-code median ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        gain = ((r.rate / raw.rate - 1) * 100) if raw.rate else float("nan")
        median = statistics.median(r.times)
        print(f"| {r.label:<44} | {r.decoded:>3}/{r.coded:<3} | {r.rate * 100:5.1f}% "
              f"| {gain:+5.1f}% ({(r.rate - raw.rate) * 100:+.1f} pt) | {r.false_reads:>3} "
              f"| {median * 1000:8.2f} | {median / raw_median:5.2f}x | {_ms(r.times, 95):6.1f} "
              f"| {_ms(r.no_code_times, 50):6.1f} |")
    conditions = list(dict.fromkeys(s.condition for s in samples if s.expected is not None))
    counts = Counter(s.condition for s in samples if s.expected is not None)
    print(f"\n| decoded by condition{'':<24} | " + " | ".join(conditions) + " |")
    print("|---|" + "---:|" * len(conditions))
    for r in results:
        cells = " | ".join(f"{r.by_condition[c] * 100 / counts[c]:3.0f}%" for c in conditions)
        print(f"| {r.label:<44} | {cells} |")
    no_code = sum(1 for s in samples if s.expected is None)
    print(f"\n{len(samples)} frames: {len(samples) - no_code} with a code "
          f"({', '.join(f'{counts[c]} {c}' for c in conditions)}), {no_code} without.")


# -- clips: voting and memory ------------------------------------------------------------------
@dataclass
class StreamResult:
    label: str
    confirmed: int = 0
    clips: int = 0
    wrong: int = 0
    false_on_empty: int = 0
    empty_clips: int = 0
    frames_to_confirm: list[int] = field(default_factory=list)


def stream_compare(clips: Sequence[qr_scenes.Clip],
                   pipelines: Sequence[tuple[str, Callable[[], QrPipeline]]]
                   ) -> list[StreamResult]:
    results = []
    for label, make in pipelines:
        result = StreamResult(label)
        for c in clips:
            pipeline = make()
            confirmed: list[tuple[int, str]] = []
            for n, frame in enumerate(c.frames, start=1):
                payload = pipeline.feed(frame)
                if payload is not None:
                    confirmed.append((n, payload))
            if c.expected is None:
                result.empty_clips += 1
                result.false_on_empty += len(confirmed)
                continue
            result.clips += 1
            result.wrong += sum(p != c.expected for _, p in confirmed)
            right = [n for n, p in confirmed if p == c.expected]
            if right:
                result.confirmed += 1
                result.frames_to_confirm.append(right[0])
        results.append(result)
    return results


def print_streams(results: Sequence[StreamResult], frames: int) -> None:
    print(f"\n| clips of {frames} frames, confirm = 2 of 4{'':<5} | by frame 2 | by frame 3 "
          f"| by frame {frames} | wrong | confirmed on no-code clips |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        cells = []
        for limit in (2, 3, frames):
            n = sum(1 for f in r.frames_to_confirm if f <= limit)
            cells.append(f"{n:>3}/{r.clips} ({n * 100 / r.clips:5.1f}%)")
        print(f"| {r.label:<40} | " + " | ".join(cells)
              + f" | {r.wrong} | {r.false_on_empty}/{r.empty_clips} |")


def _make_clip(job: tuple[int, str, int, int]) -> qr_scenes.Clip:
    index, condition, frames, seed = job
    return qr_scenes.clip(index, condition, frames, seed)


def generated_clips(seed: int, per_condition: int, frames: int) -> list[qr_scenes.Clip]:
    jobs = [(i, c, frames, seed) for c in qr_scenes.CONDITIONS for i in range(per_condition)]
    jobs += [(i, NO_CODE, frames, seed) for i in range(per_condition)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_make_clip, jobs, chunksize=2))


# -- preview rate while decoding ---------------------------------------------------------------
class Grabber(Camera):
    """A camera stand-in: decodes MJPG frames on a 30 fps schedule into a latest-frame slot."""

    driver_name = "bench"

    def __init__(self, jpegs: Sequence[bytes], fps: float = 30.0) -> None:
        super().__init__("bench-camera")
        self._jpegs = jpegs
        self._period = 1.0 / fps
        self._lock = threading.Lock()
        self._latest: CameraFrame | None = None
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-grabber", daemon=True)
        self._set_status(state=DeviceState.ONLINE)

    def start(self) -> Grabber:
        self._thread.start()
        return self

    def _run(self) -> None:
        due = time.perf_counter()
        while not self._stop.is_set():
            raw = np.frombuffer(self._jpegs[self.produced % len(self._jpegs)], np.uint8)
            image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
            with self._lock:
                self.produced += 1
                self._latest = CameraFrame(image, self.produced, time.time())
            due += self._period
            late = time.perf_counter() - due
            if late > self._period:  # a camera drops the frames it could not deliver in time
                due += late // self._period * self._period
            self._stop.wait(max(0.0, due - time.perf_counter()))

    def latest_frame(self) -> CameraFrame | None:
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


class CountingPipeline(QrPipeline):
    """The pipeline, counting the frames it is fed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fed: list[float] = []

    def feed(self, image: np.ndarray) -> str | None:
        started = time.perf_counter()
        try:
            return super().feed(image)
        finally:
            self.fed.append(time.perf_counter() - started)


@dataclass
class RateResult:
    label: str
    camera_fps: float
    preview_fps: float
    decoded_fps: float
    decode_ms: float
    reads: int


def _preview(camera: Grabber, stop: threading.Event, shown: list[int]) -> None:
    """What the UI does 60 times a second: take the newest frame, convert it for a texture."""
    last = 0
    while not stop.is_set():
        frame = camera.latest_frame()
        if frame is not None and frame.sequence != last:
            last = frame.sequence
            cv2.flip(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB), 0)
            shown.append(last)
        stop.wait(1 / 60)


def preview_rate(label: str, jpegs: Sequence[bytes], pipeline: CountingPipeline | None,
                 seconds: float) -> RateResult:
    camera = Grabber(jpegs).start()
    stop = threading.Event()
    shown: list[int] = []
    preview = threading.Thread(target=_preview, args=(camera, stop, shown))
    time.sleep(0.3)  # the camera's first frames
    produced_before = camera.produced
    preview.start()
    reads = 0
    started = time.perf_counter()
    if pipeline is None:
        time.sleep(seconds)
    else:
        # The real reader, read after read, as a check-in screen would keep asking.
        reader = CameraQrReader(camera, pipeline)
        while (left := seconds - (time.perf_counter() - started)) > 0.05:
            reads += reader.read(left).wait(left + 5).ok
        reader.close()
    elapsed = time.perf_counter() - started
    stop.set()
    preview.join()
    produced = camera.produced - produced_before
    camera.close()
    fed = pipeline.fed if pipeline is not None else []
    return RateResult(label, produced / elapsed, len(shown) / elapsed, len(fed) / elapsed,
                      statistics.median(fed) * 1000 if fed else float("nan"), reads)


def print_rates(results: Sequence[RateResult]) -> None:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n| 1280x720 MJPG at 30 fps, {os.cpu_count()} cores (load {load}) | camera fps "
          "| preview fps | decodes /s | median decode ms | reads |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r.label:<48} | {r.camera_fps:5.1f} | {r.preview_fps:5.1f} "
              f"| {r.decoded_fps:5.1f} | {r.decode_ms:6.1f} | {r.reads} |")


# -- main --------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, help="folder of NAME.png (+ NAME.txt) frames")
    parser.add_argument("--write-frames", type=Path, help="write the generated set here, stop")
    parser.add_argument("--seed", type=int, default=qr_scenes.DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=320, help="frames in the generated set")
    parser.add_argument("--repeats", type=int, default=3, help="runs per frame, best kept")
    parser.add_argument("--clips", type=int, default=8, help="clips per condition")
    parser.add_argument("--clip-frames", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="per preview-rate run")
    parser.add_argument("--no-ablation", action="store_true")
    args = parser.parse_args(argv)

    if args.frames:
        samples = load_frames(args.frames)
        print(f"frames from {args.frames}\n")
        print_comparison(compare(samples, contestants(not args.no_ablation), args.repeats),
                         samples)
        return
    started = time.perf_counter()
    samples = generated_set(args.seed, args.count)
    print(f"hard set: seed {args.seed}, generated in {time.perf_counter() - started:.0f} s\n")
    if args.write_frames:
        write_frames(samples, args.write_frames)
        print(f"written to {args.write_frames}")
        return
    print_comparison(compare(samples, contestants(not args.no_ablation), args.repeats), samples)

    clips = generated_clips(args.seed, args.clips, args.clip_frames)
    print_streams(stream_compare(clips, [
        ("zxing-cpp raw + voting", lambda: QrPipeline(enhance=False)),
        ("pipeline + voting", QrPipeline),
        ("pipeline + voting, without memory", lambda: QrPipeline(stages=STAGES - {MEMORY})),
    ]), args.clip_frames)

    def mjpg(frames: Sequence[np.ndarray]) -> list[bytes]:
        return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
                for f in frames]

    # A code in view: the clips one after the other, each code held for its clip's frames.
    with_code = mjpg([f for c in clips if c.expected is not None for f in c.frames])
    without = mjpg([s.image for s in samples if s.expected is None][:24])
    print_rates([
        preview_rate("preview only", with_code, None, args.seconds),
        preview_rate("preview + reader, zxing-cpp raw, code in view", with_code,
                     CountingPipeline(enhance=False), args.seconds),
        preview_rate("preview + reader, pipeline, code in view", with_code,
                     CountingPipeline(), args.seconds),
        preview_rate("preview + reader, zxing-cpp raw, no code", without,
                     CountingPipeline(enhance=False), args.seconds),
        preview_rate("preview + reader, pipeline, no code", without, CountingPipeline(),
                     args.seconds),
    ])
    print(f"\n{TARGETS}.")


if __name__ == "__main__":
    main()
