"""Keeping personal data out of logs (PIPL: ID numbers, phone numbers are sensitive).

Two numbers can be recognised in free text with almost no false negatives: the 18-character
resident ID number and the 11-digit mainland mobile number. Both are masked wherever text
reaches a log: in messages, in their %-arguments, in exception text and stack info.

Chinese names cannot be detected reliably in free text (two or three common characters look
like any other words), so no filter can catch them. The rule instead is that code never passes
a name, address or any other card field to logging; it logs ids (session, appointment,
device) and masked values only. ``kiosk.storage.audit`` enforces the same rule for the audit
trail by refusing personal keys.
"""

from __future__ import annotations

import logging
import re

from devices.identity import mask_id

# A lookaround on digits only (not letters): "ID530102..." must still be masked, and
# over-masking a log line is harmless where under-masking is not.
_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")

# Numbers are often written with a +86 / 86 prefix or grouped 3-4-4 with spaces or dashes;
# without the prefix branch "+8613812345678" would escape because a digit precedes the 1.
_MOBILE = re.compile(
    r"(?<![0-9])((?:\+?86[- ]?)?1[3-9][0-9])([- ]?)[0-9]{4}([- ]?)([0-9]{4})(?![0-9])"
)


def mask_text(s: str) -> str:
    """Return ``s`` with resident ID numbers and mobile numbers masked.

    ``530102199001011234`` becomes ``5301**********1234``; ``13812345678`` becomes
    ``138****5678``. Everything else is left as it is.
    """
    if not s:
        return s
    s = _ID_NUMBER.sub(lambda m: mask_id(m.group(0)), s)
    return _MOBILE.sub(lambda m: f"{m.group(1)}{m.group(2)}****{m.group(3)}{m.group(4)}", s)


class MaskingFilter(logging.Filter):
    """Masks personal numbers in a record before any handler formats it.

    The message is merged with its arguments first, because a number may sit in an argument
    (``log.info("read %s", card_number)``) or in an object's ``str()``, and masking the
    template alone would miss it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must still not let raw args through
            message = f"{record.msg} [args: {record.args!r}]"
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatter.format reuses a cached exc_text, so filling it here masks the traceback
            # text (exception messages often quote the bad input) for every handler.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> MaskingFilter:
    """Add one :class:`MaskingFilter` to every handler of ``logger`` (the root logger by default).

    Filters go on handlers, not on the logger, because records propagated from child loggers
    skip the parent logger's filters but do pass through its handlers. Call it after logging is
    configured: handlers added later are not covered. Calling it again is harmless.
    """
    target = logger if logger is not None else logging.getLogger()
    shared = MaskingFilter()
    for handler in target.handlers:
        if any(isinstance(f, MaskingFilter) for f in handler.filters):
            continue
        handler.addFilter(shared)
    return shared
