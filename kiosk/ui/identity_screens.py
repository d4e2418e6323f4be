"""Screens of the identify step and the progress query: they render flow views and forward
taps; what to do with a tap is the controller's and the flow's business."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from kivy.core.image import Image as CoreImage
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image
from kivy.uix.scrollview import ScrollView

from devices.camera import Camera
from flows.identify import IdentitySummary
from flows.ports import ApplicationSummary
from kiosk.ui import theme
from kiosk.ui.camera_preview import CameraPreview
from kiosk.ui.screens import KioskScreen, QrHint, Tr, _rows
from kiosk.ui.widgets import KButton, Panel, Text

# (ui_id, label, callback) as the problem screen takes them.
Buttons = Sequence[tuple[str, str, Callable[[], None]]]


def _button(ui_id: str, label: str, callback: Callable[[], None]) -> KButton:
    colour = {"call_staff": theme.ORANGE, "home": theme.MUTED, "back": theme.MUTED,
              "continue": theme.GREEN, "submit_mrz": theme.GREEN}.get(ui_id, theme.BLUE)
    return KButton(label, callback, bg=colour, ui_id=ui_id)


class PresentDocumentScreen(KioskScreen):
    """请放置证件: the reader waits for the ID card (or the passport's chip)."""

    def render(self, title: str, message: str, buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(title, size=64, bold=True, size_hint_y=None, height=theme.px(110)))
        body.add_widget(Text(message, size=44))
        body.add_widget(QrHint(size_hint_y=1.0))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class MrzEntryScreen(KioskScreen):
    """The three fields that open a passport chip, typed on an on-screen keyboard, with the
    camera's picture beside them while the camera looks for the MRZ.

    The typed text lives here only until the citizen submits it; the flow checks it."""

    FIELDS = ("document_number", "birth_date", "expiry_date")
    _MAX = {"document_number": 9, "birth_date": 6, "expiry_date": 6}
    _preview: CameraPreview | None = None

    def render(self, _: Tr, error: str, on_submit: Callable[[str, str, str], None],
               buttons: Buttons, camera: Camera | None = None) -> None:
        """``error``: what the citizen should look at again, already in their language."""
        self._values = getattr(self, "_values", None) or dict.fromkeys(self.FIELDS, "")
        self._focus = getattr(self, "_focus", self.FIELDS[0])
        self._ = _
        self._error = error
        self._on_submit = on_submit
        self._extra = buttons
        if camera is None:
            self._stop_preview()
        elif self._preview is None or self._preview.camera is not camera:
            self._stop_preview()
            self._preview = CameraPreview(camera, size_hint_x=0.4)
        self._draw()

    def clear(self) -> None:
        """Forget what was typed and the camera's picture (session end, or a new document)."""
        self._values = dict.fromkeys(self.FIELDS, "")
        self._focus = self.FIELDS[0]
        self._stop_preview()

    def hidden(self) -> None:
        self._stop_preview()  # the data page's picture goes with the screen

    def _stop_preview(self) -> None:
        if self._preview is not None:
            self._preview.stop()
            self._preview = None

    def _draw(self) -> None:
        _ = self._
        body = self._reset()
        if self._preview is not None:
            self._preview.detach()  # from the previous drawing's layout
            # The keypad keeps its room: the picture only has to show the page is in view.
            head = BoxLayout(orientation="horizontal", spacing=theme.px(24), size_hint_y=None,
                             height=theme.px(200))
            head.add_widget(self._preview)
            words = BoxLayout(orientation="vertical", size_hint_x=0.6)
            words.add_widget(Text(_("Passport or travel permit"), size=52, bold=True))
            words.add_widget(Text(_("Hold the photo page under the camera, or type these from "
                                    "it."), size=34))
            head.add_widget(words)
            body.add_widget(head)
        else:
            body.add_widget(Text(_("Passport or travel permit"), size=60, bold=True,
                                 size_hint_y=None, height=theme.px(90)))
            body.add_widget(Text(_("Type these from the photo page of your document."), size=38,
                                 size_hint_y=None, height=theme.px(60)))
        labels = {"document_number": _("Document number"),
                  "birth_date": _("Date of birth (YYMMDD)"),
                  "expiry_date": _("Date of expiry (YYMMDD)")}
        fields = BoxLayout(orientation="horizontal", spacing=theme.px(24), size_hint_y=None,
                           height=theme.px(120 if self._preview is not None else 150))
        for name in self.FIELDS:
            box = KButton(self._values[name] or " ", lambda n=name: self._set_focus(n),
                          subtitle=labels[name], size=48, ui_id=f"field:{name}",
                          bg=theme.BLUE if name == self._focus else theme.MUTED)
            fields.add_widget(box)
        body.add_widget(fields)
        if self._error:
            body.add_widget(Text(self._error, size=34, color=theme.ORANGE, size_hint_y=None,
                                 height=theme.px(50)))
        keys = GridLayout(cols=10, spacing=theme.px(8))
        alphabet = "1234567890" if self._focus != "document_number" \
            else "1234567890QWERTYUIOPASDFGHJKLZXCVBNM"
        for key in alphabet:
            keys.add_widget(KButton(key, lambda k=key: self._type(k), size=40,
                                    bg=theme.BLUE_DARK, ui_id=f"key:{key}"))
        keys.add_widget(KButton(_("Delete"), self._backspace, size=36, bg=theme.MUTED,
                                ui_id="key:backspace"))
        body.add_widget(keys)
        body.add_widget(self._buttons([_button(*b) for b in self._extra] + [
            _button("submit_mrz", _("Read the chip"), self._submit)]))

    def _set_focus(self, name: str) -> None:
        self._focus = name
        self._draw()

    def _type(self, key: str) -> None:
        value = self._values[self._focus]
        if len(value) < self._MAX[self._focus]:
            self._values[self._focus] = value + key
        if len(self._values[self._focus]) == self._MAX[self._focus]:
            index = self.FIELDS.index(self._focus)
            self._focus = self.FIELDS[min(index + 1, len(self.FIELDS) - 1)]
        self._draw()

    def _backspace(self) -> None:
        self._values[self._focus] = self._values[self._focus][:-1]
        self._draw()

    def _submit(self) -> None:
        values = tuple(self._values[f] for f in self.FIELDS)
        self._on_submit(*values)


class IdentityScreen(KioskScreen):
    """What was read, masked: the citizen checks it is their document before going on."""

    def render(self, _: Tr, summary: IdentitySummary, document_title: str, photo_note: str,
               authenticity_note: str, buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(_("Is this your document?"), size=64, bold=True,
                             size_hint_y=None, height=theme.px(100)))
        row = BoxLayout(orientation="horizontal", spacing=theme.px(32), size_hint_y=None,
                        height=theme.px(420))
        photo = Panel(orientation="vertical", radius=theme.px(20), padding=theme.px(16),
                      size_hint_x=0.3)
        if summary.photo is not None:
            ext = "jpg" if summary.photo[:2] == b"\xff\xd8" else "png"
            texture = CoreImage(io.BytesIO(summary.photo), ext=ext).texture
            photo.add_widget(Image(texture=texture, fit_mode="contain"))
        else:
            photo.add_widget(Text(photo_note, size=34, color=theme.MUTED))
        row.add_widget(photo)
        details = BoxLayout(orientation="vertical", size_hint_x=0.7)
        valid = summary.valid_until.isoformat() if summary.valid_until else _("Long-term")
        _rows(details, [
            (_("Document"), document_title),
            (_("Name"), summary.name),
            (_("Number"), summary.id_number),
            (_("Valid until"), valid),
        ])
        row.add_widget(details)
        body.add_widget(row)
        body.add_widget(Text(authenticity_note, size=36, color=theme.MUTED))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class ApplicationsScreen(KioskScreen):
    def render(self, _: Tr, applications: Sequence[ApplicationSummary],
               status_text: Callable[[ApplicationSummary], str], buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(_("Your applications"), size=64, bold=True, size_hint_y=None,
                             height=theme.px(100)))
        if not applications:
            body.add_widget(Text(_("No applications were found for this document."), size=48))
        else:
            scroller = ScrollView(do_scroll_x=False)
            items = BoxLayout(orientation="vertical", spacing=theme.px(20), size_hint_y=None)
            items.bind(minimum_height=items.setter("height"))
            for application in applications:
                card = Panel(orientation="vertical", radius=theme.px(20), padding=theme.px(24),
                             size_hint_y=None, height=theme.px(190))
                head = BoxLayout(orientation="horizontal", size_hint_y=None,
                                 height=theme.px(60))
                head.add_widget(Text(application.service_name, size=42, bold=True,
                                     halign="left", size_hint_x=0.65))
                head.add_widget(Text(status_text(application), size=42, color=theme.BLUE,
                                     bold=True, halign="right", size_hint_x=0.35))
                card.add_widget(head)
                card.add_widget(Text(
                    _("No. {number}  ·  {department}  ·  updated {date}").format(
                        number=application.tracking_number, department=application.department,
                        date=f"{application.updated_at:%Y-%m-%d}"),
                    size=32, color=theme.MUTED, halign="left"))
                if application.note:
                    card.add_widget(Text(application.note, size=32, halign="left"))
                items.add_widget(card)
            scroller.add_widget(items)
            body.add_widget(scroller)
        body.add_widget(self._buttons([_button(*b) for b in buttons]))
