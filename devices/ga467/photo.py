"""Decoding the card's WLT photo through a vendor library, behind one small C ABI.

The 1024-byte photo on a resident ID card is in the WLT format, which only licensed vendor
libraries decode, each with its own function names and conventions. Zizhu loads one shared
library with a single entry point; a technician writes a few lines of C that call the
vendor's library and export::

    int zizhu_wlt_decode(const unsigned char *wlt, size_t wlt_len,
                         unsigned char *out, size_t out_cap, size_t *out_len);

- ``wlt``/``wlt_len``: the photo bytes exactly as the SAM returned them (1024 bytes).
- ``out``/``out_cap``: a buffer of ``OUT_CAPACITY`` bytes (1 MiB) for the decoded image.
- On success return 0, write a complete image file (BMP, PNG or JPEG — anything Pillow
  opens; vendors usually produce a 102x126 BMP) to ``out`` and its size to ``*out_len``.
- Any other return value is a failure; the driver then reports the photo as unavailable.
- The function must not keep ``wlt`` or ``out`` after it returns, write no files and print
  nothing: the photo is personal data. Calls are serialised by the driver, so a library
  that is not thread-safe is fine.

Configure the path as ``devices.id_card.photo_decoder``. Without it, or when a decode fails,
the document has ``photo=None`` and ``PhotoStatus.UNAVAILABLE`` — never a stand-in picture.
"""

from __future__ import annotations

import ctypes
import io
import logging
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

SYMBOL = "zizhu_wlt_decode"
OUT_CAPACITY = 1 << 20
# A photo larger than this in pixels is not an ID photo (guards Pillow against a bad shim).
_MAX_PIXELS = 4096 * 4096


class PhotoDecoder:
    """A loaded plug-in. Construction fails with ValueError, never later."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not Path(path).is_file():
            raise ValueError(f"photo_decoder {path!r}: no such file")
        try:
            library = ctypes.CDLL(str(Path(path).resolve()))
        except OSError as exc:
            raise ValueError(f"photo_decoder {path!r}: cannot load: {exc}") from exc
        try:
            function = getattr(library, SYMBOL)
        except AttributeError as exc:
            raise ValueError(f"photo_decoder {path!r}: does not export {SYMBOL}") from exc
        function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        function.restype = ctypes.c_int
        self._library = library
        self._function = function
        self._lock = threading.Lock()

    def decode(self, wlt: bytes) -> bytes | None:
        """The photo as PNG bytes, or None when the plug-in fails or returns no image."""
        out = ctypes.create_string_buffer(OUT_CAPACITY)
        out_len = ctypes.c_size_t(0)
        with self._lock:
            status = self._function(wlt, len(wlt), out, OUT_CAPACITY, ctypes.byref(out_len))
        if status != 0:
            log.warning("photo decoder returned %d; photo unavailable", status)
            return None
        if not 0 < out_len.value <= OUT_CAPACITY:
            log.warning("photo decoder reported %d bytes; photo unavailable", out_len.value)
            return None
        image_bytes = out.raw[:out_len.value]
        try:
            with Image.open(io.BytesIO(image_bytes)) as image:
                if image.width * image.height > _MAX_PIXELS:
                    raise ValueError("image too large")
                image.load()
                png = io.BytesIO()
                image.save(png, format="PNG")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            log.warning("photo decoder output is not an image; photo unavailable")
            return None
        finally:
            ctypes.memset(out, 0, OUT_CAPACITY)  # personal data: do not leave it in memory
        return png.getvalue()


def load(path: str | None) -> PhotoDecoder | None:
    return PhotoDecoder(path) if path else None
