"""One gzip member from pieces compressed apart, so an unchanged piece is never compressed again.

Each piece is compressed on its own as raw deflate and ended with a sync flush, which leaves the
stream on a byte boundary with no reference back into the piece before; such segments put end
to end are one valid deflate stream. The gzip header, a final empty block and the trailer (the
CRC-32 and length of all the text) make them one ordinary gzip member that any client inflates,
not a series of members that some stop reading after the first.

The trailer's CRC is combined from each piece's own CRC and length, so an unchanged piece is not
needed at all, not even its text: the caller keeps no copy of it. zlib releases the GIL while it
compresses and checksums, so `encode` is meant to run in a worker thread: a scrape then costs
the event loop nothing but the cache look-ups.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time, unknown OS
_FINAL = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty final block
_ZEROS = memoryview(bytes(1 << 16))


def _over_zeros(crc: int, n: int) -> int:
    """The CRC-32 `crc` continued over n zero bytes."""
    while n > 0:
        step = min(n, len(_ZEROS))
        crc = zlib.crc32(_ZEROS[:step], crc)
        n -= step
    return crc


@dataclass(frozen=True, slots=True)
class Segment:
    version: int
    data: bytes  # compressed
    crc: int  # of the text
    size: int  # of the text
    zeros_crc: int  # CRC-32 of `size` zero bytes: what combining with this piece needs


def combine(crc: int, segment: Segment) -> int:
    """The CRC of text A then the segment's text, from A's CRC: CRC is affine in its start
    value, so continuing from `crc` differs from starting at 0 by the same n zero bytes."""
    return segment.crc ^ _over_zeros(crc, segment.size) ^ segment.zeros_crc


def compress(data: bytes, version: int, level: int) -> Segment:
    z = zlib.compressobj(level, zlib.DEFLATED, -15)
    packed = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    return Segment(version, packed, zlib.crc32(data), len(data), _over_zeros(0, len(data)))


class GzipPieces:
    """The compressed segment of each named piece (a family, a header), by version."""

    def __init__(self, level: int = 1) -> None:
        self._level = level
        self._segments: dict[Hashable, Segment] = {}
        self._lock = threading.Lock()  # two scrapes at once may encode in two threads

    def current(self, key: Hashable, version: int) -> bool:
        """Whether the piece's segment of this version is at hand (its text is not needed)."""
        segment = self._segments.get(key)
        return segment is not None and segment.version == version

    def encode(self, pieces: Sequence[tuple[Hashable, int, bytes | None]]) -> list[bytes]:
        """The gzip member of the pieces' concatenation, as chunks to send in order.

        Each piece is (key, version, text); the text may be None when `current` said so.
        """
        out = [_HEADER]
        crc, size = 0, 0
        for key, version, data in pieces:
            if data is None:
                with self._lock:
                    segment = self._segments[key]
            else:
                segment = compress(data, version, self._level)
                with self._lock:
                    cached = self._segments.get(key)
                    if cached is None or cached.version <= version:
                        self._segments[key] = segment
            out.append(segment.data)
            crc = combine(crc, segment)
            size += segment.size
        out.append(_FINAL)
        out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return out
