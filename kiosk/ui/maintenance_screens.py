"""The screens of maintenance mode (维护模式): the PIN pad, a message (locked, not set up), and
the menu with its panels. They draw a ``MaintenanceView`` and forward taps; what a tap does is
the flow's business (flows/maintenance.py), where to go is the controller's.

Nothing personal is drawn: the flow hands over masked numbers and sizes only, and a document
kept for staff by its reference, kind and title. The PIN pad shows
dots, never digits, and forgets what was typed once it is submitted or left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from devices.contract import CameraState, DeviceState, DoorState, PaperState
from devices.printer import Media
from flows.maintenance import (
    CounterReport,
    Counters,
    DeviceLine,
    HeldAction,
    HeldLine,
    HeldOutcome,
    HeldReport,
    MaintenanceView,
    NetworkReport,
    OutboxReport,
    Panel,
    SelfTest,
    SelfTestResult,
    SoftwareReport,
)
from kiosk.i18n import N_
from kiosk.services import DEVICE_TITLES
from kiosk.ui import theme
from kiosk.ui.screens import KioskScreen, Tr
from kiosk.ui.widgets import KButton, Text
from kiosk.ui.widgets import Panel as Card

PIN_MAX_DIGITS = 12  # kiosk provision allows 6 to 12

PANEL_TITLES: dict[Panel, str] = {
    Panel.DEVICES: N_("Devices"),
    Panel.COUNTERS: N_("Counters"),
    Panel.OUTBOX: N_("Outbox"),
    Panel.HELD: N_("Kept for staff"),
    Panel.NETWORK: N_("Network"),
    Panel.SOFTWARE: N_("Software"),
    Panel.LOG: N_("Recent log"),
    Panel.SERVICE: N_("Service status"),
}

STATE_TEXTS: dict[DeviceState, str] = {
    DeviceState.STARTING: N_("Starting"),
    DeviceState.ONLINE: N_("Working"),
    DeviceState.OFFLINE: N_("Offline"),
    DeviceState.POWER_OFF: N_("Powered off"),
    DeviceState.NO_DEVICE: N_("Not connected"),
    DeviceState.HARDWARE_ERROR: N_("Hardware fault"),
    DeviceState.USER_ERROR: N_("Needs attention"),
    DeviceState.DEVICE_BUSY: N_("Busy"),
}

PAPER_TEXTS: dict[PaperState, str] = {
    PaperState.FULL: N_("paper full"),
    PaperState.LOW: N_("paper low"),
    PaperState.OUT: N_("paper out"),
    PaperState.JAMMED: N_("paper jammed"),
    PaperState.UNKNOWN: N_("paper level unknown"),
}

TEST_BUTTONS: dict[SelfTest, str] = {
    SelfTest.PRINT_PAGE: N_("Print a test page"),
    SelfTest.READ_CARD: N_("Read a card"),
    SelfTest.CAPTURE_FRAME: N_("Take a picture"),
    SelfTest.SCAN_CODE: N_("Scan a code"),
}

TESTING_TEXTS: dict[SelfTest, str] = {
    SelfTest.PRINT_PAGE: N_("Printing a test page…"),
    SelfTest.READ_CARD: N_("Place a card on the reader…"),
    SelfTest.CAPTURE_FRAME: N_("Taking a picture…"),
    SelfTest.SCAN_CODE: N_("Show a QR code to the scanner…"),
    SelfTest.NONE: N_("Testing…"),
}

DOCUMENT_TITLES: dict[str, str] = {
    "residentId": N_("Resident ID card"),
    "passport": N_("Passport"),
    "travelPermit": N_("Travel permit"),
}


# Document kinds (assets/print/<kind>.toml, flows' PdfDocument kinds) as staff call them.
KIND_TEXTS: dict[str, str] = {
    "certificate": N_("Certificate"),
    "progress_query": N_("Progress report"),
    "application_receipt": N_("Application receipt"),
    "queue_ticket": N_("Queue ticket"),
    "one_time_notice": N_("One-time notice"),
}

MEDIA_TEXTS: dict[Media, str] = {
    Media.A4: N_("A4"),
    Media.ROLL_80MM: N_("80 mm roll"),
}


@dataclass(frozen=True)
class MenuActions:
    """What the menu's taps call (the controller runs them off the UI thread)."""

    panel: Callable[[Panel], None]
    self_test: Callable[[str], None]
    stop_test: Callable[[], None]
    reprint_held: Callable[[str], None]
    discard_held: Callable[[str], None]
    out_of_service: Callable[[str], None]
    in_service: Callable[[], None]
    restart: Callable[[], None]
    exit: Callable[[], None]


def _button(ui_id: str, label: str, callback: Callable[[], None], *,
            colour: tuple = theme.BLUE, size: float = 36, disabled: bool = False,
            **kwargs: object) -> KButton:
    button = KButton(label, callback, bg=colour, size=size, ui_id=ui_id, **kwargs)
    button.disabled = disabled  # after construction: KButton greys itself on the change
    return button


def _enum_text(table: dict, enum_type: type, value: str) -> str | None:
    try:
        return table[enum_type(value)]
    except (ValueError, KeyError):
        return None


class PinPadScreen(KioskScreen):
    """The maintenance PIN, typed on a keypad and shown as dots."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._digits = ""

    def render(self, _: Tr, message: str, warning: bool, busy: bool,
               on_submit: Callable[[str], None], on_cancel: Callable[[], None]) -> None:
        self._ = _
        self._message, self._warning, self._busy = message, warning, busy
        self._on_submit, self._on_cancel = on_submit, on_cancel
        self._draw()

    def clear(self) -> None:
        self._digits = ""

    def hidden(self) -> None:
        self.clear()  # a PIN half typed does not wait for the next person at the screen

    def _draw(self) -> None:
        _ = self._
        body = self._reset()
        body.add_widget(Text(_("Maintenance"), size=64, bold=True, size_hint_y=None,
                             height=theme.px(100)))
        body.add_widget(Text(self._message, size=40,
                             color=theme.ORANGE if self._warning else theme.MUTED,
                             size_hint_y=None, height=theme.px(70)))
        dots = Text("●  " * len(self._digits) or " ", size=64, color=theme.BLUE,
                    size_hint_y=None, height=theme.px(100))
        dots.ui_id = "pin_dots"
        body.add_widget(dots)
        pad = GridLayout(cols=3, spacing=theme.px(16), size_hint=(None, 1),
                         width=theme.px(720), pos_hint={"center_x": 0.5})
        keys = [*"123456789"]
        for key in keys:
            pad.add_widget(self._key(key))
        pad.add_widget(_button("pin:delete", _("Delete"), self._backspace, colour=theme.MUTED,
                               disabled=self._busy))
        pad.add_widget(self._key("0"))
        pad.add_widget(_button("pin:ok", _("OK"), self._submit, colour=theme.GREEN,
                               disabled=self._busy or not self._digits))
        body.add_widget(pad)
        body.add_widget(self._buttons([_button("maint:cancel", _("Cancel"), self._cancel,
                                               colour=theme.MUTED)]))

    def _key(self, key: str) -> KButton:
        return _button(f"pin:{key}", key, lambda: self._type(key), colour=theme.BLUE_DARK,
                       size=56, disabled=self._busy)

    def _type(self, key: str) -> None:
        if len(self._digits) < PIN_MAX_DIGITS:
            self._digits += key
        self._draw()

    def _backspace(self) -> None:
        self._digits = self._digits[:-1]
        self._draw()

    def _submit(self) -> None:
        pin, self._digits = self._digits, ""
        self._on_submit(pin)

    def _cancel(self) -> None:
        self.clear()
        self._on_cancel()


class MaintenanceMessageScreen(KioskScreen):
    """Locked after wrong PINs, or no PIN provisioned: a message and the way back."""

    def render(self, _: Tr, title: str, message: str, on_back: Callable[[], None]) -> None:
        body = self._reset()
        body.add_widget(Widget(size_hint_y=0.3))
        body.add_widget(Text(title, size=64, bold=True, color=theme.ORANGE, size_hint_y=None,
                             height=theme.px(110)))
        body.add_widget(Text(message, size=44))
        body.add_widget(self._buttons([_button("maint:cancel", _("Back"), on_back,
                                               colour=theme.MUTED)]))


class MaintenanceMenuScreen(KioskScreen):
    """The menu: panels on the left, the chosen panel on the right."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        # The kept document whose Discard was tapped once: a second tap discards it (a
        # certificate discarded by a slip of the finger is gone for good).
        self._confirm_discard: str | None = None
        self._drawn: tuple | None = None

    def hidden(self) -> None:
        self._confirm_discard = None

    def render(self, _: Tr, view: MaintenanceView, kiosk_id: str, now: datetime,
               presets: Sequence[str], actions: MenuActions) -> None:
        self._ = _
        self._actions = actions
        self._drawn = (_, view, kiosk_id, now, presets, actions)
        if view.panel is not Panel.HELD or view.reprinting is not None or view.held is None \
                or self._confirm_discard not in {d.reference for d in view.held.documents}:
            self._confirm_discard = None
        body = self._reset()
        head = BoxLayout(orientation="horizontal", size_hint_y=None, height=theme.px(110),
                         spacing=theme.px(24))
        head.add_widget(Text(_("Maintenance — kiosk {kiosk}").format(kiosk=kiosk_id), size=52,
                             bold=True, halign="left", size_hint_x=0.6))
        status = (_("Out of service: {message}").format(message=_(view.out_of_service))
                  if view.out_of_service else _("In service"))
        head.add_widget(Text(status, size=34, size_hint_x=0.25,
                             color=theme.ORANGE if view.out_of_service else theme.GREEN))
        head.add_widget(_button("maint:exit", _("Exit"), actions.exit, colour=theme.MUTED,
                                size_hint_x=0.15))
        body.add_widget(head)
        row = BoxLayout(orientation="horizontal", spacing=theme.px(24))
        nav = BoxLayout(orientation="vertical", spacing=theme.px(12), size_hint_x=0.2)
        for panel in Panel:
            nav.add_widget(_button(f"panel:{panel}", _(PANEL_TITLES[panel]),
                                   lambda p=panel: actions.panel(p), size=34,
                                   colour=theme.BLUE if panel is view.panel else theme.MUTED))
        row.add_widget(nav)
        scroller = ScrollView(do_scroll_x=False, size_hint_x=0.8)
        content = BoxLayout(orientation="vertical", spacing=theme.px(16), size_hint_y=None,
                            padding=(0, 0, theme.px(8), 0))
        content.bind(minimum_height=content.setter("height"))
        self._content = content
        draw = {
            Panel.DEVICES: lambda: self._devices(view),
            Panel.COUNTERS: lambda: self._counters(view.counters),
            Panel.OUTBOX: lambda: self._outbox(view.outbox, now),
            Panel.HELD: lambda: self._held(view, now),
            Panel.NETWORK: lambda: self._network(view.network),
            Panel.SOFTWARE: lambda: self._software(view.software),
            Panel.LOG: lambda: self._log(view.log_lines, view.log_source),
            Panel.SERVICE: lambda: self._service(view.out_of_service, presets),
        }
        draw[view.panel]()
        scroller.add_widget(content)
        row.add_widget(scroller)
        body.add_widget(row)

    # -- building blocks ------------------------------------------------------------------
    def _line(self, text: str, size: float = 34, colour: tuple = theme.TEXT,
              bold: bool = False, height: float = 56) -> Text:
        label = Text(text, size=size, color=colour, halign="left", bold=bold, size_hint_y=None,
                     height=theme.px(height))
        self._content.add_widget(label)
        return label

    def _table(self, rows: Sequence[tuple[str, str]], widths: tuple[float, float] = (0.4, 0.6),
               ) -> None:
        line_height, padding = theme.px(54), theme.px(20)
        card = Card(orientation="vertical", radius=theme.px(16), padding=padding,
                    size_hint_y=None, height=len(rows) * line_height + 2 * padding)
        for label, value in rows:
            line = BoxLayout(orientation="horizontal", spacing=theme.px(24), size_hint_y=None,
                             height=line_height)
            line.add_widget(Text(label, size=32, color=theme.MUTED, halign="left",
                                 size_hint_x=widths[0]))
            line.add_widget(Text(value, size=34, halign="left", size_hint_x=widths[1]))
            card.add_widget(line)
        self._content.add_widget(card)

    # -- panels -----------------------------------------------------------------------------
    def _devices(self, view: MaintenanceView) -> None:
        _ = self._
        if not view.devices:
            self._line(_("No devices are configured."))
        for device in view.devices:
            self._content.add_widget(self._device_card(device, view.testing,
                                                       view.results.get(device.name)))

    def _device_card(self, device: DeviceLine, testing: str | None,
                     result: SelfTestResult | None) -> Card:
        _ = self._
        card = Card(orientation="horizontal", radius=theme.px(16), padding=theme.px(20),
                    spacing=theme.px(20), size_hint_y=None, height=theme.px(230))
        card.ui_id = f"device:{device.name}"
        words = BoxLayout(orientation="vertical", size_hint_x=0.72)
        title = _(DEVICE_TITLES.get(device.name, device.name))
        words.add_widget(Text(f"{title}  ({device.name}, {device.driver})", size=36, bold=True,
                              halign="left"))
        state = _enum_text(STATE_TEXTS, DeviceState, device.state)
        extras = [_(state) if state else device.state]
        paper = _enum_text(PAPER_TEXTS, PaperState, device.paper) if device.paper else None
        if paper:
            extras.append(_(paper))
        if device.door == DoorState.OPEN:
            extras.append(_("cover open"))
        if any(s == CameraState.INOPERATIVE for _n, s in device.cameras):
            extras.append(_("camera not working"))
        state_text = Text("  ·  ".join(extras), size=34, halign="left",
                          color=theme.GREEN if device.usable else theme.ORANGE)
        state_text.ui_id = f"state:{device.name}"
        words.add_widget(state_text)
        if device.last_error:
            when = f"{device.last_error_at:%m-%d %H:%M}" if device.last_error_at else ""
            words.add_widget(Text(_("Last error: {error} {time}").format(
                error=device.last_error, time=when).strip(), size=30, color=theme.MUTED,
                halign="left"))
        if testing == device.name:
            words.add_widget(Text(_(TESTING_TEXTS[device.test]), size=32, color=theme.BLUE,
                                  halign="left"))
        elif result is not None:
            outcome = Text(self._result_text(result), size=32, halign="left",
                           color=theme.GREEN if result.ok else theme.ORANGE)
            outcome.ui_id = f"result:{device.name}"
            words.add_widget(outcome)
        card.add_widget(words)
        if testing == device.name:
            card.add_widget(_button(f"stop:{device.name}", _("Stop the test"),
                                    self._actions.stop_test, colour=theme.MUTED, size=32,
                                    size_hint_x=0.28))
        elif device.test is not SelfTest.NONE:
            card.add_widget(_button(f"test:{device.name}", _(TEST_BUTTONS[device.test]),
                                    lambda: self._actions.self_test(device.name), size=32,
                                    size_hint_x=0.28, disabled=testing is not None))
        return card

    def _result_text(self, result: SelfTestResult) -> str:
        _ = self._
        d = result.detail
        if not result.ok:
            return _("Test failed: {error}").format(error=result.error_code or result.completion)
        if result.test is SelfTest.PRINT_PAGE:
            return _("Test page printed: {pages} page(s), check code {check}").format(
                pages=d.get("pages", 0), check=d.get("check", ""))
        if result.test is SelfTest.READ_CARD:
            if d.get("chip_answered"):
                return _("The chip answered; reading it needs the document's MRZ")
            document = str(d.get("document_type", ""))
            return _("Card read: {document} {number}").format(
                document=_(DOCUMENT_TITLES.get(document, document)), number=d.get("number", ""))
        if result.test is SelfTest.CAPTURE_FRAME:
            return _("Picture taken: {width} × {height}").format(
                width=d.get("width", 0), height=d.get("height", 0))
        if result.test is SelfTest.SCAN_CODE:
            return _("Code read: {characters} characters").format(
                characters=d.get("characters", 0))
        return _("No self-test for this device")

    def _counters(self, report: CounterReport | None) -> None:
        _ = self._
        if report is None:
            self._line(_("No figures yet."))
            return
        today, total = _("Today"), _("In total")
        rows: list[tuple[str, str]] = [(_("Counted"), f"{today}    /    {total}")]

        def figure(name: str, pick: Callable[[Counters], int]) -> tuple[str, str]:
            return name, f"{pick(report.today)}    /    {pick(report.total)}"

        rows += [figure(_("Sessions"), lambda c: c.sessions),
                 figure(_("Queue tickets"), lambda c: c.tickets),
                 figure(_("Receipts"), lambda c: c.receipts),
                 figure(_("Certificates"), lambda c: c.certificates),
                 figure(_("Pages printed"), lambda c: c.pages)]
        self._table(rows)

    def _outbox(self, report: OutboxReport | None, now: datetime) -> None:
        _ = self._
        if report is None:
            self._line(_("This kiosk has no outbox."))
            return
        delivered = report.last_delivery_at
        rows = [(_("Waiting to be sent"), str(report.pending)),
                (_("Set aside for staff"), str(report.quarantined)),
                (_("Oldest waiting"), _duration(report.oldest_pending_age_s) or _("none")),
                (_("Last delivery"), f"{delivered.astimezone(now.tzinfo):%Y-%m-%d %H:%M}"
                 if delivered else _("never"))]
        if report.running is not None:
            rows.append((_("Delivery"), _("running") if report.running else _("stopped")))
        if report.last_error:
            rows.append((_("Last error"), report.last_error))
        self._table(rows)

    def _held(self, view: MaintenanceView, now: datetime) -> None:
        _ = self._
        report: HeldReport | None = view.held
        if report is None:
            self._line(_("Looking for kept documents…"), colour=theme.MUTED)
            return
        if not report.kept:
            self._line(_("This kiosk keeps no documents for staff."))
            return
        if report.problem:
            self._line(_("The kept documents cannot be read: {problem}").format(
                problem=report.problem), colour=theme.ORANGE)
        self._line(_("A citizen's print that failed twice waits here; the citizen was given "
                     "its reference."), size=30, colour=theme.MUTED)
        waiting = {d.reference for d in report.documents}
        done = [o for o in view.held_results.values() if o.reference not in waiting]
        for outcome in sorted(done, key=lambda o: o.at or now, reverse=True):
            label = self._line(self._held_outcome_text(outcome), size=32,
                               colour=theme.GREEN if outcome.ok else theme.ORANGE)
            label.ui_id = f"held:done:{outcome.reference}"
        if not report.documents and not report.problem:
            self._line(_("No documents are waiting for staff."))
        busy = view.reprinting is not None or view.testing is not None
        for document in report.documents:
            self._content.add_widget(self._held_card(
                document, view.reprinting == document.reference, busy,
                view.held_results.get(document.reference), now))

    def _held_card(self, document: HeldLine, printing: bool, busy: bool,
                   result: HeldOutcome | None, now: datetime) -> Card:
        _ = self._
        ref = document.reference
        card = Card(orientation="horizontal", radius=theme.px(16), padding=theme.px(20),
                    spacing=theme.px(20), size_hint_y=None, height=theme.px(270))
        card.ui_id = f"held:{ref}"
        words = BoxLayout(orientation="vertical", size_hint_x=0.68)
        kind = _(KIND_TEXTS[document.kind]) if document.kind in KIND_TEXTS else document.kind
        # 办件进度 is its own kind's name: say it once.
        name = document.title if kind == document.title else f"{document.title}  ·  {kind}"
        words.add_widget(Text(f"{name}  ·  {ref}", size=36, bold=True, halign="left"))
        tz = now.tzinfo
        words.add_widget(Text(_("Kept since {time}; the print failed: {error}").format(
            time=f"{document.held_at.astimezone(tz):%m-%d %H:%M}", error=document.reason),
            size=30, halign="left"))
        words.add_widget(Text(_("Discarded on its own at {time}").format(
            time=f"{document.expires_at.astimezone(tz):%m-%d %H:%M}"), size=30,
            color=theme.MUTED, halign="left"))
        paper = _enum_text(MEDIA_TEXTS, Media, document.media)
        paper_text = _(paper) if paper else document.media
        if document.printer is None:
            where = Text(_("No printer here takes {paper} paper").format(paper=paper_text),
                         size=30, color=theme.ORANGE, halign="left")
        else:
            printer = _(DEVICE_TITLES.get(document.printer, document.printer))
            where = Text(_("Prints on the {printer} ({device}, {paper})").format(
                printer=printer, device=document.printer, paper=paper_text), size=30,
                color=theme.MUTED, halign="left")
        words.add_widget(where)
        if printing:
            words.add_widget(Text(_("Printing…"), size=32, color=theme.BLUE, halign="left"))
        elif result is not None and not result.ok:
            failed = Text(self._held_outcome_text(result), size=32, color=theme.ORANGE,
                          halign="left")
            failed.ui_id = f"held:result:{ref}"
            words.add_widget(failed)
        card.add_widget(words)
        buttons = BoxLayout(orientation="vertical", spacing=theme.px(12), size_hint_x=0.32)
        buttons.add_widget(_button(f"held:reprint:{ref}", _("Reprint"),
                                   lambda: self._actions.reprint_held(ref), size=32,
                                   disabled=busy or document.printer is None))
        confirming = self._confirm_discard == ref
        buttons.add_widget(_button(f"held:discard:{ref}",
                                   _("Tap again to discard") if confirming else _("Discard"),
                                   lambda: self._discard(ref), size=30, disabled=busy,
                                   colour=theme.ORANGE if confirming else theme.MUTED))
        card.add_widget(buttons)
        return card

    def _discard(self, reference: str) -> None:
        if self._confirm_discard == reference:
            self._confirm_discard = None
            self._actions.discard_held(reference)
            return
        self._confirm_discard = reference
        if self._drawn is not None:
            self.render(*self._drawn)

    def _held_outcome_text(self, outcome: HeldOutcome) -> str:
        _ = self._
        name = f"{outcome.title}  ({outcome.reference})" if outcome.title else outcome.reference
        if outcome.action is HeldAction.DISCARD:
            if outcome.ok:
                return _("Discarded: {document}").format(document=name)
            return _("Not discarded: {document}: {error}").format(document=name,
                                                                  error=outcome.error)
        if not outcome.ok:
            return _("Reprint of {document} failed: {error}").format(
                document=name, error=outcome.error or outcome.completion)
        if outcome.duplicate:
            return _("{document} had printed already; nothing new came out").format(
                document=name)
        done = _("Reprinted: {document}, {pages} page(s)").format(document=name,
                                                                  pages=outcome.pages)
        if outcome.kind == "certificate":
            # The citizen is not at the kiosk to confirm collection: staff do, at the desk.
            done += " " + _("Hand it over at the desk after checking the ID, then mark it "
                            "handed over (窗口发证) in the back office; its number is on the "
                            "certificate.")
        return done

    def _network(self, report: NetworkReport | None) -> None:
        _ = self._
        if report is None:
            return
        rows = [(_("Back office"), report.backoffice_url),
                (_("Back office answers"), _("yes") if report.backoffice_ok else _("no")),
                (_("Default route"), _("yes") if report.default_route else _("no"))]
        for interface in report.interfaces:
            link = _("up") if interface.up else _("down")
            rows.append((f"{interface.name} ({link})", ", ".join(interface.addresses) or "—"))
        if not report.interfaces:
            rows.append((_("Interfaces"), _("none")))
        self._table(rows, (0.35, 0.65))
        check = _button("maint:network_again", _("Check again"),
                        lambda: self._actions.panel(Panel.NETWORK), size=32,
                        size_hint=(None, None), width=theme.px(360), height=theme.px(100))
        self._content.add_widget(check)

    def _software(self, report: SoftwareReport | None) -> None:
        _ = self._
        if report is None:
            return
        rows = [(_("Software version"), report.version), ("Python", report.python)]
        self._table(rows)
        if report.manifest is None:
            note = (_("Image manifest unreadable: {problem}").format(
                problem=report.manifest_problem) if report.manifest_problem
                else _("Not an appliance image (no {path})").format(path=report.manifest_path))
            self._line(note, colour=theme.MUTED)
        else:
            self._line(_("Image manifest"), bold=True)
            self._table(list(report.manifest), (0.45, 0.55))

    def _log(self, lines: Sequence[str], source: str) -> None:
        _ = self._
        self._line(_("From the system journal") if source == "journal"
                   else _("From the audit log (the system journal cannot be read here)"),
                   colour=theme.MUTED)
        for line in lines:
            self._line(line, size=26, height=40)
        self._content.add_widget(_button("maint:log_again", _("Refresh"),
                                         lambda: self._actions.panel(Panel.LOG), size=32,
                                         size_hint=(None, None), width=theme.px(360),
                                         height=theme.px(100)))

    def _service(self, out_of_service: str | None, presets: Sequence[str]) -> None:
        _ = self._
        if out_of_service:
            self._line(_("Out of service: {message}").format(message=_(out_of_service)),
                       colour=theme.ORANGE, bold=True)
            self._content.add_widget(_button("maint:in_service", _("Back in service"),
                                             self._actions.in_service, colour=theme.GREEN,
                                             size_hint_y=None, height=theme.px(110)))
        else:
            self._line(_("In service"), colour=theme.GREEN, bold=True)
        self._line(_("Take out of service with this message on the start screen:"))
        for n, preset in enumerate(presets):
            self._content.add_widget(_button(f"maint:out_of_service:{n}", _(preset),
                                             lambda p=preset: self._actions.out_of_service(p),
                                             colour=theme.ORANGE, size=34, size_hint_y=None,
                                             height=theme.px(96)))
        self._line(_("Restart the app: it is back in about half a minute."))
        self._content.add_widget(_button("maint:restart", _("Restart the app"),
                                         self._actions.restart, colour=theme.BLUE_DARK,
                                         size_hint_y=None, height=theme.px(110)))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
