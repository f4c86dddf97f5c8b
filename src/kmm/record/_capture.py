"""Raw websocket capture: ``capture.jsonl.gz``, one JSON object per frame.

Format (documented for replay): a single gzip member of UTF-8 lines, each
``{"recv_ns": 1795435200123456789, "frame": "<the frame text>"}`` — ``recv_ns`` is the receive
time in ns since the epoch (an exact integer), ``frame`` the websocket text frame as received.

The writer compresses batches and ends every flush with ``Z_SYNC_FLUSH``, which byte-aligns the
deflate stream: everything up to the last flush can be decompressed even though the file has no
gzip trailer until it is closed. :func:`iter_capture` reads such a file (cut short by a crash)
up to its last complete line.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

import orjson

__all__ = ["CaptureWriter", "CapturedFrame", "iter_capture"]

_COMPRESS_LEVEL: Final = 3  # the writer thread's CPU matters more than the last 10 % of size
_READ_CHUNK: Final = 1 << 16


class CapturedFrame(NamedTuple):
    """One captured websocket frame."""

    recv_ns: int
    frame: str


class CaptureWriter:
    """Appends frames to a gzip JSON-lines file (writer thread only)."""

    __slots__ = ("_chunks", "_gzip", "_raw")

    def __init__(self, path: Path) -> None:
        self._raw = path.open("xb")
        try:
            self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=_COMPRESS_LEVEL)
        except BaseException:
            self._raw.close()
            raise
        self._chunks: list[bytes] = []

    def add(self, recv_ns: int, frame: bytes | str) -> None:
        """Buffers one frame; it reaches the file at the next :meth:`flush`.

        Raises:
            UnicodeDecodeError: if ``frame`` is bytes that are not UTF-8 (text frames are).
        """
        text = frame if isinstance(frame, str) else frame.decode("utf-8")
        self._chunks.append(orjson.dumps({"recv_ns": recv_ns, "frame": text}))

    def flush(self) -> None:
        """Compresses the buffered frames and sync-flushes them to the file."""
        if self._chunks:
            self._chunks.append(b"")  # a newline after the last line too
            data = b"\n".join(self._chunks)
            self._chunks.clear()
            self._gzip.write(data)
            self._gzip.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> None:
        """Flushes, writes the gzip trailer and closes the file."""
        try:
            self.flush()
            self._gzip.close()
        finally:
            self._raw.close()


def iter_capture(path: Path) -> Iterator[CapturedFrame]:
    """The frames of a capture file in order, up to its last complete line.

    A file cut short by a crash (no gzip trailer, maybe a partial block) is read up to the
    last frame that was flushed whole.

    Raises:
        zlib.error: if the file is not gzip data.
        orjson.JSONDecodeError: if a complete line is not a capture record.
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending = b""
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            *lines, pending = (pending + decompressor.decompress(chunk)).split(b"\n")
            for line in lines:
                record = orjson.loads(line)
                yield CapturedFrame(record["recv_ns"], record["frame"])
