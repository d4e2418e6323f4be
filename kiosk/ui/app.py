"""The Kivy application: one full-screen window, a top bar, the screens, the session tick."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING


def configure_window(size: tuple[int, int], fullscreen: bool) -> None:
    """Must run before Kivy opens its window (before importing kivy.core.window)."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # our logging (with masking) stays in charge
    from kivy.config import Config

    Config.set("graphics", "width", str(size[0]))
    Config.set("graphics", "height", str(size[1]))
    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    Config.set("graphics", "borderless", "1" if fullscreen else "0")
    Config.set("graphics", "resizable", "0")
    Config.set("kivy", "exit_on_escape", "0")  # a keyboard plugged into a kiosk must not quit it
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("kivy", "keyboard_mode", "system")


if TYPE_CHECKING:
    from kiosk.app import Kiosk


def make_app(kiosk: Kiosk) -> object:
    """Build the App object (imports Kivy: call configure_window first)."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.screenmanager import ScreenManager

    from kiosk import notify
    from kiosk.app import FONT_PATH
    from kiosk.ui import theme
    from kiosk.ui.controller import Controller
    from kiosk.ui.screens import TopBar

    class KioskApp(App):
        title = "Zizhu 自助"

        def build(self) -> BoxLayout:
            theme.register_font(FONT_PATH)
            Window.clearcolor = theme.BG
            root = BoxLayout(orientation="vertical")
            top = TopBar(size_hint_y=None, height=theme.px(100))
            manager = ScreenManager()
            root.add_widget(top)
            root.add_widget(manager)
            self.controller = Controller(kiosk, manager, top)
            Window.bind(on_touch_down=lambda *_: self.controller.touched())
            self.controller.show_attract()
            self.controller.render_top_bar()
            self._tick = Clock.schedule_interval(self.controller.tick, 0.5)
            Window.bind(on_flip=self._first_frame)
            return root

        def _first_frame(self, *_: object) -> None:
            # The first buffer swap after build shows the attract screen: now we are ready.
            Window.unbind(on_flip=self._first_frame)
            notify.ready()

        def on_stop(self) -> None:
            self._tick.cancel()
            self.controller.shutdown()

    return KioskApp()
