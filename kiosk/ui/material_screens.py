"""材料拍照 screens: the live picture with the outline of the page found and what to do, then
the page just taken for review. They render ``MaterialCaptureView`` and forward taps."""

from __future__ import annotations

import io
from collections.abc import Sequence

from kivy.core.image import Image as CoreImage
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.image import Image
from kivy.uix.progressbar import ProgressBar

from devices.camera import Camera
from flows.material_capture import CaptureStep, MaterialCaptureView
from kiosk.ui import theme
from kiosk.ui.camera_preview import CameraPreview
from kiosk.ui.identity_screens import Buttons, _button
from kiosk.ui.screens import KioskScreen, Tr
from kiosk.ui.widgets import Panel, Text


class MaterialCaptureScreen(KioskScreen):
    _preview: CameraPreview | None = None

    def render(self, _: Tr, view: MaterialCaptureView, camera: Camera, guidance: str,
               problem: str, buttons: Buttons) -> None:
        """``guidance`` and ``problem``: already in the citizen's language."""
        self._view = view
        body = self._reset()
        page = _("Page {n}").format(n=view.page_count + (1 if view.step is CaptureStep.AIMING
                                                          else 0))
        body.add_widget(Text(f"{view.material.name} · {page}", size=56, bold=True,
                             size_hint_y=None, height=theme.px(90)))
        if view.step is CaptureStep.AIMING:
            self._aiming(body, view, camera, guidance)
        else:
            self._stop_preview()
            self._review(body, _, view)
        if problem:
            body.add_widget(Text(problem, size=36, color=theme.ORANGE, size_hint_y=None,
                                 height=theme.px(60)))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))

    def _aiming(self, body: BoxLayout, view: MaterialCaptureView, camera: Camera,
                guidance: str) -> None:
        if self._preview is None or self._preview.camera is not camera:
            self._stop_preview()
            self._preview = CameraPreview(camera, outline=self._outline)
        self._preview.detach()
        body.add_widget(self._preview)
        body.add_widget(Text(guidance, size=44, bold=True, color=theme.BLUE,
                             size_hint_y=None, height=theme.px(70)))
        steady = ProgressBar(max=1.0, value=view.steady, size_hint_y=None,
                             height=theme.px(24))
        body.add_widget(steady)

    def _outline(self) -> Sequence[tuple[float, float]] | None:
        view = getattr(self, "_view", None)
        return view.outline if view is not None else None

    def _review(self, body: BoxLayout, _: Tr, view: MaterialCaptureView) -> None:
        frame = Panel(orientation="vertical", radius=theme.px(20), padding=theme.px(16))
        if view.preview is not None:
            texture = CoreImage(io.BytesIO(view.preview), ext="jpg").texture
            frame.add_widget(Image(texture=texture, fit_mode="contain"))
        body.add_widget(frame)
        body.add_widget(Text(_("Is the page sharp and complete? {n} page(s) taken.").format(
            n=view.page_count), size=40, size_hint_y=None, height=theme.px(70)))

    def hidden(self) -> None:
        self._stop_preview()

    def _stop_preview(self) -> None:
        if self._preview is not None:
            self._preview.stop()
            self._preview = None

    def clear(self) -> None:
        """Session end: the picture and the page preview go."""
        self._stop_preview()
        self._view = None
        self.body.clear_widgets()


