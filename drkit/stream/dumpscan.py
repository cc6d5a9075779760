"""Reading a mysqldump stream as it passes: per-table row counts and content digests.

The manifest must describe exactly what the dump contains, from the same snapshot, so the
numbers come from the SQL text itself rather than from a second query at another moment.
A table's digest is the SHA-256 of its ``VALUES`` rows in dump order, with the statement
boundaries and line breaks removed, so it does not depend on how the client split rows into
statements or lines (MySQL writes ``VALUES (..),(..)``; MariaDB puts each row on a line).
The restore proof dumps the restored table and scans it the same way.

Cheap enough to run on every byte: it only looks at statement starts; a row's content is
hashed, never parsed, except for counting rows in single-line INSERTs, where a ``),(`` can
sit inside a string and the quotes must be paired.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from dataclasses import dataclass, field

_INSERT = b"INSERT INTO `"
_VALUES = b"` VALUES"
_TRAILER = b"-- Dump completed"
_USE = re.compile(rb"^USE `((?:[^`]|``)+)`;$", re.M)
_CREATE_TABLE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)`", re.M)
# Longest statement we keep whole while waiting for its end; mysqldump's own limit
# (net_buffer_length) is 16 MiB.
_MAX_STATEMENT = 64 * 1024 * 1024


@dataclass
class TableContent:
    """A table's rows as the dump holds them: a count and the SHA-256 of the rows in dump
    order, one row per line (``(..),\n(..)``), whatever the statement layout."""

    rows: int = 0
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def start_statement(self) -> None:
        if self.rows:  # rows of an earlier statement: join as if it were one
            self._digest.update(b",\n")


class BackgroundScan:
    """The SQL stream's sha256, size and scan, on a thread of their own.

    Hashing and scanning then overlap with compression on the caller's thread instead of
    taking turns with it; a bounded queue keeps memory at a few chunks.
    """

    def __init__(self, depth: int = 8) -> None:
        self.scanner = DumpScanner()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dumpscan", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def finish(self) -> DumpScanner:
        """Wait for the last chunk; re-raise what the thread met."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.scanner

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                self.sha256.update(chunk)
                self.size += len(chunk)
                self.scanner.feed(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer
                self._error = exc


class DumpScanner:
    """Feed it the SQL stream in chunks of any size; read ``tables`` and ``complete`` at the end."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], TableContent] = {}
        self.database = ""
        self._pending = b""
        self._tail = b""
        self._streaming: TableContent | None = None  # inside a one-row-per-line INSERT

    @property
    def complete(self) -> bool:
        """Whether the stream's last line is mysqldump's completion trailer."""
        return ends_with_trailer(self._tail)

    def feed(self, chunk: bytes) -> None:
        self._tail = keep_tail(self._tail, chunk)
        data = self._pending + chunk if self._pending else chunk
        consumed = self._scan(data)
        self._pending = data[consumed:]
        if len(self._pending) > _MAX_STATEMENT:
            raise ValueError("an INSERT statement in the dump is longer than 64 MiB")

    def _scan(self, data: bytes) -> int:
        """Process what ``data`` holds of complete lines and statements; return how far."""
        pos = 0  # always at the start of a line, or inside a streamed INSERT
        while True:
            if self._streaming is not None:
                end = statement_end(data, pos)
                # Without the end in sight, keep the last byte back: it may be the ';'.
                stop = end if end >= 0 else max(pos, len(data) - 1)
                self._rows(self._streaming, data, pos, stop)
                if end < 0:
                    return stop
                self._streaming = None
                pos = end + 2
                continue
            start = _find_insert(data, pos)
            if start < 0:  # only DDL ahead: take it up to the last full line
                end = data.rfind(b"\n", pos) + 1
                if end > pos:
                    self._ddl(data[pos:end])
                    pos = end
                return pos
            self._ddl(data[pos:start])
            name_end = data.find(_VALUES, start)
            values = name_end + len(_VALUES)
            if name_end < 0 or values >= len(data):
                return start
            table = self._table(_name(data[start + len(_INSERT):name_end]))
            if data[values] == ord("\n"):
                # MariaDB: one row per line already, and a raw newline never occurs inside
                # a value, so rows are counted and hashed as they pass, without copies.
                table.start_statement()
                table.rows += 1
                self._streaming = table
                pos = values + 1
                continue
            end = statement_end(data, values)
            if end < 0:  # MySQL: the whole statement is needed to pair the quotes
                return start
            rows, one_per_line = _rows_one_per_line(data[values:end].lstrip(b" "))
            table.start_statement()
            table.rows += rows
            table._digest.update(one_per_line)
            pos = end + 2

    @staticmethod
    def _rows(table: TableContent, data: bytes, start: int, stop: int) -> None:
        if stop > start:
            table.rows += data.count(b"\n", start, stop)
            table._digest.update(memoryview(data)[start:stop])

    def _ddl(self, text: bytes) -> None:
        for match in _USE.finditer(text):
            self.database = _name(match.group(1))
        for match in _CREATE_TABLE.finditer(text):
            self._table(_name(match.group(1)))

    def _table(self, name: str) -> TableContent:
        key = (self.database, name)
        if key not in self.tables:
            self.tables[key] = TableContent()
        return self.tables[key]


def keep_tail(tail: bytes, chunk: bytes) -> bytes:
    """The last bytes of a stream, enough to hold its last line."""
    return (tail + chunk)[-256:]


def ends_with_trailer(tail: bytes) -> bool:
    """Whether the last line is mysqldump's ``-- Dump completed ...``."""
    return tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].startswith(_TRAILER)


def statement_end(data: bytes, pos: int) -> int:
    """Index of the ``;\n`` that ends an INSERT, or -1 if ``data`` does not hold it yet.

    A raw newline never occurs inside a dumped value, so the first ``;`` followed by a
    newline is the end. Searching for the single byte is much faster than for the pair.
    """
    end = data.find(b";", pos)
    while end >= 0:
        following = data[end + 1:end + 2]
        if following == b"\n":
            return end
        if not following:
            return -1
        end = data.find(b";", end + 1)
    return -1


def _find_insert(data: bytes, pos: int) -> int:
    """Where the next line starting an INSERT begins, at or after line start ``pos``; or -1."""
    if data.startswith(_INSERT, pos):
        return pos
    found = data.find(b"\n" + _INSERT, pos)
    return found + 1 if found >= 0 else -1


_STRING_OR_SEPARATOR = re.compile(rb"'(?:[^'\\]|\\.)*'|\),\(")


def _rows_one_per_line(values: bytes) -> tuple[int, bytes]:
    """Rows in a single-line ``(..),(..)`` and the same rows one per line.

    A ``),(`` may sit inside a string; only those outside string literals separate rows.
    """
    # Drop escaped backslashes, then escaped quotes; the quotes left delimit strings, and
    # every other piece between them lies outside a string.
    plain = values.replace(b"\\\\", b"").replace(b"\\'", b"")
    separators = b"".join(plain.split(b"'")[0::2]).count(b"),(")
    if separators == values.count(b"),("):  # the usual case: no string holds a "),("
        return separators + 1, values.replace(b"),(", b"),\n(")
    return separators + 1, _STRING_OR_SEPARATOR.sub(
        lambda m: m.group(0) if m.group(0).startswith(b"'") else b"),\n(", values)


def _name(quoted: bytes) -> str:
    return quoted.replace(b"``", b"`").decode("utf-8")
