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
        return _members(_MEMBERS[self.name], chunks)


class TruncatedStreamError(Exception):
    pass


class CorruptStreamError(Exception):
    pass


_PIECE = 8 * 1024 * 1024  # most output one step may produce (about; see _ZstdMember)
_GZIP_ANY = 47  # 32 + 15: a gzip header, any window size


class _GzipMember:
    name, unit, error = "gzip", "member", zlib_ng.error

    def __init__(self) -> None:
        self._inflate = zlib_ng.decompressobj(_GZIP_ANY)

    def step(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Output, the input left over, and whether this member is complete."""
        out = self._inflate.decompress(data, _PIECE)
        if self._inflate.unconsumed_tail:
            return out, self._inflate.unconsumed_tail, False
        return out, self._inflate.unused_data, self._inflate.eof


class _ZstdMember:
    """zstd's decompressobj has no output limit, so input is fed in slices sized by the
    ratio seen so far: small at first, about _PIECE of output per step after that."""

    name, unit, error = "zstd", "frame", zstandard.ZstdError

    def __init__(self) -> None:
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._slice = 1024

    def step(self, data: bytes) -> tuple[bytes, bytes, bool]:
        piece, rest = data[: self._slice], data[self._slice:]
        out = self._frame.decompress(piece)
        ratio = max(1.0, len(out) / len(piece))
        self._slice = int(min(256 * 1024, max(1024, _PIECE / ratio)))
        if self._frame.eof:
            return out, self._frame.unused_data + rest, True
        return out, rest, False


def _members(member_type: type[_GzipMember | _ZstdMember],
             chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress every member (gzip) or frame (zstd) of a stream, in bounded pieces."""
    member, fed = member_type(), False
    try:
        for data in chunks:
            while data:
                fed = True
                out, data, finished = member.step(data)
                if out:
                    yield out
                if finished:  # the next member may follow
                    member, fed = member_type(), False
    except member_type.error as exc:
        raise CorruptStreamError(f"not valid {member_type.name} data ({exc})") from None
    if fed:
        raise TruncatedStreamError(
            f"the {member_type.name} stream ends inside a {member_type.unit}")


_COMPRESSORS = {"gzip": ParallelGzipCompressor, "zstd": ZstdCompressor}
_MEMBERS = {"gzip": _GzipMember, "zstd": _ZstdMember}

CODECS: dict[str, Codec] = {
    "gzip": Codec("gzip", ".sql.gz", "application/gzip"),
    "zstd": Codec("zstd", ".sql.zst", "application/zstd"),
}
