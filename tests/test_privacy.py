"""Personal numbers never reach a log line: masking, and the logging filter that applies it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from kiosk.privacy import MaskingFilter, install_log_masking, mask_text

ID = "530102199001011234"
ID_X = "53010219900101123X"
PHONE = "13812345678"


@pytest.mark.parametrize(("text", "masked"), [
    (ID, "5301**********1234"),
    (ID_X, "5301**********123X"),
    ("53010219900101123x", "5301**********123x"),
    (f"身份证号{ID}。", "身份证号5301**********1234。"),
    (f"id={ID},", "id=5301**********1234,"),
    (f"ID{ID}", "ID5301**********1234"),
    (PHONE, "138****5678"),
    (f"手机{PHONE}", "手机138****5678"),
    ("+8613812345678", "+86138****5678"),
    ("86-13812345678", "86-138****5678"),
    ("138-1234-5678", "138-****-5678"),
    ("138 1234 5678", "138 **** 5678"),
    (f"{ID} / {PHONE}", "5301**********1234 / 138****5678"),
])
def test_masks(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "",
    "排队号 A012, 3 楼 B 区 5 号窗口",
    "5301021990010112",        # 16 digits: not an ID number
    "5301021990010112345",     # 19 digits: a longer number, not an ID inside it
    "12345678901",             # 11 digits but not a mobile prefix
    "1381234567",              # 10 digits
    "138123456789",            # 12 digits
    "order 20261122093000123",  # 17-digit timestamp
    "appointment id-APT-0001",
])
def test_leaves_other_text_alone(text: str) -> None:
    assert mask_text(text) == text


# --- the logging filter --------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger with one handler writing to a buffer, masking installed on it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.privacy.private")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    install_log_masking(logger)
    yield logger, stream
    logger.removeHandler(handler)


def test_masks_message_text(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged
    log.info(f"card {ID} read")
    assert out.getvalue() == "INFO card 5301**********1234 read\n"


def test_masks_formatted_args(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged
    log.warning("id %s phone %s tries %d", ID, int(PHONE), 3)
    assert out.getvalue() == "WARNING id 5301**********1234 phone 138****5678 tries 3\n"


def test_masks_mapping_args_and_objects(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged

    class Card:
        def __str__(self) -> str:
            return f"Card({ID_X})"

    log.info("%(card)s", {"card": Card()})
    assert out.getvalue() == "INFO Card(5301**********123X)\n"


def test_masks_exception_text(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged
    try:
        raise ValueError(f"bad checksum in {ID}")
    except ValueError:
        log.exception("read failed")
    text = out.getvalue()
    assert "ValueError: bad checksum in 5301**********1234" in text
    assert "199001011234" not in text


def test_bad_format_does_not_leak(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged
    log.info("two %s %s", PHONE)  # one argument short: logging would print the raw args
    assert PHONE not in out.getvalue()
    assert "138****5678" in out.getvalue()


def test_filter_keeps_every_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    assert MaskingFilter().filter(record) is True
    assert record.getMessage() == "plain text"


def test_install_on_root_covers_child_loggers_once() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    child = logging.getLogger("tests.privacy.child")
    old_level = child.level
    child.setLevel(logging.INFO)
    try:
        install_log_masking()
        install_log_masking()  # idempotent
        assert sum(isinstance(f, MaskingFilter) for f in handler.filters) == 1
        child.info("citizen %s", PHONE)
        assert "citizen 138****5678" in stream.getvalue()
        assert PHONE not in stream.getvalue()
    finally:
        root.removeHandler(handler)
        child.setLevel(old_level)
        # Leave pytest's own capture handlers as they were.
        for h in root.handlers:
            for f in [f for f in h.filters if isinstance(f, MaskingFilter)]:
                h.removeFilter(f)
