"""Every text the kiosk can show or print has its Chinese, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from kiosk.i18n import I18n

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "kiosk/locale/zh_CN/LC_MESSAGES/kiosk.po"


def msgids() -> set[str]:
    found: set[str] = set()
    for package in ("kiosk", "flows"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
                ROOT / package, method_map=[("**.py", "python")],
                keywords={"_": None, "N_": None}):
            found.add(message)
    return found


def test_every_msgid_has_a_chinese_translation_with_its_placeholders():
    with PO.open("rb") as f:
        catalog = read_po(f)
    ids = msgids()
    assert len(ids) > 50
    missing = [m for m in ids if not (catalog.get(m) and catalog.get(m).string)]
    assert missing == [], "run `make translations` and translate these"
    for message in ids:
        translated = catalog.get(message).string
        assert set(re.findall(r"{\w+}", message)) == set(re.findall(r"{\w+}", translated)), message


def test_compiled_catalogue_is_used_and_english_is_the_source():
    i18n = I18n("zh_CN")
    assert i18n.gettext("Call staff") == "呼叫帮办"
    seen = []
    i18n.on_change(seen.append)
    i18n.set_language("en")
    assert i18n.gettext("Call staff") == "Call staff"
    assert seen == ["en"]
