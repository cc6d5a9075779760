"""Compression codecs, chosen by name from a registry.

gzip is the default so the seed's ``gunzip | mysql`` restore keeps working. It is written as
a series of independent gzip members compressed on all cores (zlib-ng, which releases the
GIL) and concatenated in order: still one valid ``.gz`` that gunzip and Python read as one
stream. zstd uses the library's own worker threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import zstandard
from zlib_ng import zlib_ng

_MEMBER_SIZE = 4 * 1024 * 1024


class Compressor(Protocol):
    def compress(self, data: bytes) -> list[bytes]:
        """Feed input; return the output that is ready, in order."""

    def flush(self) -> list[bytes]:
        """Finish the stream; return the rest of the output."""


class ParallelGzipCompressor:
    """Compresses fixed-size slices as gzip members on a thread pool, emitting them in order.

    Memory stays bounded: at most ``2 * workers`` slices are in flight.
    """

    def __init__(self, level: int, workers: int | None = None,
                 member_size: int = _MEMBER_SIZE) -> None:
        self.level = level
        self.member_size = member_size
        workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gzip")
        self._max_pending = 2 * workers
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()

    def _member(self, data: bytes) -> bytes:
        # compressobj (unlike zlib_ng.compress) releases the GIL, so members compress in parallel.
        deflate = zlib_ng.compressobj(self.level, zlib_ng.DEFLATED, 31)
        return deflate.compress(data) + deflate.flush()

    def compress(self, data: bytes) -> list[bytes]:
        self._buffer += data
        while len(self._buffer) >= self.member_size:
            member = bytes(self._buffer[: self.member_size])
            del self._buffer[: self.member_size]
            self._pending.append(self._pool.submit(self._member, member))
        return self._ready()

    def flush(self) -> list[bytes]:
        if self._buffer or not self._pending:
            self._pending.append(self._pool.submit(self._member, bytes(self._buffer)))
            self._buffer.clear()
        out = self._ready(drain=True)
        self._pool.shutdown()
        return out

    def _ready(self, drain: bool = False) -> list[bytes]:
        """Finished members from the front; waits only to keep the queue bounded, or to drain."""
        out = []
        while self._pending and (
            drain or self._pending[0].done() or len(self._pending) > self._max_pending
        ):
            out.append(self._pending.popleft().result())
        return out

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


class ZstdCompressor:
    def __init__(self, level: int, workers: int | None = None) -> None:
        threads = workers or min(4, os.cpu_count() or 1)
        # 1 MiB jobs: as fast as the default here, with a fifth of the memory (bench/).
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=1024 * 1024, write_checksum=1)
        self._stream = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def compress(self, data: bytes) -> list[bytes]:
        out = self._stream.compress(data)
        return [out] if out else []

    def flush(self) -> list[bytes]:
        return [self._stream.flush()]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Codec:
    name: str
    extension: str
    content_type: str

    def compressor(self, level: int) -> ParallelGzipCompressor | ZstdCompressor:
        return _COMPRESSORS[self.name](level)

    def decompress(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Stream out every member/frame, in pieces of at most a few MiB.

        Raises :class:`TruncatedStreamError` if the input stops inside a member or frame,
        :class:`CorruptStreamError` if it is not valid compressed data.
        """
        return _DECOMPRESSORS[self.name](chunks)


class TruncatedStreamError(Exception):
    pass


class CorruptStreamError(Exception):
    pass


_PIECE = 8 * 1024 * 1024
_GZIP_ANY = 47  # 32 + 15: a gzip header, any window size


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflate, fed = zlib_ng.decompressobj(_GZIP_ANY), False
    try:
        for data in chunks:
            while data:
                fed = True
                # max_length bounds what one call may produce from a very compressible input.
                yield inflate.decompress(data, _PIECE)
                if inflate.unconsumed_tail:
                    data = inflate.unconsumed_tail
                elif inflate.eof:  # the member is complete; the next one may follow
                    data = inflate.unused_data
                    inflate, fed = zlib_ng.decompressobj(_GZIP_ANY), False
                else:
                    data = b""
    except zlib_ng.error as exc:
        raise CorruptStreamError(f"not valid gzip data ({exc})") from None
    if fed:
        raise TruncatedStreamError("the gzip stream ends inside a member")


def _unzstd(chunks: Iterable[bytes]) -> Iterator[bytes]:
    frame, fed = zstandard.ZstdDecompressor().decompressobj(), False
    try:
        for chunk in chunks:
            # Small slices bound the output of one call (decompressobj has no max_length).
            for start in range(0, len(chunk), 256 * 1024):
                data = chunk[start:start + 256 * 1024]
                while data:
                    fed = True
                    yield frame.decompress(data)
                    if frame.eof:
                        data = frame.unused_data
                        frame, fed = zstandard.ZstdDecompressor().decompressobj(), False
                    else:
                        data = b""
    except zstandard.ZstdError as exc:
        raise CorruptStreamError(f"not valid zstd data ({exc})") from None
    if fed:
        raise TruncatedStreamError("the zstd stream ends inside a frame")


_COMPRESSORS = {"gzip": ParallelGzipCompressor, "zstd": ZstdCompressor}
_DECOMPRESSORS = {"gzip": _gunzip, "zstd": _unzstd}

CODECS: dict[str, Codec] = {
    "gzip": Codec("gzip", ".sql.gz", "application/gzip"),
    "zstd": Codec("zstd", ".sql.zst", "application/zstd"),
}
