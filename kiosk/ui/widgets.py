"""A few widgets with a background and the CJK font; screens compose them."""

from __future__ import annotations

from kivy.graphics import Color, RoundedRectangle
from kivy.properties import ColorProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label

from kiosk.ui import theme


class Panel(BoxLayout):
    bg = ColorProperty(theme.CARD)
    radius = NumericProperty(0)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        with self.canvas.before:
            self._color = Color(rgba=self.bg)
            self._rect = RoundedRectangle(pos=self.pos, size=self.size, radius=[self.radius])
        self.bind(pos=self._redraw, size=self._redraw, bg=self._redraw, radius=self._redraw)

    def _redraw(self, *_: object) -> None:
        self._color.rgba = self.bg
        self._rect.pos, self._rect.size = self.pos, self.size
        self._rect.radius = [self.radius]


class Text(Label):
    """Wrapping text in the CJK font."""

    def __init__(self, text: str = "", size: float = 36, color: tuple = theme.TEXT,
                 halign: str = "center", bold: bool = False, **kwargs: object) -> None:
        # A greyed tile keeps its reason readable: no extra dimming of disabled text.
        super().__init__(text=text, font_name=theme.FONT_NAME, font_size=theme.px(size),
                         color=color, disabled_color=color, halign=halign, valign="middle",
                         bold=bold, **kwargs)
        self.bind(size=lambda w, s: setattr(w, "text_size", s))


class KButton(ButtonBehavior, Panel):
    """A big touch target. ``ui_id`` names it for tests and scenario files."""

    ui_id = StringProperty("")

    def __init__(self, text: str, on_press: object = None, bg: tuple = theme.BLUE,
                 size: float = 40, subtitle: str = "", ui_id: str = "",
                 fg: tuple = (1, 1, 1, 1), **kwargs: object) -> None:
        super().__init__(orientation="vertical", padding=theme.px(16), radius=theme.px(18),
                         bg=bg, ui_id=ui_id, **kwargs)
        self.label = Text(text, size=size, color=fg, bold=True)
        self.add_widget(self.label)
        if subtitle:
            self.add_widget(Text(subtitle, size=size * 0.55, color=fg))
        self._enabled_bg = bg
        if on_press is not None:
            self.bind(on_release=lambda *_: on_press())

    def on_disabled(self, _w: object, disabled: bool) -> None:
        self.bg = theme.DISABLED if disabled else self._enabled_bg
