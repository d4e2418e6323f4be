"""The live camera picture: the newest frame, drawn at the camera's pace on Kivy's clock.

It reads ``Camera.latest_frame()`` (a snapshot, never a queued command), so decoding or OCR on
other threads can never hold the preview back, and a frozen camera shows as a frozen picture
rather than a growing backlog. An optional outline (the document the camera found, as shares of
the frame's width and height) is drawn over the picture, scaled as the picture is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kivy.clock import Clock
from kivy.graphics import Color, Line
from kivy.graphics.texture import Texture
from kivy.uix.image import Image

from devices.camera import Camera

# Corners of an outline as shares (0..1) of the frame's width and height, x right and y down
# as OpenCV has them.
Outline = Sequence[tuple[float, float]]

PREVIEW_FPS = 30.0


class CameraPreview(Image):
    def __init__(self, camera: Camera, outline: Callable[[], Outline | None] | None = None,
                 **kwargs: object) -> None:
        super().__init__(fit_mode="contain", **kwargs)
        self.camera = camera
        self._outline = outline
        self._sequence = -1
        self._frame_size = (0, 0)
        self._event = Clock.schedule_interval(self._refresh, 1.0 / PREVIEW_FPS)
        with self.canvas.after:
            Color(0.1, 0.8, 0.3, 1)
            self._line = Line(points=[], width=3, close=True)
        self.bind(pos=self._draw_outline, size=self._draw_outline)

    @property
    def frames_shown(self) -> int:
        """Sequence number of the frame on screen; -1 before the first one."""
        return self._sequence

    def _refresh(self, _dt: float) -> None:
        frame = self.camera.latest_frame()
        if frame is None or frame.sequence == self._sequence:
            return
        height, width = frame.image.shape[:2]
        texture = self.texture
        if texture is None or (width, height) != self._frame_size:
            texture = Texture.create(size=(width, height), colorfmt="bgr")
            texture.flip_vertical()  # OpenCV rows run top-down, GL textures bottom-up
            self._frame_size = (width, height)
        texture.blit_buffer(frame.image.tobytes(), colorfmt="bgr", bufferfmt="ubyte")
        self.texture = texture
        self._sequence = frame.sequence
        self.canvas.ask_update()
        self._draw_outline()

    def _draw_outline(self, *_: object) -> None:
        corners = self._outline() if self._outline is not None else None
        width, height = self._frame_size
        if not corners or not width:
            self._line.points = []
            return
        scale = min(self.width / width, self.height / height)
        left = self.x + (self.width - width * scale) / 2
        bottom = self.y + (self.height - height * scale) / 2
        self._line.points = [v for x, y in corners
                             for v in (left + x * width * scale,
                                       bottom + (1 - y) * height * scale)]

    def stop(self) -> None:
        """Stop drawing, forget the picture (it may show a face or a document) and leave the
        layout."""
        self._event.cancel()
        self.texture = None
        self._line.points = []
        self._sequence = -1
        self.detach()

    def detach(self) -> None:
        """Out of its layout (a screen redraws around it), still running."""
        if self.parent is not None:
            self.parent.remove_widget(self)
