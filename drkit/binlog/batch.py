"""Statements gathered for one round trip to the target.

Rows of consecutive events into one table join one statement where SQL allows it (an
INSERT's VALUES, a DELETE's IN list by primary key); other statements go one by one. All
are sent as one multi-statement query once ``limit`` bytes are gathered, or when asked (a
commit, DDL). Rows a DELETE expected but did not find are counted in ``skipped_rows``.
"""

from __future__ import annotations

from pymysql.cursors import Cursor

from drkit.binlog.worker import ConnectionWorker


class StatementBatch:
    def __init__(self, worker: ConnectionWorker, limit: int) -> None:
        self._worker, self._limit = worker, limit
        self.skipped_rows = 0
        self.gathered = 0  # bytes of statements gathered since the start, sent or not
        self.discard()

    def multirow(self, head: bytes, tail: bytes, rows: list[bytes], counted: bool) -> None:
        """Rows for a statement of many (``head`` rows joined by commas ``tail``), joined
        with those before it for the same statement; ``counted``: a DELETE, whose rows
        not found are counted."""
        if (head, tail) != (self._head, self._tail):
            self.close_multirow()
            self._head, self._tail, self._counted = head, tail, counted
        self._rows.extend(rows)
        added = sum(len(row) for row in rows)
        self._bytes += added
        self.gathered += added
        if self._bytes >= self._limit:
            self.flush()

    def close_multirow(self) -> None:
        if self._rows:
            self._statements.append(self._head + b", ".join(self._rows) + self._tail)
            self._expected.append(len(self._rows) if self._counted else 0)
        self._head, self._tail, self._rows, self._counted = b"", b"", [], False

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
        self._head, self._tail, self._rows, self._counted = b"", b"", [], False
        self._statements: list[bytes] = []
        self._expected: list[int] = []
        self._bytes = 0
