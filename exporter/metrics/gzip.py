"""One gzip member from pieces compressed apart, so an unchanged piece is never compressed again.

Each piece is compressed on its own as raw deflate and ended with a sync flush, which leaves the
stream on a byte boundary with no reference back into the piece before; such segments put end
to end are one valid deflate stream. The gzip header, a final empty block and the trailer (the
CRC-32 and length of all the text) make them one ordinary gzip member that any client inflates,
not a series of members that some stop reading after the first.

zlib releases the GIL while it compresses and checksums, so `encode` is meant to run in a worker
thread: a scrape then costs the event loop nothing but the cache look-ups.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Hashable, Sequence

_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time, unknown OS
_FINAL = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty final block


def _segment(data: bytes, level: int) -> bytes:
    z = zlib.compressobj(level, zlib.DEFLATED, -15)
    return z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)


class GzipPieces:
    """Compresses pieces that keep their identity while unchanged, each once per change.

    A piece is named by a key (a family, a header); its compressed segment is reused for as long
    as the key maps to the very same bytes object (`is`, not `==`: the caller makes a new
    object exactly when a piece changes, and comparing 10 MB would cost what it saves).
    """

    def __init__(self, level: int = 1) -> None:
        self._level = level
        self._segments: dict[Hashable, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()  # two scrapes at once may encode in two threads

    def encode(self, pieces: Sequence[tuple[Hashable, bytes]]) -> list[bytes]:
        """The gzip member of the pieces' concatenation, as chunks to send in order."""
        out = [_HEADER]
        crc, size = 0, 0
        for key, data in pieces:
            with self._lock:
                cached = self._segments.get(key)
            if cached is not None and cached[0] is data:
                segment = cached[1]
            else:
                segment = _segment(data, self._level)
                with self._lock:
                    self._segments[key] = (data, segment)
            out.append(segment)
            crc = zlib.crc32(data, crc)
            size += len(data)
        out.append(_FINAL)
        out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return out

    def forget(self, keys: set[Hashable]) -> None:
        """Drop the segments of pieces that are gone."""
        with self._lock:
            for key in keys:
                self._segments.pop(key, None)
