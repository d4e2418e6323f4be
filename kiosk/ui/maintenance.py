"""Maintenance mode in the app: the hidden gesture, the screens, and the flow's steps run off
the UI thread (a PIN check takes a second by design, a card read waits for a card).

The citizens' controller needs a few lines::

    self.maintenance = MaintenanceController(kiosk, manager, on_exit=self.show_attract)
    self.maintenance.attach()          # the hidden corner, over the top bar's centre name
    ...
    if self.maintenance.active: return             # in show_attract / call_staff
    message = self.maintenance.out_of_service_message()   # for the attract screen
    ...
    self.maintenance.shutdown()        # in shutdown()

The gesture: five taps within three seconds in the screen's top-left corner (over the centre's
name on the top bar, where no button is). It opens the PIN pad whatever the screen; a session
in progress ends first, so no citizen's data is on screen behind the technician.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.screenmanager import ScreenManager
from kivy.uix.widget import Widget

from flows.maintenance import (
    STATE_FILE,
    KioskFacts,
    MaintenanceFlow,
    MaintenanceSettings,
    MaintenanceStateFile,
    MaintenanceView,
    Panel,
    Step,
)
from kiosk.i18n import N_
from kiosk.metrics import activity_from_audit, app_version, outbox_report
from kiosk.privacy import mask_text
from kiosk.session import EndReason
from kiosk.ui import theme
from kiosk.ui.maintenance_screens import (
    MaintenanceMenuScreen,
    MaintenanceMessageScreen,
    MenuActions,
    PinPadScreen,
)

if TYPE_CHECKING:
    from kivy.clock import ClockEvent

    from kiosk.app import Kiosk

log = logging.getLogger(__name__)

GESTURE_TAPS = 5
GESTURE_WITHIN_S = 3.0
CORNER_SIZE = 140  # design pixels (theme.px): a fingertip's target, not a button's
DEVICE_REFRESH_TICKS = 2  # the device list is read again every other second

# What the attract screen can say while a technician has the kiosk out of service (msgids:
# stored as they are, translated where shown).
OUT_OF_SERVICE_PRESETS: tuple[str, ...] = (
    N_("Under maintenance"),
    N_("Printer being repaired"),
    N_("Software update in progress"),
    N_("Please use the staffed windows today"),
)

SCREENS = ("maint_pin", "maint_message", "maint_menu")


class TapGesture:
    """``taps`` taps within ``within_s`` seconds; a tap too late starts the count again."""

    def __init__(self, taps: int = GESTURE_TAPS, within_s: float = GESTURE_WITHIN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.taps, self.within_s, self._clock = taps, within_s, clock
        self._times: deque[float] = deque(maxlen=taps)

    def tap(self) -> bool:
        now = self._clock()
        self._times.append(now)
        if len(self._times) == self.taps and now - self._times[0] <= self.within_s:
            self._times.clear()
            return True
        return False


class HiddenCorner(Widget):
    """An invisible square at the window's top-left corner. It never keeps a touch, so what
    lies under it works as before."""

    def __init__(self, on_gesture: Callable[[], None], gesture: TapGesture | None = None,
                 **kwargs: object) -> None:
        super().__init__(size_hint=(None, None), **kwargs)
        self.on_gesture = on_gesture
        self.gesture = gesture or TapGesture()
        self.ui_id = "maintenance_corner"

    def place(self, *_: object) -> None:
        side = theme.px(CORNER_SIZE)
        self.size = (side, side)
        self.pos = (0, Window.height - side)

    def on_touch_down(self, touch: Any) -> bool:
        if self.collide_point(*touch.pos) and self.gesture.tap():
            self.on_gesture()
        return False


def maintenance_flow(kiosk: Kiosk, restart: Callable[[], None],
                     settings: MaintenanceSettings | None = None) -> MaintenanceFlow:
    """The flow with this kiosk's ports (could live in the composition root, kiosk/app.py)."""
    config = kiosk.config
    data_dir = config.kiosk.data_dir
    maintenance = config.maintenance
    return MaintenanceFlow(
        pin_check=maintenance.verify_pin if maintenance.pin_hash else None,
        state=MaintenanceStateFile(data_dir / STATE_FILE),
        audit=kiosk.audit, devices=kiosk.devices,
        facts=KioskFacts(config.kiosk.id, config.kiosk.centre_label, config.backoffice.url,
                         app_version()),
        tally=lambda since: activity_from_audit(data_dir / "kiosk.db", since),
        outbox=lambda: outbox_report(kiosk),
        backoffice_health=kiosk.backoffice.health,
        mask=mask_text, restart=restart,
        settings=settings or MaintenanceSettings(print_timeout_s=config.timeouts.print_s),
        held=kiosk.held_prints, now=kiosk.now)


def stop_app() -> None:
    """End the app cleanly on the UI thread; systemd (Restart=always) starts it again. Under
    ``make run`` the kiosk simply stops."""
    from kivy.app import App

    def stop(_dt: float) -> None:
        app = App.get_running_app()
        if app is not None:
            app.stop()

    Clock.schedule_once(stop)


class MaintenanceController:
    """Adds the maintenance screens to ``manager``; ``on_exit`` is called when maintenance
    closes (exit, idle timeout, restart) and should show the attract screen."""

    def __init__(self, kiosk: Kiosk, manager: ScreenManager, on_exit: Callable[[], None], *,
                 flow: MaintenanceFlow | None = None,
                 restart: Callable[[], None] = stop_app) -> None:
        self.kiosk = kiosk
        self.manager = manager
        self.on_exit = on_exit
        self._ = kiosk.i18n.gettext
        self.flow = flow or maintenance_flow(kiosk, restart)
        self.screens: dict[str, Any] = {
            "maint_pin": PinPadScreen(name="maint_pin"),
            "maint_message": MaintenanceMessageScreen(name="maint_message"),
            "maint_menu": MaintenanceMenuScreen(name="maint_menu"),
        }
        for screen in self.screens.values():
            manager.add_widget(screen)
        # Steps (PIN, panels, service) apart from self-tests: a card read waiting for a card
        # must not keep the technician from switching panels.
        self._steps = ThreadPoolExecutor(1, thread_name_prefix="maintenance")
        self._tests = ThreadPoolExecutor(1, thread_name_prefix="self-test")
        self._active = False
        self._ticker: ClockEvent | None = None
        self._ticks = 0
        self._corner: HiddenCorner | None = None
        self._shown: MaintenanceView | None = None
        self.flow.on_change(lambda _view: Clock.schedule_once(lambda _dt: self._render()))

    @property
    def active(self) -> bool:
        """True from the gesture until maintenance closes."""
        return self._active

    def out_of_service_message(self) -> str | None:
        """The technician's message (a msgid: show it through gettext) while the kiosk is out
        of service, else None."""
        return self.flow.out_of_service_message()

    # -- the gesture --------------------------------------------------------------------------
    def attach(self, window: Any = None) -> HiddenCorner:
        """Put the hidden corner over ``window`` (Kivy's Window by default)."""
        target = window if window is not None else Window
        if self._corner is None:
            self._corner = HiddenCorner(self.open)
            self._corner.place()
            Window.bind(size=self._corner.place)
            target.add_widget(self._corner)
        return self._corner

    def detach(self) -> None:
        if self._corner is not None:
            Window.unbind(size=self._corner.place)
            if self._corner.parent is not None:
                self._corner.parent.remove_widget(self._corner)
            self._corner = None

    # -- open and close ------------------------------------------------------------------------
    def open(self) -> None:
        if self._active:
            return
        self._active = True
        if self.kiosk.sessions.current is not None:
            # The citizen's screen and data go before the technician's come.
            self.kiosk.sessions.end(EndReason.CANCELLED)
        self._shown = None
        Window.bind(on_touch_down=self._touched)
        self._ticks = 0
        self._ticker = Clock.schedule_interval(self._tick, 1.0)
        self.flow.open()

    def _touched(self, *_: object) -> None:
        self.flow.touch()

    def _tick(self, _dt: float) -> None:
        self.flow.tick()
        self._ticks += 1
        view = self.flow.view
        if (self._ticks % DEVICE_REFRESH_TICKS == 0 and view.step is Step.MENU
                and view.panel is Panel.DEVICES and view.testing is None):
            self._steps.submit(self._guarded(self.flow.refresh_devices))

    def _finish(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        Window.unbind(on_touch_down=self._touched)
        self.screens["maint_pin"].clear()
        self.on_exit()

    def shutdown(self) -> None:
        self.flow.close("shutdown")
        self.detach()
        self._steps.shutdown(wait=False, cancel_futures=True)
        self._tests.shutdown(wait=False, cancel_futures=True)

    # -- running steps -------------------------------------------------------------------------
    def _guarded(self, step: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                step()
            except Exception:  # a bug in a step must leave the technician a way out
                log.exception("maintenance step failed")

        return run

    def _run(self, step: Callable[[], object]) -> None:
        self.flow.touch()
        self._steps.submit(self._guarded(step))

    def _submit_pin(self, pin: str) -> None:
        self._run(lambda: self.flow.enter_pin(pin))

    def _actions(self) -> MenuActions:
        flow = self.flow
        return MenuActions(
            panel=lambda panel: self._run(lambda: flow.show_panel(panel)),
            self_test=lambda name: self._tests.submit(self._guarded(
                lambda: flow.self_test(name))),
            stop_test=flow.cancel,  # the test ends as canceled, shown as its result
            # A reprint prints: with the self-tests, so the menu stays free while it runs.
            reprint_held=lambda reference: self._tests.submit(self._guarded(
                lambda: flow.reprint_held(reference))),
            discard_held=lambda reference: self._run(lambda: flow.discard_held(reference)),
            out_of_service=lambda message: self._run(lambda: flow.take_out_of_service(message)),
            in_service=lambda: self._run(flow.back_in_service),
            restart=lambda: self._run(flow.restart),
            exit=lambda: flow.close("exit"),
        )

    # -- rendering -----------------------------------------------------------------------------
    def _show(self, name: str) -> None:
        current = self.manager.current
        if current != name and current in self.screens:
            self.screens[current].hidden()
        self.manager.current = name

    def _render(self) -> None:
        view = self.flow.view
        if view.step is Step.CLOSED:
            self._finish()
            return
        if not self._active or view == self._shown:
            return
        self._shown = view
        _ = self._
        if view.step in (Step.PIN, Step.CHECKING):
            if view.step is Step.CHECKING:
                message, warning = _("Checking…"), False
            elif view.attempts_left is not None:
                message, warning = _("Wrong PIN. {n} more tries before the pad locks.").format(
                    n=view.attempts_left), True
            else:
                message, warning = _("Enter the maintenance PIN"), False
            self.screens["maint_pin"].render(_, message, warning, view.step is Step.CHECKING,
                                             self._submit_pin, lambda: self.flow.close("exit"))
            self._show("maint_pin")
        elif view.step is Step.LOCKED:
            until = f"{view.locked_until:%H:%M}" if view.locked_until else ""
            self.screens["maint_message"].render(
                _, _("Maintenance is locked"),
                _("Too many wrong PINs. Try again after {time}.").format(time=until),
                lambda: self.flow.close("exit"))
            self._show("maint_message")
        elif view.step is Step.NOT_CONFIGURED:
            self.screens["maint_message"].render(
                _, _("Maintenance mode is not set up"),
                _("No maintenance PIN was provisioned on this kiosk; `kiosk provision` sets "
                  "one."), lambda: self.flow.close("exit"))
            self._show("maint_message")
        elif view.step is Step.MENU:
            self.screens["maint_menu"].render(_, view, self.kiosk.config.kiosk.id,
                                              self.kiosk.now(), OUT_OF_SERVICE_PRESETS,
                                              self._actions())
            self._show("maint_menu")
