"""PC/SC (pcsc-lite via pyscard): the transport for chips read over a contactless reader.

``PcscLink`` talks to the card in one reader; ``PcscMonitor`` reports readers and cards
coming and going. Neither knows what the chip is; the eMRTD driver builds on both.
"""

from devices.pcsc.link import (
    CardRemovedError,
    Disposition,
    NoCardError,
    NoReaderError,
    PcscError,
    PcscLink,
    Protocol,
    TransmitTimeout,
    choose_reader,
    find_reader,
    list_readers,
    looks_contactless,
)
from devices.pcsc.monitor import PcscMonitor

__all__ = [
    "CardRemovedError",
    "Disposition",
    "NoCardError",
    "NoReaderError",
    "PcscError",
    "PcscLink",
    "PcscMonitor",
    "Protocol",
    "TransmitTimeout",
    "choose_reader",
    "find_reader",
    "list_readers",
    "looks_contactless",
]
