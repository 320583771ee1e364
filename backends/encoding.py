"""Content-Encoding of upstream answers: gzip and deflate decoded under a size cap, anything else refused.

Backends ask for `Accept-Encoding: identity`, but an upstream (or a proxy before it) may compress anyway.
Relayed as is, the client would get gzip bytes labelled JSON and the router would find no usage in them,
so the spend would be lost. `decode_body` decodes a whole JSON body; `StreamDecoder` decodes an SSE body
chunk by chunk. Both stop at `limit` decoded bytes (a decompression bomb is an upstream error, not
memory), and both raise `EncodingError` for an encoding they cannot decode.
"""

from __future__ import annotations

import zlib

IDENTITY = (b"", b"identity")
_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


class EncodingError(ValueError):
    """A body in an encoding the router cannot decode, a corrupt one, or one that decodes too large."""


def _decompressor(encoding: bytes) -> zlib._Decompress:
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise EncodingError(f"unsupported content-encoding {encoding[:32].decode('latin-1')!r}")
    return zlib.decompressobj(wbits)


def decode_body(body: bytes, encoding: bytes, limit: int) -> bytes:
    """The decoded body (at most `limit` bytes); `body` itself when it is not encoded."""
    if encoding in IDENTITY:
        return body
    d = StreamDecoder(encoding, limit)
    out = d.feed(body)
    d.finish()
    return out


class StreamDecoder:
    """Decodes an encoded body piece by piece; at most `limit` decoded bytes in all."""

    __slots__ = ("_d", "_fresh", "_left", "encoding")

    def __init__(self, encoding: bytes, limit: int) -> None:
        self.encoding = encoding
        self._d = _decompressor(encoding)
        self._left = limit
        self._fresh = True

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._d.decompress(data, self._left + 1)
        except zlib.error:
            if self._fresh and self.encoding == b"deflate":
                self._fresh = False
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
                return self.feed(data)
            raise EncodingError(f"corrupt {self.encoding.decode()} body") from None
        self._fresh = False
        self._left -= len(out)
        if self._left < 0 or self._d.unconsumed_tail:
            raise EncodingError("the decoded body is over the router's limit")
        return out

    def finish(self) -> None:
        """The encoded body has ended: it must have been complete."""
        if not self._d.eof:
            raise EncodingError(f"truncated {self.encoding.decode()} body")
