"""Screens render what they are given and forward taps to the controller; no decisions here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from devices.camera import Camera
from flows.checkin import AppointmentSummary
from flows.ports import QueueTicket
from kiosk.services import Availability
from kiosk.ui import theme
from kiosk.ui.camera_preview import CameraPreview
from kiosk.ui.widgets import KButton, Panel, Text

Tr = Callable[[str], str]


class KioskScreen(Screen):
    """A screen whose content is rebuilt on every render (language switches included)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.body = Panel(orientation="vertical", bg=theme.BG, padding=theme.px(48),
                          spacing=theme.px(28))
        self.add_widget(self.body)

    def _reset(self) -> BoxLayout:
        self.body.clear_widgets()
        return self.body

    def hidden(self) -> None:
        """Another screen took its place: a screen showing the camera lets go of it here."""

    def _buttons(self, buttons: Sequence[KButton]) -> BoxLayout:
        row = BoxLayout(orientation="horizontal", spacing=theme.px(32),
                        size_hint_y=None, height=theme.px(130))
        for button in buttons:
            row.add_widget(button)
        return row


class AttractScreen(KioskScreen):
    def render(self, _: Tr, centre_name: str, now: datetime, out_of_service: list[str],
               on_start: Callable[[], None]) -> None:
        body = self._reset()
        self._on_start = on_start
        body.add_widget(Widget(size_hint_y=0.3))
        body.add_widget(Text(_("24-hour self-service"), size=110, bold=True, color=theme.BLUE,
                             size_hint_y=None, height=theme.px(170)))
        body.add_widget(Text(centre_name, size=44, color=theme.MUTED,
                             size_hint_y=None, height=theme.px(70)))
        self.clock = Text(f"{now:%Y-%m-%d  %H:%M}", size=64, size_hint_y=None,
                          height=theme.px(100))
        body.add_widget(self.clock)
        if out_of_service:
            body.add_widget(Text(_("This kiosk is temporarily out of service."), size=48,
                                 color=theme.ORANGE, size_hint_y=None, height=theme.px(90)))
            body.add_widget(Text("; ".join(out_of_service), size=32, color=theme.MUTED,
                                 size_hint_y=None, height=theme.px(60)))
        else:
            body.add_widget(Text(_("Touch the screen to start"), size=56, color=theme.TEXT,
                                 size_hint_y=None, height=theme.px(110)))
        body.add_widget(Widget(size_hint_y=0.4))

    def tick(self, now: datetime) -> None:
        if hasattr(self, "clock"):
            self.clock.text = f"{now:%Y-%m-%d  %H:%M}"

    def on_touch_down(self, touch: object) -> bool:
        if self.collide_point(*touch.pos) and getattr(self, "_on_start", None):  # type: ignore[attr-defined]
            self._on_start()
            return True
        return super().on_touch_down(touch)


class HomeScreen(KioskScreen):
    def render(self, _: Tr, services: list[Availability],
               on_open: Callable[[str], None], on_finish: Callable[[], None]) -> None:
        body = self._reset()
        body.add_widget(Text(_("Choose a service"), size=64, bold=True, size_hint_y=None,
                             height=theme.px(100)))
        grid = GridLayout(cols=2 if theme.portrait() else 4, spacing=theme.px(28))
        for item in services:
            if item.available:
                subtitle = _(item.service.subtitle)
            else:
                subtitle = _(item.reason).format(device=_(item.device)) if item.device \
                    else _(item.reason)
            tile = KButton(_(item.service.title), subtitle=subtitle, size=46,
                           ui_id=f"service:{item.service.id}",
                           bg=theme.BLUE if item.available else theme.DISABLED,
                           fg=(1, 1, 1, 1) if item.available else theme.MUTED,
                           on_press=(lambda sid=str(item.service.id): on_open(sid)))
            tile.disabled = not item.available
            grid.add_widget(tile)
        body.add_widget(grid)
        body.add_widget(self._buttons([KButton(_("Finish"), on_finish, bg=theme.MUTED,
                                               ui_id="finish")]))


class ScanScreen(KioskScreen):
    """扫码: the hardware scanner's hint picture, or the camera's live picture when the camera
    is the scanner, so the citizen sees where to hold the phone."""

    _preview: CameraPreview | None = None

    def render(self, _: Tr, on_back: Callable[[], None], camera: Camera | None = None) -> None:
        body = self._reset()
        body.add_widget(Text(_("Scan your appointment QR code"), size=64, bold=True,
                             size_hint_y=None, height=theme.px(110)))
        if camera is None:
            self.hidden()
            body.add_widget(Text(_("Hold the QR code from your booking (WeChat or app) under "
                                   "the scanner below the screen."), size=44))
            body.add_widget(QrHint(size_hint_y=1.2))
        else:
            if self._preview is None or self._preview.camera is not camera:
                self.hidden()
                self._preview = CameraPreview(camera, size_hint_y=1.6)
            body.add_widget(Text(_("Hold the QR code from your booking (WeChat or app) in "
                                   "front of the camera, as in the picture."), size=44))
            body.add_widget(self._preview)
        body.add_widget(self._buttons([KButton(_("Back"), on_back, bg=theme.MUTED,
                                               ui_id="back")]))

    def hidden(self) -> None:
        if self._preview is not None:
            self._preview.stop()
            self._preview = None


class QrHint(Widget):
    """A drawn QR-like mark pointing at the scanner: a picture, not a code."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bind(pos=self._draw, size=self._draw)

    def _draw(self, *_: object) -> None:
        from kivy.graphics import Color, Line, Rectangle

        self.canvas.clear()
        side = min(self.width, self.height) * 0.8
        x0, y0 = self.center_x - side / 2, self.center_y - side / 2
        with self.canvas:
            Color(*theme.BLUE)
            Line(rectangle=(x0, y0, side, side), width=theme.px(6))
            cell = side / 7
            for cx, cy in ((0, 0), (4, 0), (0, 4)):
                Rectangle(pos=(x0 + cx * cell + cell * 0.5, y0 + cy * cell + cell * 0.5),
                          size=(cell * 2, cell * 2))


class BusyScreen(KioskScreen):
    def render(self, message: str) -> None:
        body = self._reset()
        body.add_widget(Text(message, size=60, color=theme.BLUE))


def _rows(body: BoxLayout, rows: Sequence[tuple[str, str]]) -> None:
    line_height, padding = theme.px(66), theme.px(28)
    # Fixed height per row: a squeezed card would overlap its lines.
    card = Panel(orientation="vertical", radius=theme.px(20), padding=padding,
                 size_hint_y=None, height=len(rows) * line_height + 2 * padding)
    for label, value in rows:
        line = BoxLayout(orientation="horizontal", spacing=theme.px(40),
                         size_hint_y=None, height=line_height)
        line.add_widget(Text(label, size=40, color=theme.MUTED, halign="right",
                             size_hint_x=0.35))
        line.add_widget(Text(value, size=44, halign="left", size_hint_x=0.65))
        card.add_widget(line)
    body.add_widget(card)


class ConfirmScreen(KioskScreen):
    def render(self, _: Tr, appointment: AppointmentSummary,
               on_confirm: Callable[[], None], on_back: Callable[[], None]) -> None:
        body = self._reset()
        body.add_widget(Text(_("Your appointment"), size=64, bold=True, size_hint_y=None,
                             height=theme.px(100)))
        rows = [
            (_("Service"), appointment.service_name),
            (_("Centre"), appointment.centre_name),
            (_("Date"), appointment.date.isoformat()),
            (_("Time"), appointment.slot),
        ]
        if appointment.applicant:  # a signed code may carry no name at all
            rows.append((_("Name"), appointment.applicant))
        if appointment.place:  # only a signed code says where to go before check-in
            rows.append((_("Where"), appointment.place))
        _rows(body, rows)
        body.add_widget(self._buttons([
            KButton(_("Back"), on_back, bg=theme.MUTED, ui_id="back"),
            KButton(_("Check in"), on_confirm, bg=theme.GREEN, ui_id="confirm"),
        ]))


def _ticket_rows(_: Tr, ticket: QueueTicket) -> list[tuple[str, str]]:
    return [
        (_("Service"), ticket.service_name),
        (_("Please wait at"), " ".join(p for p in (ticket.floor, ticket.area, ticket.window) if p)),
        (_("People ahead"), str(ticket.waiting_ahead)),
    ]


class TicketScreen(KioskScreen):
    def render(self, _: Tr, ticket: QueueTicket, on_done: Callable[[], None]) -> None:
        body = self._reset()
        body.add_widget(Text(_("Your number"), size=52, color=theme.MUTED, size_hint_y=None,
                             height=theme.px(80)))
        number = Text(ticket.number, size=200, bold=True, color=theme.BLUE,
                      size_hint_y=None, height=theme.px(240))
        number.ui_id = "ticket_number"
        body.add_widget(number)
        _rows(body, _ticket_rows(_, ticket))
        body.add_widget(Text(_("Please take your ticket from the slot below."), size=48,
                             color=theme.GREEN, size_hint_y=None, height=theme.px(90)))
        body.add_widget(self._buttons([KButton(_("Finish"), on_done, bg=theme.GREEN,
                                               ui_id="finish")]))


class ProblemScreen(KioskScreen):
    def render(self, _: Tr, title: str, message: str, ticket: QueueTicket | None,
               actions: Sequence[tuple[str, str, Callable[[], None]]]) -> None:
        """``actions`` are (ui_id, label, callback)."""
        body = self._reset()
        body.add_widget(Text(title, size=64, bold=True, color=theme.ORANGE, size_hint_y=None,
                             height=theme.px(110)))
        body.add_widget(Text(message, size=44))
        if ticket is not None:
            body.add_widget(Text(ticket.number, size=130, bold=True, color=theme.BLUE,
                                 size_hint_y=None, height=theme.px(160)))
            _rows(body, _ticket_rows(_, ticket))
        body.add_widget(self._buttons([
            KButton(label, callback, ui_id=ui_id,
                    bg=theme.ORANGE if ui_id == "call_staff" else
                    (theme.MUTED if ui_id == "home" else theme.BLUE))
            for ui_id, label, callback in actions
        ]))


class MessageScreen(KioskScreen):
    """A plain message with one way back (staff called, out of service, internal error)."""

    def render(self, title: str, message: str, button: str, on_button: Callable[[], None],
               colour: tuple = theme.BLUE) -> None:
        body = self._reset()
        body.add_widget(Text(title, size=64, bold=True, color=colour, size_hint_y=None,
                             height=theme.px(110)))
        body.add_widget(Text(message, size=44))
        body.add_widget(self._buttons([KButton(button, on_button, ui_id="ok")]))


class TopBar(Panel):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(orientation="horizontal", bg=theme.BLUE_DARK,
                         padding=(theme.px(32), theme.px(12)), spacing=theme.px(24), **kwargs)

    def render(self, _: Tr, centre_name: str, now: datetime, language: str,
               countdown: int | None, on_language: Callable[[], None],
               on_call_staff: Callable[[], None]) -> None:
        key = (centre_name, f"{now:%H:%M}", language, countdown)
        if key == getattr(self, "_shown", None):
            return  # rebuilt only when something on it changed, not on every tick
        self._shown = key
        self.clear_widgets()
        self.add_widget(Text(_("Zizhu self-service") + "  ·  " + centre_name, size=34,
                             color=(1, 1, 1, 1), halign="left", size_hint_x=0.5))
        self.add_widget(Text(f"{now:%H:%M}", size=40, color=(1, 1, 1, 1), size_hint_x=0.12))
        if countdown is not None:
            self.add_widget(Text(_("Returning to start in {n} s — touch to stay").format(
                n=countdown), size=30, color=(1, 0.85, 0.4, 1), size_hint_x=0.4))
        self.add_widget(KButton("English" if language != "en" else "中文", on_language,
                                bg=theme.BLUE, size=30, ui_id="language", size_hint_x=0.14))
        self.add_widget(KButton(_("Call staff"), on_call_staff, bg=theme.ORANGE, size=32,
                                ui_id="call_staff", size_hint_x=0.2))
