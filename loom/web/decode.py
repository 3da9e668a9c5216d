"""A body's Content-Encoding undone a chunk at a time, never further than a limit.

A decompressor handed a whole network chunk gives all it holds at once: 64 KiB of a
gzip bomb are 64 MiB of zeros in memory before anything can count them. Here each
chunk gives at most one byte more than the room left, the rest of its input waiting
in the decompressor, so a body over the limit is known to be over it with no more
than the limit in memory.

``gzip`` and ``deflate`` (zlib-wrapped or raw, as servers send either) are undone;
these are the codings :data:`ACCEPT_ENCODING` asks for. ``identity``, no coding and
codings nobody asked for pass through as they are (a body that then cannot be read is
its reader's to say). Two codings stacked (``gzip, gzip``) are not undone: nobody
sends them but to hide a bomb inside a bomb.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["ACCEPT_ENCODING", "BoundedDecoder", "TooLarge", "Undecodable"]

ACCEPT_ENCODING = "gzip, deflate"
STEP = 256 * 1024  # the most bytes one call of the decompressor gives
_GZIP = frozenset({"gzip", "x-gzip"})
_PASS = frozenset({"", "identity"})


def _decompressor(coding: str) -> zlib._Decompress:
    if coding in _GZIP:
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    return zlib.decompressobj(-zlib.MAX_WBITS if coding == "raw deflate" else zlib.MAX_WBITS)


class Undecodable(ValueError):
    """The body is not in the coding its Content-Encoding names."""


class TooLarge(ValueError):
    """The decoded body is longer than the limit."""


class BoundedDecoder:
    """Undoes ``content_encoding`` (the header's value) chunk by chunk, and raises
    :class:`TooLarge` as soon as the decoded body would pass ``most`` bytes."""

    def __init__(self, content_encoding: str, most: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c not in _PASS]
        known = [c for c in codings if c in _GZIP or c == "deflate"]
        if len(known) > 1:
            raise Undecodable(
                f"the body is compressed {len(codings)} times over ({content_encoding})"
            )
        self.coding = known[0] if known else None
        self.most = most
        self.size = 0
        self._started = False
        self._zlib = _decompressor(self.coding) if self.coding else None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next ``chunk``, in pieces of at most :data:`STEP`."""
        decompressor = self._zlib
        if decompressor is None:
            yield self._count(chunk)
            return
        data = chunk
        while True:
            limit = min(self.most - self.size + 1, STEP)  # one byte over the room says "over"
            try:
                out = decompressor.decompress(data, limit)
            except zlib.error as exc:
                if self.coding != "deflate" or self._started:
                    raise Undecodable(str(exc)) from None
                self.coding = "raw deflate"  # sent without zlib's wrapper, as some servers do
                decompressor = self._zlib = _decompressor(self.coding)
                continue
            self._started = True
            yield self._count(out)
            data = decompressor.unconsumed_tail
            if not data and len(out) < limit:
                return  # a full piece may leave output inside the decompressor: ask again

    def flush(self) -> bytes:
        """What the decompressor still holds once the body has ended."""
        if self._zlib is None:
            return b""
        try:
            return self._count(self._zlib.flush())
        except zlib.error as exc:
            raise Undecodable(str(exc)) from None

    def _count(self, out: bytes) -> bytes:
        self.size += len(out)
        if self.size > self.most:
            raise TooLarge(f"more than {self.most} bytes")
        return out
