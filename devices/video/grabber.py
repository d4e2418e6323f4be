"""The capture thread both camera drivers share: latest-frame semantics, reconnect, fps meter.

One thread owns a ``FrameSource``: it opens it, pulls frames as fast as the source gives them
(or at ``pace_fps`` for a file that would otherwise be read at disk speed), and keeps only the
newest ``Frame``. Nothing queues: a preview at 30 fps and a QR decoder at 8 fps both ask for
the newest frame and the one they skipped is gone, so memory stays flat however slow a
consumer is. When the source stops giving frames the latest frame is dropped (a frozen
preview would lie), and the thread tries to reopen it every ``reconnect_interval_s``.

Frames are handed out read-only: the same array goes to the preview and to the decoder, and
one of them drawing on it must not change what the other sees.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from devices.camera import Frame

log = logging.getLogger(__name__)

# Consecutive failed reads before the source counts as lost: a USB camera sometimes hands
# over one damaged MJPEG frame, which is not an unplug.
MAX_READ_FAILURES = 3
# The fps meter looks at this many of the newest frames ...
_FPS_WINDOW = 30
# ... and reads 0 when nothing came for this long (a stalled or ended source).
_FPS_STALE_S = 1.0
_JOIN_S = 3.0


class EndOfStream(Exception):
    """Raised by ``FrameSource.read`` when a recording has been played once to its end."""


class FrameSource(Protocol):
    """Where frames come from: a V4L2 device, a video file, a folder of images.

    Only the grabber thread calls these, one at a time, so a source needs no locking.
    """

    # For logs and the maintenance screen: "/dev/video0", a file path.
    description: str
    # The rate to pace reads at, read after ``open``; None when ``read`` itself blocks at the
    # device's own rate (a camera).
    pace_fps: float | None

    def open(self) -> bool:
        """Open (or reopen) the source; False when it is not there."""
        ...

    def read(self) -> np.ndarray | None:
        """The next BGR frame (H x W x 3 uint8), None for a failed read, or EndOfStream."""
        ...

    def close(self) -> None: ...


class FrameGrabber:
    """Runs a ``FrameSource`` on its own thread and keeps its newest frame.

    ``on_running`` is called on the first frame after each (re)open, ``on_lost(reason)`` when
    the source cannot be opened or stops giving frames (once per loss, not at every retry),
    ``on_ended`` when a recording played once has ended; all on the grabber thread.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        name: str = "grabber",
        reconnect_interval_s: float = 2.0,
        max_read_failures: int = MAX_READ_FAILURES,
        on_running: Callable[[], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        on_ended: Callable[[], None] | None = None,
    ) -> None:
        if reconnect_interval_s <= 0:
            raise ValueError(f"reconnect_interval_s must be positive, not {reconnect_interval_s}")
        if max_read_failures < 1:
            raise ValueError(f"max_read_failures must be 1 or more, not {max_read_failures}")
        self.source = source
        self.name = name
        self.reconnect_interval_s = reconnect_interval_s
        self.max_read_failures = max_read_failures
        self._on_running = on_running or (lambda: None)
        self._on_lost: Callable[[str], None] = on_lost or (lambda _reason: None)
        self._on_ended = on_ended or (lambda: None)
        self._stopping = threading.Event()
        self._new_frame = threading.Condition()
        self._latest: Frame | None = None
        self._sequence = 0
        self._arrivals: deque[float] = deque(maxlen=_FPS_WINDOW)
        # None: not known yet; True: frames flowing; False: lost (told once).
        self._up: bool | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- life -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = _JOIN_S) -> None:
        """Stop the thread; the source is closed by the thread itself when its read returns
        (a camera blocked in a read may take up to its read timeout)."""
        self._stopping.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- what consumers see ---------------------------------------------------------------
    def latest(self) -> Frame | None:
        with self._new_frame:
            return self._latest

    def wait_for_frame(self, after: int = 0, timeout: float = 1.0) -> Frame | None:
        """The newest frame once its sequence is above ``after``; None after ``timeout`` or when
        the grabber stops. For a consumer that wants each new frame once (a decoder loop)
        without polling."""
        ends = time.monotonic() + timeout
        with self._new_frame:
            while True:
                frame = self._latest
                if frame is not None and frame.sequence > after:
                    return frame
                left = ends - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return None
                self._new_frame.wait(left)

    @property
    def frames(self) -> int:
        """Frames delivered since the start; sequence numbers never restart."""
        with self._new_frame:
            return self._sequence

    @property
    def fps(self) -> float:
        """Frames per second actually delivered lately (0.0 when nothing comes)."""
        with self._new_frame:
            arrivals = list(self._arrivals)
        if len(arrivals) < 2 or time.monotonic() - arrivals[-1] > _FPS_STALE_S:
            return 0.0
        return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)

    @property
    def ended(self) -> bool:
        return self._ended

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if not self._open():
                    self._lose(f"cannot open {self.source.description}")
                    self._stopping.wait(self.reconnect_interval_s)
                    continue
                reason = self._pull()
                self._close_source()
                if reason is None:  # stopping, or the recording ended
                    break
                self._lose(reason)
                self._stopping.wait(self.reconnect_interval_s)
        finally:
            self._close_source()
            with self._new_frame:
                self._new_frame.notify_all()

    def _open(self) -> bool:
        try:
            return bool(self.source.open())
        except Exception:  # a source bug must not end the thread that keeps retrying
            log.exception("%s: opening %s failed", self.name, self.source.description)
            return False

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("%s: closing %s failed", self.name, self.source.description)

    def _pull(self) -> str | None:
        """Read until stopped (None), ended (None) or lost (the reason)."""
        pace = self.source.pace_fps
        period = 1.0 / pace if pace else 0.0
        next_at = time.monotonic()
        failures = 0
        while not self._stopping.is_set():
            try:
                image = self.source.read()
            except EndOfStream:
                self._ended = True
                with self._new_frame:
                    self._arrivals.clear()
                log.info("%s: %s played to its end; its last frame stays", self.name,
                         self.source.description)
                self._on_ended()
                return None
            except Exception:
                log.exception("%s: reading %s failed", self.name, self.source.description)
                image = None
            if image is not None and not _is_bgr(image):
                log.error("%s: %s gave a %s %s array, not H x W x 3 uint8", self.name,
                          self.source.description, image.dtype, image.shape)
                image = None
            if image is None:
                failures += 1
                if failures >= self.max_read_failures:
                    return f"no frames from {self.source.description} ({failures} failed reads)"
                continue
            failures = 0
            self._publish(image)
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay < -period:
                    next_at = time.monotonic()  # fell behind (slow disk): no burst to catch up
                elif delay > 0:
                    self._stopping.wait(delay)
        return None

    def _publish(self, image: np.ndarray) -> None:
        image.flags.writeable = False
        now = time.monotonic()
        with self._new_frame:
            self._sequence += 1
            self._latest = Frame(image, self._sequence, time.time())
            self._arrivals.append(now)
            self._new_frame.notify_all()
        if self._up is not True:
            self._up = True
            self._on_running()

    def _lose(self, reason: str) -> None:
        with self._new_frame:
            self._latest = None
            self._arrivals.clear()
            self._new_frame.notify_all()
        if self._up is not False:
            self._up = False
            log.warning("%s: %s; retrying every %.3g s", self.name, reason,
                        self.reconnect_interval_s)
            self._on_lost(reason)


def _is_bgr(image: object) -> bool:
    return (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8)
