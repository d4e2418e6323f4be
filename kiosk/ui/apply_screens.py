"""Screens of the 办事指南 and the 自助申报 journey: the items, the 一次性告知单, the material
checklist, the contact phone, the 告知承诺 and the receipt. They render flow views and forward
taps; which taps are allowed is the flow's business."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView

from flows.apply import ApplicationReceipt, MaterialEntry, MaterialState
from flows.ports import ServiceItemInfo
from kiosk.ui import theme
from kiosk.ui.identity_screens import Buttons, _button
from kiosk.ui.screens import KioskScreen, Tr, _rows
from kiosk.ui.widgets import KButton, Panel, Text


def _scroller(spacing: float = 20) -> tuple[ScrollView, BoxLayout]:
    scroller = ScrollView(do_scroll_x=False)
    column = BoxLayout(orientation="vertical", spacing=theme.px(spacing), size_hint_y=None)
    column.bind(minimum_height=column.setter("height"))
    scroller.add_widget(column)
    return scroller, column


def _title(body: BoxLayout, text: str, size: float = 60) -> None:
    body.add_widget(Text(text, size=size, bold=True, size_hint_y=None, height=theme.px(100)))


def _line(text: str, size: float = 36, color: tuple = theme.TEXT,
          bold: bool = False) -> Label:
    """A left-aligned paragraph as tall as its wrapped text (Text wraps to a fixed box)."""
    label = Label(text=text, font_name=theme.FONT_NAME, font_size=theme.px(size), color=color,
                  bold=bold, halign="left", valign="top", size_hint_y=None)
    label.bind(width=lambda w, width: setattr(w, "text_size", (width, None)),
               texture_size=lambda w, s: setattr(w, "height", s[1] + theme.px(10)))
    return label


class ItemListScreen(KioskScreen):
    """The service items of this centre, as tiles."""

    def render(self, _: Tr, title: str, items: Sequence[ServiceItemInfo],
               on_choose: Callable[[str], None], buttons: Buttons) -> None:
        body = self._reset()
        _title(body, title)
        scroller, column = _scroller()
        grid = GridLayout(cols=1 if theme.portrait() else 2, spacing=theme.px(20),
                          size_hint_y=None)
        grid.bind(minimum_height=grid.setter("height"))
        for item in items:
            limit = (_("{n} working days").format(n=item.promised_days) if item.promised_days
                     else _("Same day"))
            grid.add_widget(KButton(item.name, lambda code=item.code: on_choose(code),
                                    subtitle=f"{item.department} · {limit}", size=40,
                                    ui_id=f"item:{item.code}", size_hint_y=None,
                                    height=theme.px(150)))
        column.add_widget(grid)
        body.add_widget(scroller)
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class NoticeScreen(KioskScreen):
    """一次性告知单 on screen: conditions, every material and whether it may come later, time
    limit, fees and legal basis, so nobody has to come back for a missing paper."""

    def render(self, _: Tr, item: ServiceItemInfo, requirement_text: Callable[[str], str],
               buttons: Buttons) -> None:
        body = self._reset()
        _title(body, item.name, 56)
        limit = (_("{n} working days").format(n=item.promised_days) if item.promised_days
                 else _("Same day"))
        _rows(body, [(_("Department"), item.department), (_("Time limit"), limit),
                     (_("Fees"), item.fees or _("Free of charge"))])
        scroller, column = _scroller(12)
        column.add_widget(_line(_("What you need"), 44, bold=True, color=theme.BLUE))
        for n, material in enumerate(item.materials, 1):
            note = f"（{material.note}）" if material.note else ""
            column.add_widget(_line(f"{n}. {material.name}{note} — "
                                    f"{requirement_text(material.requirement)}", 38))
        if item.conditions:
            column.add_widget(_line(_("Who can apply"), 44, bold=True, color=theme.BLUE))
            for condition in item.conditions:
                column.add_widget(_line(f"• {condition}", 36))
        if item.legal_basis:
            column.add_widget(_line(_("Legal basis"), 40, bold=True, color=theme.MUTED))
            for basis in item.legal_basis:
                column.add_widget(_line(basis, 32, color=theme.MUTED))
        body.add_widget(scroller)
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class MaterialsScreen(KioskScreen):
    """The checklist: each material with what has been done and what can be done."""

    def render(self, _: Tr, item_name: str, materials: Sequence[MaterialEntry],
               state_text: Callable[[MaterialEntry], str],
               row_buttons: Callable[[MaterialEntry], Buttons], buttons: Buttons,
               can_continue: bool) -> None:
        body = self._reset()
        _title(body, _("Materials for {item}").format(item=item_name), 52)
        body.add_widget(Text(_("Photograph each document under the camera. Materials marked "
                               "\"may be supplied later\" can be brought within the deadline "
                               "on your receipt."), size=34, color=theme.MUTED,
                             size_hint_y=None, height=theme.px(100)))
        scroller, column = _scroller()
        for entry in materials:
            card = Panel(orientation="horizontal", radius=theme.px(20), padding=theme.px(20),
                         spacing=theme.px(16), size_hint_y=None, height=theme.px(150))
            words = BoxLayout(orientation="vertical", size_hint_x=0.5)
            words.add_widget(Text(entry.name, size=38, bold=True, halign="left"))
            done = entry.state in (MaterialState.CAPTURED, MaterialState.DEFERRED)
            words.add_widget(Text(state_text(entry), size=32, halign="left",
                                  color=theme.GREEN if done else theme.MUTED))
            card.add_widget(words)
            for ui_id, label, callback in row_buttons(entry):
                card.add_widget(KButton(label, callback, size=32, ui_id=ui_id,
                                        size_hint_x=0.5 / max(1, len(row_buttons(entry))),
                                        bg=theme.MUTED if ui_id.startswith("undo") else
                                        theme.BLUE))
            column.add_widget(card)
        body.add_widget(scroller)
        row = self._buttons([_button(*b) for b in buttons])
        for button in row.children:
            if getattr(button, "ui_id", "") == "continue":
                button.disabled = not can_continue
        body.add_widget(row)


class PhoneScreen(KioskScreen):
    """联系电话 on a digit keypad: the department calls back on it (补正, 领取)."""

    def render(self, _: Tr, error: str, on_submit: Callable[[str], None],
               buttons: Buttons) -> None:
        self._ = _
        self._digits = getattr(self, "_digits", "")
        self._error = error
        self._on_submit = on_submit
        self._extra = buttons
        self._draw()

    def clear(self) -> None:
        self._digits = ""

    def _press(self, key: str) -> None:
        if key == "del":
            self._digits = self._digits[:-1]
        elif len(self._digits) < 11:
            self._digits += key
        self._draw()

    def _draw(self) -> None:
        _ = self._
        body = self._reset()
        _title(body, _("Your mobile phone number"))
        body.add_widget(Text(_("The department contacts you on it about this application."),
                             size=36, color=theme.MUTED, size_hint_y=None, height=theme.px(60)))
        shown = Text(self._digits or " ", size=72, bold=True, color=theme.BLUE,
                     size_hint_y=None, height=theme.px(110))
        shown.ui_id = "phone"
        body.add_widget(shown)
        if self._error:
            body.add_widget(Text(self._error, size=36, color=theme.ORANGE, size_hint_y=None,
                                 height=theme.px(56)))
        keys = GridLayout(cols=3, spacing=theme.px(12), size_hint_x=0.6,
                          pos_hint={"center_x": 0.5})
        for key in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0"):
            keys.add_widget(KButton(_("Delete") if key == "del" else key,
                                    lambda k=key: self._press(k), size=48, ui_id=f"key:{key}",
                                    bg=theme.MUTED if key == "del" else theme.BLUE))
        keys.add_widget(KButton(_("OK"), lambda: self._on_submit(self._digits), size=44,
                                ui_id="submit_phone", bg=theme.GREEN))
        body.add_widget(keys)
        body.add_widget(self._buttons([_button(*b) for b in self._extra]))


class CommitmentScreen(KioskScreen):
    """告知承诺: the citizen reads what they promise and signs by pressing."""

    def render(self, _: Tr, item_name: str, text: str, buttons: Buttons) -> None:
        body = self._reset()
        _title(body, _("Commitment"))
        body.add_widget(Text(item_name, size=44, color=theme.BLUE, size_hint_y=None,
                             height=theme.px(70)))
        scroller, column = _scroller()
        column.add_widget(_line(text, 40))
        body.add_widget(scroller)
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class ReceiptScreen(KioskScreen):
    """受理回执 on screen: the number to keep, and whether the back office has it yet."""

    def render(self, _: Tr, receipt: ApplicationReceipt, delivery: str, take: str,
               buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(_("Application received"), size=52, bold=True, size_hint_y=None,
                             height=theme.px(80)))
        number = Text(receipt.number, size=68, bold=True, color=theme.BLUE, size_hint_y=None,
                      height=theme.px(90))
        number.ui_id = "tracking_number"
        body.add_widget(number)
        rows = [(_("Service"), receipt.item_name)]
        if receipt.tracking_number is not None:
            rows.append((_("Kiosk number"), receipt.local_tracking_number))
        for name, deadline in receipt.deferred:
            rows.append((_("Bring later"), f"{name} ({deadline:%Y-%m-%d})"))
        _rows(body, rows)
        body.add_widget(Text(delivery + ("\n" + take if take else ""), size=36,
                             color=theme.GREEN if receipt.tracking_number else theme.ORANGE,
                             size_hint_y=None, height=theme.px(130)))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


