"""Statements gathered for one round trip to the target.

Rows of consecutive events into one table join one statement where SQL allows it (an
INSERT's VALUES, a DELETE's IN list by primary key, an UPDATE joined with its new values
by primary key: a :class:`RowsStatement`); other statements go one by one. All are sent as
one multi-statement query once ``limit`` bytes are gathered, or when asked (a commit, DDL).
Rows a DELETE or UPDATE expected but did not find are counted in ``skipped_rows``.

Inserted rows gathered as LOAD DATA text (:class:`LoadStatement`) go, when there are at
least ``LOAD_ROWS`` of them, as ``LOAD DATA LOCAL INFILE`` from memory
(:mod:`drkit.mysql.localrows`): the target spends about half of what it spends parsing
them as an INSERT. LOCAL makes the server skip, with a warning, what an INSERT would
refuse (a duplicate key, a foreign key not found) or change (a value cut to fit): so the
load is the last statement of its round trip, after a savepoint, and when the target did
not take every row without a warning, it is undone and the same rows go as the INSERT
they would have been, which fails or warns as the replay always did. Fewer rows go as that
INSERT at once: a load costs a round trip more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymysql.cursors import Cursor

from drkit.binlog.worker import ConnectionWorker

# Gathered inserted rows go as LOAD DATA from this many on (bench/binlog_bench.py).
LOAD_ROWS = 500
LOAD_NAME = "drkit-rows"  # what the LOAD statement asks the client for (never a file)
_LOAD_SAVEPOINT = b"SAVEPOINT drkit_load"
_FIRST_ROUND_TRIP_PART = 8  # the first round trip: an eighth of the limit


@dataclass(frozen=True)
class RowsStatement:
    """A statement of many rows: ``head``, the rows joined by ``separator``, ``tail``."""

    head: bytes
    tail: bytes = b""
    separator: bytes = b", "
    # Rows it does not find are counted (a DELETE's, an UPDATE's): what each row found adds
    # to the statement's count of rows (CLIENT.FOUND_ROWS), 2 for an INSERT ... ON
    # DUPLICATE KEY UPDATE, whose row inserted, or found as it would be made, adds 1; 0: not
    # counted.
    found_each: int = 0
    most: int = 0  # rows in one statement at most (0: as many as the batch's bytes allow)


@dataclass(frozen=True)
class LoadStatement:
    """Inserted rows as LOAD DATA text (``statement`` loads them), each row a line; and
    the INSERT they are otherwise (``insert``, its rows from each event's literals)."""

    statement: bytes
    insert: RowsStatement


LiteralRows = Callable[[], list[bytes]]  # an event's rows as an INSERT's, read again


@dataclass(frozen=True)
class _Load:
    """Rows gathered for one LOAD DATA, and the INSERTs of the same rows."""

    shape: LoadStatement
    text: bytes
    rows: int
    literal_rows: tuple[LiteralRows, ...]

    def inserts(self, limit: int) -> list[bytes]:
        return _inserts(self.shape.insert, [row for rows in self.literal_rows for row in rows()],
                        limit)


class StatementBatch:
    def __init__(self, worker: ConnectionWorker, limit: int) -> None:
        self._worker, self._limit = worker, limit
        # The first round trips are smaller, doubling up to ``limit``: the target starts on
        # the first rows while the next are read, not after a whole ``limit`` of them.
        self._flush_at = max(limit // _FIRST_ROUND_TRIP_PART, 1)
        self.skipped_rows = 0
        self.loaded_rows = 0  # rows the target took by LOAD DATA
        self.unloaded_rows = 0  # rows it did not take so, sent again as INSERTs
        self.gathered = 0  # bytes of statements gathered since the start, sent or not
        self.discard()

    def multirow(self, statement: RowsStatement, rows: list[bytes],
                 keys: list[bytes] | None = None) -> None:
        """Rows for a statement of many, joined with those before it for the same
        statement. ``keys``, one a row, say which row of the table each changes: a row
        changed again starts a statement of its own, after the one that changed it first
        (one statement changes a row once)."""
        if statement != self._shape:
            self.close_multirow()
            self._shape = statement
        fits = not statement.most or len(self._rows) + len(rows) <= statement.most
        if fits and (keys is None or (self._keys.isdisjoint(keys) and
                                      len(set(keys)) == len(keys))):
            self._rows.extend(rows)
            self._keys.update(keys or ())
        else:
            for index, row in enumerate(rows):
                key = keys[index] if keys is not None else None
                if (key is not None and key in self._keys) or \
                        (statement.most and len(self._rows) >= statement.most):
                    self.close_multirow()
                    self._shape = statement
                if key is not None:
                    self._keys.add(key)
                self._rows.append(row)
        self._gathered(sum(len(row) for row in rows))

    def load(self, statement: LoadStatement, lines: list[bytes],
             literal_rows: LiteralRows) -> None:
        """Inserted rows as LOAD DATA text (``lines``), joined with those before it for the
        same statement; ``literal_rows`` gives the same rows as ``statement.insert``'s."""
        if statement != self._shape:
            self.close_multirow()
            self._shape = statement
        self._rows.extend(lines)
        self._literal_rows.append(literal_rows)
        self._gathered(sum(len(line) for line in lines))

    def close_multirow(self) -> None:
        shape = self._shape
        if self._rows and isinstance(shape, LoadStatement):
            load = _Load(shape, b"".join(self._rows), len(self._rows),
                         tuple(self._literal_rows))
            if load.rows >= LOAD_ROWS:
                self._statements += [_LOAD_SAVEPOINT, load]
                self._expected += [0, 0]
            else:
                inserts = load.inserts(self._limit)
                self._statements += inserts
                self._expected += [0] * len(inserts)
        elif self._rows:
            self._statements.append(shape.head + shape.separator.join(self._rows) + shape.tail)
            self._expected.append(len(self._rows) * shape.found_each)
        self._shape, self._rows, self._keys, self._literal_rows = _NONE, [], set(), []

    def add(self, statement: bytes, expected: int) -> None:
        """One statement, after those gathered; ``expected``: the rows it must find (0: not
        counted)."""
        self.close_multirow()
        self._statements.append(statement)
        self._expected.append(expected)
        self._gathered(len(statement))

    def flush(self) -> None:
        """Sends what was gathered, after what was sent before, in one round trip; one more
        after each LOAD DATA, and one more where a round trip would pass 1.5 ``limit``
        (rows too few to load can make INSERTs several times their text): a round trip
        stays well inside the target's max_allowed_packet."""
        self.close_multirow()
        statements, budget = self._statements, self._limit * 3 // 2
        start, size = 0, 0
        for end, statement in enumerate(statements, 1):
            size += _size(statement)
            if end == len(statements) or isinstance(statement, _Load) or \
                    size + _size(statements[end]) > budget:
                self._send(statements[start:end], self._expected[start:end])
                start, size = end, 0
        self._statements, self._expected, self._bytes = [], [], 0

    def _send(self, statements: list[bytes | _Load], expected: list[int]) -> None:
        """One round trip: ``statements``, the last perhaps a LOAD DATA."""
        load = statements[-1] if isinstance(statements[-1], _Load) else None
        text = b";\n".join(s.shape.statement if isinstance(s, _Load) else s for s in statements)
        limit = self._limit

        def run(cursor: Cursor) -> None:
            if load is not None:
                cursor.connection.offer(LOAD_NAME, load.text)
            try:
                cursor.execute(text)
                for index, rows in enumerate(expected):  # one result each, in order
                    if index:
                        cursor.nextset()
                    self.skipped_rows += max(0, rows - cursor.rowcount) if rows else 0
            finally:
                if load is not None:
                    cursor.connection.withdraw()
            if load is None:
                return
            if cursor.rowcount == load.rows and not cursor.warning_count:
                self.loaded_rows += load.rows
                return
            cursor.execute(b"ROLLBACK TO SAVEPOINT drkit_load")
            for insert in load.inserts(limit):
                cursor.execute(insert)
            self.unloaded_rows += load.rows

        self._worker.submit(run)

    def discard(self) -> None:
        """Forgets what was gathered (a transaction the archive holds only in part)."""
        self._shape: RowsStatement | LoadStatement = _NONE
        self._rows: list[bytes] = []
        self._keys: set[bytes] = set()
        self._literal_rows: list[LiteralRows] = []
        self._statements: list[bytes | _Load] = []
        self._expected: list[int] = []
        self._bytes = 0

    def _gathered(self, size: int) -> None:
        self._bytes += size
        self.gathered += size
        if self._bytes >= self._flush_at:
            self.flush()
            self._flush_at = min(self._limit, self._flush_at * 2)


def _size(statement: bytes | _Load) -> int:
    return len(statement.text) if isinstance(statement, _Load) else len(statement)


def _inserts(statement: RowsStatement, rows: list[bytes], limit: int) -> list[bytes]:
    """``rows`` as INSERTs of ``statement``, each of ``limit`` bytes or fewer (but for one
    row larger than that)."""
    inserts, start, size = [], 0, 0
    for end, row in enumerate(rows):
        if size and size + len(row) > limit:
            inserts.append(statement.head + statement.separator.join(rows[start:end]) +
                           statement.tail)
            start, size = end, 0
        size += len(row) + len(statement.separator)
    inserts.append(statement.head + statement.separator.join(rows[start:]) + statement.tail)
    return inserts


_NONE = RowsStatement(b"")  # no statement of many rows is open
