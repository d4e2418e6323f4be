"""Screens of 自助出件 (the results ready to print), of any print that waits for the paper to be
taken, and of 好差评. They render flow views and forward taps."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from flows.certificate import ReadyItem
from flows.ports import RatingLevel
from flows.rating import RatingIndicator
from kiosk.ui import theme
from kiosk.ui.apply_screens import _scroller, _title
from kiosk.ui.identity_screens import Buttons, _button
from kiosk.ui.screens import KioskScreen, Tr
from kiosk.ui.widgets import KButton, Panel, Text


class ResultsScreen(KioskScreen):
    """待领取: each result with its own print button."""

    def render(self, _: Tr, results: Sequence[ReadyItem],
               on_print: Callable[[str], None], buttons: Buttons) -> None:
        body = self._reset()
        _title(body, _("Ready for you"))
        scroller, column = _scroller()
        for item in results:
            card = Panel(orientation="horizontal", radius=theme.px(20), padding=theme.px(20),
                         spacing=theme.px(16), size_hint_y=None, height=theme.px(160))
            words = BoxLayout(orientation="vertical", size_hint_x=0.7)
            words.add_widget(Text(item.result_title or item.service_name, size=40, bold=True,
                                  halign="left"))
            words.add_widget(Text(f"{item.tracking_number} · {item.department} · "
                                  f"{item.ready_at:%Y-%m-%d}", size=30, color=theme.MUTED,
                                  halign="left"))
            card.add_widget(words)
            if item.printed:
                card.add_widget(Text(_("Printed"), size=36, color=theme.GREEN,
                                     size_hint_x=0.3))
            elif item.printable:
                card.add_widget(KButton(_("Print"), lambda n=item.tracking_number: on_print(n),
                                        size=36, ui_id=f"print:{item.tracking_number}",
                                        size_hint_x=0.3))
            else:
                card.add_widget(Text(_("At the service desk"), size=32, color=theme.MUTED,
                                     size_hint_x=0.3))
            column.add_widget(card)
        body.add_widget(scroller)
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class TakeScreen(KioskScreen):
    """请取走: the paper is at the exit."""

    def render(self, title: str, message: str, buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(title, size=64, bold=True, color=theme.GREEN, size_hint_y=None,
                             height=theme.px(120)))
        body.add_widget(Text(message, size=44))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))


class RatingScreen(KioskScreen):
    """好差评: five levels; for 不满意 and 非常不满意, the reasons (GB/T 39734 indicators)."""

    def render(self, _: Tr, prompt: str, levels: Sequence[tuple[RatingLevel, str]],
               chosen_level: RatingLevel | None, on_level: Callable[[RatingLevel], None],
               indicators: Sequence[RatingIndicator], chosen: set[str],
               on_toggle: Callable[[str], None], reason: str, buttons: Buttons) -> None:
        body = self._reset()
        body.add_widget(Text(prompt, size=48, bold=True, size_hint_y=None,
                             height=theme.px(80)))
        row = BoxLayout(orientation="horizontal", spacing=theme.px(16), size_hint_y=None,
                        height=theme.px(120))
        for level, name in levels:
            row.add_widget(KButton(name, lambda lv=level: on_level(lv), size=36,
                                   subtitle="★" * int(level), ui_id=f"level:{int(level)}",
                                   bg=theme.GREEN if level == chosen_level else
                                   (theme.BLUE if int(level) >= 3 else theme.ORANGE)))
        body.add_widget(row)
        if indicators:
            body.add_widget(Text(_("What went wrong? Choose one or more."), size=36,
                                 size_hint_y=None, height=theme.px(50)))
            cols = 4
            rows = -(-len(indicators) // cols)
            grid = GridLayout(cols=cols, spacing=theme.px(10), size_hint_y=None,
                              height=rows * theme.px(76) + (rows - 1) * theme.px(10))
            for indicator in indicators:
                grid.add_widget(KButton(indicator.label,
                                        lambda c=indicator.code: on_toggle(c), size=26,
                                        ui_id=f"reason:{indicator.code}",
                                        bg=theme.ORANGE if indicator.code in chosen
                                        else theme.MUTED))
            body.add_widget(grid)
        else:
            body.add_widget(Widget())
        if reason:
            body.add_widget(Text(reason, size=34, color=theme.ORANGE, size_hint_y=None,
                                 height=theme.px(50)))
        body.add_widget(self._buttons([_button(*b) for b in buttons]))
