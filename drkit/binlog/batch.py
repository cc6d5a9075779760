"""Statements gathered for one round trip to the target.

Rows of consecutive events into one table join one statement where SQL allows it (an
INSERT's VALUES, a DELETE's IN list by primary key, an UPDATE joined with its new values
by primary key: a :class:`RowsStatement`); other statements go one by one. All are sent as
one multi-statement query once ``limit`` bytes are gathered, or when asked (a commit, DDL).
Rows a DELETE or UPDATE expected but did not find are counted in ``skipped_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymysql.cursors import Cursor

from drkit.binlog.worker import ConnectionWorker


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


class StatementBatch:
    def __init__(self, worker: ConnectionWorker, limit: int) -> None:
        self._worker, self._limit = worker, limit
        self.skipped_rows = 0
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
        added = sum(len(row) for row in rows)
        self._bytes += added
        self.gathered += added
        if self._bytes >= self._limit:
            self.flush()

    def close_multirow(self) -> None:
        if self._rows:
            shape = self._shape
            self._statements.append(shape.head + shape.separator.join(self._rows) + shape.tail)
            self._expected.append(len(self._rows) * shape.found_each)
        self._shape, self._rows, self._keys = _NONE, [], set()

    def add(self, statement: bytes, expected: int) -> None:
        """One statement, after those gathered; ``expected``: the rows it must find (0: not
        counted)."""
        self.close_multirow()
        self._statements.append(statement)
        self._expected.append(expected)
        self._bytes += len(statement)
        self.gathered += len(statement)
        if self._bytes >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Sends what was gathered, in one round trip, after what was sent before."""
        self.close_multirow()
        if self._statements:
            statements, expected = self._statements, self._expected

            def run(cursor: Cursor) -> None:
                cursor.execute(b";\n".join(statements))
                for index, rows in enumerate(expected):  # one result each, in order
                    if index:
                        cursor.nextset()
                    self.skipped_rows += max(0, rows - cursor.rowcount) if rows else 0

            self._worker.submit(run)
        self._statements, self._expected, self._bytes = [], [], 0

    def discard(self) -> None:
        """Forgets what was gathered (a transaction the archive holds only in part)."""
        self._shape, self._rows, self._keys = _NONE, [], set()
        self._statements: list[bytes] = []
        self._expected: list[int] = []
        self._bytes = 0


_NONE = RowsStatement(b"")  # no statement of many rows is open
