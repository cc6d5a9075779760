"""Reading a mysqldump stream as it passes: per-table row counts and content digests.

The manifest must describe exactly what the dump contains, from the same snapshot, so the
numbers come from the SQL text itself rather than from a second query at another moment.
The stream is read by :mod:`drkit.stream.lexer`, the same lexer the restore uses.

A table's digest is the SHA-256 of its ``VALUES`` rows in dump order, one row per line,
whatever the statement layout (MySQL writes ``VALUES (..),(..)``; MariaDB puts each row on a
line), preceded by the INSERTs' column list where mysqldump writes one (generated and
invisible columns). The restore proof dumps the restored table and scans it the same way.
A table whose rows have no order a dump can reproduce (no primary key, and no unique key
over NOT NULL columns) also gets an order-free digest: the sums of its rows' CRC-32 and
Adler-32, computed in C over all rows at once. It finds a changed, missing or extra row of a
restored copy; the proof of the backup itself is the ordered SHA-256 verify checks.

Cheap enough to run on every byte: a row's content is hashed, never parsed, except for
counting rows in single-line INSERTs, where a ``),(`` can sit inside a string and the quotes
must be paired (with numpy, see :func:`_rows_one_per_line`).
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import SYSTEM_SCHEMAS, Rewriter
from drkit.stream.schema import schema_entry
from drkit.stream.statement import Statement, has_row_order_key

if TYPE_CHECKING:
    import numpy

_TRAILER = b"-- Dump completed"
_HEAD_LIMIT = _END_LIMIT = 64 * 1024
_SNAPSHOT = re.compile(rb"^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+);",
                       re.MULTILINE)
_SNAPSHOT_GTID = re.compile(rb"^-- SET GLOBAL gtid_slave_pos='([^']*)';", re.MULTILINE)
_MODULUS = 2**64


@dataclass
class TableContent:
    """A table's rows as the dump holds them: a count, the SHA-256 of the rows in dump order
    one row per line (``(..),\n(..)``), and for tables without a row order the order-free
    sums of each row's CRC-32 and Adler-32."""

    rows: int = 0
    order_free: bool = False
    columns: tuple[str, ...] | None = None
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)
    _crc: int = 0
    _adler: int = 0

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    @property
    def unordered_digest(self) -> str | None:
        return f"{self._crc:016x}{self._adler:016x}" if self.order_free else None

    def add(self, statement: Statement) -> int:
        """Count and hash one INSERT's rows; return how many it holds."""
        if statement.columns is not None and self.columns is None and not self.rows:
            self.columns = statement.columns
            listed = b"columns " + ",".join(statement.columns).encode("utf-8", "surrogateescape")
            self._digest.update(listed + b"\n")
            self._crc, self._adler = zlib.crc32(listed), zlib.adler32(listed)
        if self.rows:  # rows of an earlier statement: join as if it were one
            self._digest.update(b",\n")
        sql = statement.sql
        after = sql[statement.values:statement.values + 1]
        start = statement.values + (after in (b" ", b"\n"))
        newlines = statement.newlines - sql.count(b"\n", 0, start)
        if after == b"\n" or newlines:
            # MariaDB: a row per line ("VALUES\n(..),\n(..)", or "VALUES (..),\n(..)" after
            # a column list), and a raw newline never occurs inside a value, so rows are
            # counted and hashed without copies.
            count = newlines + 1
            self._digest.update(memoryview(sql)[start:])
            lines = sql[start:] if self.order_free else b""
        elif sql.find(b"),(", start) < 0:  # one row (a huge one, often): no copies
            count, lines = 1, sql[start:] if self.order_free else b""
            self._digest.update(memoryview(sql)[start:])
        else:
            count, lines = _rows_one_per_line(sql[start:])
            self._digest.update(lines)
        if self.order_free:  # per row, but every loop in C
            rows = bytes(lines).split(b",\n")
            self._crc = (self._crc + sum(map(zlib.crc32, rows))) % _MODULUS
            self._adler = (self._adler + sum(map(zlib.adler32, rows))) % _MODULUS
        self.rows += count
        return count


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
        self.scanner.close()
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
    """Feed it the SQL stream in chunks of any size, then ``close``; read ``tables`` and
    ``complete``. ``planned`` counts the rows restore's own pipeline (lexer and Azure
    rewrites) would load per table; :meth:`disagreements` names tables where they differ."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], TableContent] = {}
        self.definitions: dict[str, str] = {}  # "table db.t" / "view db.v" ... -> CREATE text
        self.planned: Counter[tuple[str, str]] = Counter()
        self.time_zones: set[str] = set()  # named zones the dump sets (not offsets)
        self.databases: set[str] = set()  # those it creates or uses
        self.statements = 0
        self._lexer = SqlLexer()
        self._rewriter = Rewriter(azure=True)
        self._tail = b""
        self._head: bytes | None = b""  # the first bytes, until the snapshot's coordinates
        self.snapshot: dict[str, str | int | None] | None = None
        self._end = b""

    @property
    def database(self) -> str:
        return self._lexer.database

    @property
    def complete(self) -> bool:
        """Whether the stream's last line is mysqldump's completion trailer."""
        return ends_with_trailer(self._tail)

    def feed(self, chunk: bytes) -> None:
        self._tail = keep_tail(self._tail, chunk)
        if self._head is not None:
            self._read_snapshot(chunk)
        if self.snapshot:  # its GTID comes at the end of the dump
            self._end = (self._end + chunk[-_END_LIMIT:])[-_END_LIMIT:]
        for statement in self._lexer.feed(chunk):
            self._statement(statement)

    def _read_snapshot(self, chunk: bytes) -> None:
        """mysqldump --master-data=2 writes, as comments before the first database, the
        binary log coordinates of its consistent snapshot (MariaDB reads them inside the
        snapshot from binlog_snapshot_file/position: no global lock)."""
        self._head += chunk[:_HEAD_LIMIT]
        if match := _SNAPSHOT.search(self._head):
            self.snapshot = {"file": match.group(1).decode(), "position": int(match.group(2)),
                             "gtid": None}
        if self.snapshot or len(self._head) >= _HEAD_LIMIT or b"\nCREATE " in self._head:
            self._head = None

    def close(self) -> None:
        """Read the last statement; raises LexError if the stream ends inside one."""
        for statement in self._lexer.close():
            self._statement(statement)
        if self.snapshot and (gtid := _SNAPSHOT_GTID.search(self._end)):
            self.snapshot["gtid"] = gtid.group(1).decode()

    def disagreements(self) -> list[str]:
        """Tables whose rows the restore would not load as the manifest counts them."""
        return [f"{db}.{table}: {content.rows} rows in the dump, "
                f"{self.planned[(db, table)]} loaded by a restore"
                for (db, table), content in self.tables.items()
                if db not in SYSTEM_SCHEMAS and content.rows != self.planned[(db, table)]]

    def _statement(self, statement: Statement) -> None:
        self.statements += 1
        if statement.kind == "create_table" and statement.table is not None:
            table = self._table(statement.database, statement.table)
            table.order_free = not has_row_order_key(statement.sql)
        if (entry := schema_entry(statement)) is not None:
            self.definitions[entry[0]] = entry[1]
        if statement.kind in ("use", "create_database") and statement.database:
            self.databases.add(statement.database)
        if statement.kind == "session" and (zone := named_time_zone(statement.sql)):
            self.time_zones.add(zone)
        rows = self._table(statement.database, statement.table).add(statement) \
            if statement.kind == "insert" else 0
        planned = self._rewriter.rewrite(statement)  # what restore would run (loads nothing)
        if planned is not None and planned.kind == "insert":
            self.planned[(statement.database, statement.table)] += rows

    def _table(self, database: str, name: str) -> TableContent:
        key = (database, name)
        if key not in self.tables:
            self.tables[key] = TableContent()
        return self.tables[key]


# mysqldump sets the zone an event or routine was made in before creating it
# (client/mysqldump.cc: switch_time_zone); offsets and SYSTEM need no time-zone tables.
_TIME_ZONE = re.compile(rb"^(?:/\*!\d+ )?SET\s+(?:@@(?:SESSION\.)?)?time_zone\s*=\s*'([^']*)'",
                        re.I)
_OFFSET = re.compile(r"^[+-]\d{1,2}:\d{2}$")


def named_time_zone(sql: bytes | bytearray) -> str | None:
    """The named time zone a ``SET time_zone = '...'`` statement sets, if any."""
    match = _TIME_ZONE.match(sql)
    if match is None:
        return None
    zone = match.group(1).decode("utf-8", "replace")
    return None if _OFFSET.match(zone) or zone.upper() == "SYSTEM" else zone


def keep_tail(tail: bytes, chunk: bytes) -> bytes:
    """The last bytes of a stream, enough to hold its last line."""
    return (tail + chunk[-256:])[-256:]


def ends_with_trailer(tail: bytes) -> bool:
    """Whether the last line is mysqldump's ``-- Dump completed ...``."""
    return tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].startswith(_TRAILER)


def _rows_one_per_line(values: bytes | bytearray) -> tuple[int, bytes | memoryview]:
    """Rows in a single-line ``(..),(..)`` and the same rows one per line.

    A ``),(`` may sit inside a string; only those outside string literals separate rows.
    Pairing the quotes byte by byte in Python would cost more than the rest of a backup, so
    numpy finds every quote and every ``),(`` at memory speed, drops the quotes a backslash
    escapes (an odd run of backslashes before them), and counts the quotes before each
    ``),(``: an odd count puts it inside a string.
    """
    import numpy as np  # here: a dump with a row per line (MariaDB's) never needs it

    data = np.frombuffer(values, np.uint8)
    closing = np.flatnonzero(data[:-2] == _CLOSE)
    separators = closing[(data[closing + 1] == _COMMA) & (data[closing + 2] == _OPEN)]
    quotes = _unescaped_quotes(data)
    inside = (np.searchsorted(quotes, separators) & 1).astype(bool)
    count = len(separators) - int(np.count_nonzero(inside)) + 1
    if inside.any():  # a "),(" inside a string stays on its row
        cuts = (separators[~inside] + 2).tolist()  # after "),"
        return count, b"\n".join(values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)],
                                                                strict=True))
    if data[0] == _OPEN and np.count_nonzero(data == _OPEN) == len(separators) + 1:
        # Every "(" starts a row (the usual case): a one-byte replace is the fastest cut.
        return count, memoryview(values.replace(b"(", b"\n("))[1:]
    return count, values.replace(b"),(", b"),\n(")


_OPEN, _CLOSE, _COMMA, _QUOTE, _BACKSLASH = b"(),'\\"


def _unescaped_quotes(data: numpy.ndarray) -> numpy.ndarray:
    """Positions of the single quotes that open or close a string (mysqldump escapes a
    quote inside one as ``\\'``; ``\\\\'`` is an escaped backslash, then a real quote)."""
    import numpy as np

    quotes = np.flatnonzero(data == _QUOTE)
    escaped = np.zeros(len(quotes), bool)
    behind = quotes - 1
    run = (behind >= 0) & (data[np.maximum(behind, 0)] == _BACKSLASH)
    while run.any():  # each step looks one byte further back, only where backslashes run on
        escaped ^= run
        behind -= 1
        run &= (behind >= 0) & (data[np.maximum(behind, 0)] == _BACKSLASH)
    return quotes[~escaped]
