"""gettext for screens and prints: msgids are English, zh_CN is the default language."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "kiosk"
LANGUAGES = ("zh_CN", "en")


class TranslationsMissing(RuntimeError):
    pass


class I18n:
    """The kiosk's current language. Switchable per session (a foreign visitor taps EN), and
    back to the configured default when the session ends."""

    def __init__(self, default: str = "zh_CN") -> None:
        if default not in LANGUAGES:
            raise ValueError(f"unsupported language {default!r}; use one of {LANGUAGES}")
        self.default = default
        self._catalogs: dict[str, gettext.NullTranslations] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.language = default
        self._active = self._catalog(default)

    def _catalog(self, language: str) -> gettext.NullTranslations:
        if language not in self._catalogs:
            if language == "en":
                self._catalogs[language] = gettext.NullTranslations()
            else:
                try:
                    self._catalogs[language] = gettext.translation(
                        DOMAIN, LOCALE_DIR, languages=[language])
                except FileNotFoundError as missing:
                    raise TranslationsMissing(
                        f"no compiled translations for {language} in {LOCALE_DIR}: run "
                        "`make` (pybabel compile -d kiosk/locale -D kiosk)") from missing
        return self._catalogs[language]

    def set_language(self, language: str) -> None:
        self._active = self._catalog(language)
        self.language = language
        for listener in list(self._listeners):
            listener(language)

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def gettext(self, message: str) -> str:
        return self._active.gettext(message)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Mark a string for extraction where it is translated later, at display time."""
    return message
