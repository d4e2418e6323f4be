"""The kiosk's real Kivy app in a process of its own, for the watchdog tests: Kivy allows one
window per process, and a test must be able to freeze the main loop of the app it watches.
(The out-of-service screen has nothing to freeze: its tests run `kiosk out-of-service`.)

    python tests/systemd/kivy_child.py kiosk CONFIG

Lines on stdin steer it, read from the Kivy main loop itself: ``block SECONDS`` blocks that
loop (a frozen screen) between two STATUS= markers, ``stop`` ends the app. Runs offscreen
(SDL_VIDEODRIVER=offscreen) or under cage (x11 through Xwayland).
"""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, also as "nobody"

BLOCKED = "STATUS=test: main loop blocked"
FREED = "STATUS=test: main loop free"


def _control(_dt: float) -> None:
    from kivy.app import App

    from kiosk import notify

    while select.select([sys.stdin], [], [], 0)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        command, *rest = line.split() or [""]
        if command == "block":
            notify.status(BLOCKED.removeprefix("STATUS="))
            time.sleep(float(rest[0]))
            notify.status(FREED.removeprefix("STATUS="))
        elif command == "stop":
            App.get_running_app().stop()


def main(mode: str, config_path: Path) -> int:
    if mode != "kiosk":
        raise SystemExit(f"usage: kivy_child.py kiosk CONFIG (not {mode!r})")
    from kiosk import notify

    notify.extend_watchdog_for_startup()  # before Kivy, as `kiosk run` does
    from kivy.clock import Clock

    Clock.schedule_interval(_control, 0.05)
    from kiosk.config import load_config
    from kiosk.ui.app import configure_window

    config = load_config(config_path)
    configure_window((640, 360), fullscreen=False)
    from kiosk.app import build_kiosk
    from kiosk.ui.app import make_app

    app = make_app(config, lambda: build_kiosk(config))
    try:
        app.run()  # type: ignore[attr-defined]
    finally:
        app.close_kiosk()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
