"""The Kivy application: one full-screen window, a top bar, the screens, the session tick.

Start-up is in two steps so the screen is never black for long: the attract screen is drawn
from the config alone, then the kiosk (storage, back-office client, drivers) is built and the
screen starts taking touches. READY=1 goes to systemd after the second step, and WATCHDOG=1
from the main loop for as long as it runs (systemd/README.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kivy.clock import ClockEvent

    from kiosk.app import Kiosk
    from kiosk.config import KioskConfig

log = logging.getLogger(__name__)


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


def schedule_watchdog() -> ClockEvent | None:
    """Ping systemd's watchdog from the Kivy main loop, every half of $WATCHDOG_USEC.

    Clock callbacks run on the main loop, so the pings stop while the loop is blocked and
    systemd restarts a frozen screen; a ping from a thread would keep a frozen kiosk "alive".
    Returns the clock event (cancel it to stop), or None when systemd asks for no pings.
    """
    from kivy.clock import Clock

    from kiosk import notify

    interval = notify.watchdog_interval()
    if interval is None:
        return None
    log.info("watchdog: pinging systemd every %.1f s from the UI loop", interval)
    return Clock.schedule_interval(lambda _dt: notify.watchdog(), interval)


def make_app(config: KioskConfig, build_kiosk: Callable[[], Kiosk]) -> object:
    """Build the App object (imports Kivy: call configure_window first)."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.screenmanager import ScreenManager

    from kiosk import notify
    from kiosk.fonts import FONT_PATH
    from kiosk.i18n import N_, I18n
    from kiosk.ui import theme
    from kiosk.ui.screens import AttractScreen, TopBar

    class KioskApp(App):
        title = "Zizhu 自助"
        kiosk: Kiosk | None = None
        controller: object | None = None
        _watchdog: ClockEvent | None = None

        def build(self) -> BoxLayout:
            self._watchdog = schedule_watchdog()
            theme.register_font(FONT_PATH)
            Window.clearcolor = theme.BG
            root = BoxLayout(orientation="vertical")
            self.top = TopBar(size_hint_y=None, height=theme.px(100))
            self.manager = ScreenManager()
            root.add_widget(self.top)
            root.add_widget(self.manager)
            self.manager.add_widget(AttractScreen(name="attract"))
            self._preliminary_attract([])
            Window.bind(on_flip=self._first_frame)
            return root

        def _preliminary_attract(self, problems: list[str]) -> None:
            """The attract screen as the config alone can draw it; touches wait for step two."""
            _ = I18n(config.kiosk.language).gettext
            self.manager.current_screen.render(
                _, config.kiosk.centre_label, config.kiosk.now(), [_(p) for p in problems],
                on_start=lambda: None)

        def _first_frame(self, *_: object) -> None:
            Window.unbind(on_flip=self._first_frame)
            notify.status("attract screen drawn; starting devices")
            Clock.schedule_once(self._start, 0)

        def _start(self, _dt: float) -> None:
            try:
                self.kiosk = build_kiosk()
            except Exception:
                # No READY=1: systemd restarts us; meanwhile the screen says what to do.
                log.exception("the kiosk could not start")
                self._preliminary_attract([N_("The kiosk could not start. Please ask staff "
                                              "for help.")])
                return
            from kiosk.ui.controller import Controller  # the journeys: after the first frame

            self.manager.clear_widgets()
            self.controller = Controller(self.kiosk, self.manager, self.top)
            Window.bind(on_touch_down=lambda *_: self.controller.touched())
            self.controller.show_attract()
            self.controller.render_top_bar()
            self._tick = Clock.schedule_interval(self.controller.tick, 0.5)
            if self.kiosk.metrics is None:
                from kiosk.metrics import start_metrics

                self.kiosk.metrics = start_metrics(self.kiosk)
            notify.ready("kiosk ready: taking touches")
            log.info("kiosk ready")

        def on_stop(self) -> None:
            notify.stopping()
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self.controller is not None:
                self._tick.cancel()
                self.controller.shutdown()

        def close_kiosk(self) -> None:
            if self.kiosk is not None:
                self.kiosk.close()

    return KioskApp()


OUT_OF_SERVICE_TEXT = (
    ("暂停服务", 120),
    ("Out of service", 64),
    ("请到人工窗口办理，或稍后再试。", 56),
    ("Please go to a staffed window, or try again later.", 40),
)


def run_out_of_service(config_path: Path | None = None, fullscreen: bool = True) -> int:
    """The static out-of-service screen (暂停服务) that zizhu-out-of-service.service shows when
    the kiosk keeps failing to start: no touch does anything, no device or back office is used.

    The config is read only for the kiosk id and the centre's name (so the technician who is
    called knows which terminal it is); a config that does not load, often the very reason the
    kiosk failed, leaves them out. Sends READY=1 once the screen is drawn.
    """
    from kiosk.config import load_config

    config: KioskConfig | None = None
    if config_path is not None:
        try:
            config = load_config(config_path)
        except Exception:  # the screen must come up, whatever is wrong with the config
            log.warning("out of service: the config %s does not load; showing the screen "
                        "without the kiosk's name", config_path)
    size = config.kiosk.screen_size if config is not None else (1920, 1080)
    configure_window(size, fullscreen)
    from kivy.app import App
    from kivy.core.window import Window
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.label import Label

    from kiosk import notify
    from kiosk.fonts import FONT_PATH
    from kiosk.ui import theme

    lines = [(text, size_px, theme.TEXT if i % 2 == 0 else theme.MUTED)
             for i, (text, size_px) in enumerate(OUT_OF_SERVICE_TEXT)]
    if config is not None:
        since = config.kiosk.now().strftime("%Y-%m-%d %H:%M")
        lines.append((f"{config.kiosk.centre_label} · {config.kiosk.id} · {since}", 32,
                      theme.MUTED))

    class OutOfServiceApp(App):
        title = "Zizhu 自助 — 暂停服务"

        def build(self) -> BoxLayout:
            self._watchdog = schedule_watchdog()
            theme.register_font(FONT_PATH)
            Window.clearcolor = theme.BG
            root = BoxLayout(orientation="vertical", padding=theme.px(80),
                             spacing=theme.px(24))
            for text, size_px, colour in lines:
                root.add_widget(Label(text=text, font_name=theme.FONT_NAME, color=colour,
                                      font_size=theme.px(size_px), halign="center"))
            Window.bind(on_flip=self._shown)
            return root

        def _shown(self, *_: object) -> None:
            Window.unbind(on_flip=self._shown)
            notify.ready("out of service screen shown")
            log.warning("kiosk out of service: static screen shown")

        def on_stop(self) -> None:
            notify.stopping()
            if self._watchdog is not None:
                self._watchdog.cancel()

    OutOfServiceApp().run()
    return 0
