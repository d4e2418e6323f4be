"""Drives the real Kivy app offscreen: steps its event loop, taps widgets with real touch
events (through the window's input dispatch, as a touch screen would), takes screenshots."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screens"


class UiDriver:
    def __init__(self, kiosk: Any, size: tuple[int, int] = (1920, 1080)) -> None:
        from kiosk.ui.app import configure_window

        configure_window(size, fullscreen=False)
        from kivy.base import EventLoop

        from kiosk.ui.app import make_app

        self.kiosk = kiosk
        self.app = make_app(kiosk.config, lambda: kiosk)
        self.app._run_prepare()  # build and attach to the window, as App.run does
        self.loop = EventLoop
        self.wait_for(lambda: self.app.controller is not None, "the kiosk to start")
        self.controller = self.app.controller

    def pump(self, seconds: float = 0.05) -> None:
        end = time.monotonic() + seconds
        while True:
            self.loop.idle()
            if time.monotonic() >= end:
                break

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; screen is "
                                     f"{self.screen!r}")
            self.pump(0.05)
        self.pump(0.15)  # let the frame with the new content be drawn

    @property
    def screen(self) -> str:
        return self.app.manager.current

    def wait_screen(self, name: str, timeout: float = 15) -> None:
        self.wait_for(lambda: self.screen == name, f"screen {name!r}", timeout)

    def _walk(self, widget: Any) -> Iterator[Any]:
        yield widget
        for child in widget.children:
            yield from self._walk(child)

    def _visible(self) -> Iterator[Any]:
        yield from self._walk(self.controller.top_bar)
        yield from self._walk(self.controller.manager.current_screen)

    def find(self, ui_id: str) -> Any:
        for widget in self._visible():
            if getattr(widget, "ui_id", None) == ui_id:
                return widget
        raise AssertionError(f"no {ui_id!r} on screen {self.screen!r}: {self.texts()!r}")

    def ids(self) -> list[str]:
        return [w.ui_id for w in self._visible() if getattr(w, "ui_id", "")]

    def texts(self) -> list[str]:
        from kivy.uix.label import Label

        return [w.text for w in self._visible() if isinstance(w, Label) and w.text]

    def text(self) -> str:
        return "\n".join(self.texts())

    def tap_at(self, x: float, y: float) -> None:
        from kivy.tests.common import UnitTestTouch

        touch = UnitTestTouch(x, y)
        touch.touch_down()
        self.pump(0.05)
        touch.touch_up()
        self.pump(0.1)

    def tap(self, ui_id: str) -> None:
        widget = self.find(ui_id)
        assert not widget.disabled, f"{ui_id} is disabled"
        self.tap_at(*widget.to_window(*widget.center))

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.pump(0.1)
        path = SCREENSHOTS / f"{name}.png"
        self.app.root.export_to_png(str(path))  # the whole window: the root fills it
        return path

    def close(self) -> None:
        from kivy.core.window import Window

        self.app.dispatch("on_stop")
        Window.remove_widget(self.app.root)
        self.pump(0.05)
