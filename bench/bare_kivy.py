"""The baseline for bench/startup.py: the least a Kivy program can do, one window with a Label.

It reports READY=1 over $NOTIFY_SOCKET on its first buffer swap, exactly as the kiosk does
for its attract screen, so both are timed by the same listener to the same event.
"""

from __future__ import annotations

import os

WIDTH, HEIGHT = 1920, 1080  # the kiosk's landscape screen (kiosk.config.SCREEN_SIZES)


def main() -> None:
    # Kivy reads its command line and opens its window at import time; both must be settled
    # before the first kivy import, as kiosk.ui.app.configure_window does for the kiosk.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    Config.set("graphics", "width", str(WIDTH))
    Config.set("graphics", "height", str(HEIGHT))
    Config.set("graphics", "fullscreen", "0")

    import sdnotify
    from kivy.app import App
    from kivy.core.window import Window
    from kivy.uix.label import Label

    notifier = sdnotify.SystemdNotifier()

    class BareApp(App):
        title = "bare Kivy window"

        def build(self) -> Label:
            Window.bind(on_flip=self._first_frame)
            return Label(text="bare Kivy window")

        def _first_frame(self, *_: object) -> None:
            Window.unbind(on_flip=self._first_frame)
            notifier.notify("READY=1")

    BareApp().run()


if __name__ == "__main__":
    main()
