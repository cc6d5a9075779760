"""A binary log file's events, cut from its bytes as they arrive in pieces of any size.

A binlog file is the 4-byte magic, then events back to back; each event's 19-byte common
header holds its timestamp (bytes 0-3), type (4), server id (5-8), size (9-12, the whole
event, header included), next position (13-16) and flags (17-18), little-endian. Nothing
here checks where the bytes come from: the archive's reader checks them against their
sha256 before handing them over.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import NamedTuple

from drkit.binlog.protocol import MAGIC
from drkit.errors import BinlogArchiveError

HEADER_SIZE = 19


class FramedEvent(NamedTuple):
    position: int  # the event's offset in its file (the first is at 4, after the magic)
    kind: int  # the event type (drkit.binlog.events)
    timestamp: int  # when the source wrote it, in whole seconds since the epoch
    data: bytes  # the whole event, header included


class EventFramer:
    """Feed it a file's bytes in order; it yields each event once its last byte came.

    ``name`` says what the bytes are in an error (``Archived mysql-bin.000042``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer = bytearray()
        self._position = len(MAGIC)
        self._magic_read = False

    @property
    def pending(self) -> int:
        """Bytes fed that are not yet a whole event (nor the magic): at the file's end, a
        cut event."""
        return len(self._buffer)

    def feed(self, piece: bytes) -> Iterator[FramedEvent]:
        """The events ``piece`` completes, in file order (a generator: iterate it, or the
        piece is not taken)."""
        buffer = self._buffer
        buffer += piece
        if not self._magic_read and not self._read_magic():
            return
        start, position = 0, self._position
        try:
            # Cut by offset; the buffer is compacted once per piece, not once per event.
            while len(buffer) - start >= HEADER_SIZE:
                size = int.from_bytes(buffer[start + 9:start + 13], "little")
                if size < HEADER_SIZE:  # a size no event has: never a binary log's bytes
                    raise BinlogArchiveError(f"{self.name} is not a binary log: the event at "
                                             f"{position} says it is {size} bytes.")
                if len(buffer) - start < size:
                    break
                data = bytes(buffer[start:start + size])
                start += size
                event = _event((position, data[4], int.from_bytes(data[:4], "little"), data))
                position += size
                yield event
        finally:
            del buffer[:start]
            self._position = position

    def skip_to(self, position: int) -> None:
        """The next bytes fed are the file's from ``position`` (an event's start) on: the
        bytes before it are not read. The magic is taken as read past it."""
        if not self._magic_read and position == 0 or \
                self._magic_read and position == self._position + len(self._buffer):
            return  # nothing is skipped: the bytes go on where those fed ended
        if self._buffer:
            raise BinlogArchiveError(f"{self.name} cannot be read from {position}: the event "
                                     f"at {self._position} is not whole.")
        self._position, self._magic_read = position, True

    def _read_magic(self) -> bool:
        """Whether the file's magic was read (and taken off): False while it is not whole."""
        if len(self._buffer) < len(MAGIC):
            return False
        if not self._buffer.startswith(MAGIC):
            raise BinlogArchiveError(f"{self.name} is not a binary log.")
        del self._buffer[:len(MAGIC)]
        self._magic_read = True
        return True


# FramedEvent from a tuple without the keyword handling of its constructor: once per event.
_event = functools.partial(tuple.__new__, FramedEvent)
