"""Resident ID card (第二代居民身份证) reader with a GA/T 467 SAM on a serial line.

``protocol`` is the wire format, ``link`` the pyserial transport, ``record`` and ``tables``
turn the card text into an ``IdentityDocument``, ``photo`` loads the WLT decoder plug-in, and
``reader.Ga467IdCardReader`` is the driver (config ``driver = "ga467"``).
"""

from devices.ga467.reader import Ga467IdCardReader

__all__ = ["Ga467IdCardReader"]
