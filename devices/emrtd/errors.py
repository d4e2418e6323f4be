"""What can go wrong reading an eMRTD chip. Messages carry status words and file names,
never chip content."""

from __future__ import annotations


class EmrtdError(Exception):
    """Base of every chip-reading failure; ``sw`` is the status word when one caused it."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw


class UnknownCard(EmrtdError):
    """SELECT of the LDS1 application failed: the card is not an eMRTD (a bank card ...)."""


class AccessDenied(EmrtdError):
    """BAC refused: the MRZ does not open this chip, or the chip's cryptogram did not verify;
    also a file the chip will not give under BAC (6982)."""


class FileNotFound(EmrtdError):
    """The chip has no such elementary file (6A82)."""


class SecureMessagingError(EmrtdError):
    """A protected response failed its MAC, lacked DO'99'/DO'8E', had bad padding, or the chip
    reported a secure-messaging error (6987 / 6988). The SM session is over."""


class CardRemoved(EmrtdError):
    """The card left the field mid-exchange; raised by the transmit function (PC/SC layer)."""
