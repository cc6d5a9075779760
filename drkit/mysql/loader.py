"""Loading a statement stream into MySQL over parallel connections.

mysqldump writes one table after another, and a single ``mysql`` client applies it on one
server thread. Here row INSERTs go to several connections at once while the order that
matters is kept:

- session statements (``SET ...``, ``USE``) run on every connection, in stream order;
- any other statement (DDL) runs on the DDL connection once the INSERTs it depends on are
  done: those of the table it names, or all of them when it names none (views, routines);
- a table's INSERTs go to whichever connection is free, except for tables with neither a
  primary nor a unique key, whose rows stay on one connection in dump order (their
  physical order is what a later dump, and so the proof, reads back).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import pymysql

from drkit.console import log_event
from drkit.errors import RestoreFailedError
from drkit.mysql.connection import Server, connect, query_without_copies
from drkit.stream.statement import Statement, has_row_order_key

_QUEUE_DEPTH = 4  # statements waiting per connection
# Bytes of INSERTs queued or running at once: a row of 80 MB is one statement, and a few of
# them in the queues must not add up. One statement bigger than this still goes, alone.
_IN_FLIGHT_BYTES = 64 * 1024 * 1024
# Above this, statements are sent without pymysql's copies (query_without_copies).
_LARGE_STATEMENT = 16 * 1024 * 1024
_STOP = object()
_RETRYABLE = {1205, 1213}  # ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK
# What a server answers to a packet over its max_allowed_packet: it drops the connection.
_PACKET_ERRORS = {1153, 2006, 2013}
_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


@dataclass
class _Worker:
    connection: pymysql.Connection
    queue: queue.Queue = field(default_factory=lambda: queue.Queue(_QUEUE_DEPTH))
    thread: threading.Thread | None = None


PARTIAL_LOAD_FIX = ("The target database holds a partial restore; fix the cause and restore "
                    "again with --replace.")


def _session(server: Server) -> pymysql.Connection:
    """A loading connection. MySQL 8.0.30+ (Flexible Server: on by default) would add an
    invisible ``my_row_id`` key to every keyless table; a restore recreates tables as they
    were. Where the server lacks the variable (MariaDB) or the login may not set it, the
    proof still ignores such a column."""
    connection = connect(server)
    with connection.cursor() as cursor:
        try:
            cursor.execute("SET SESSION sql_generate_invisible_primary_key = OFF")
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] not in (_ER_UNKNOWN_SYSTEM_VARIABLE,):
                log_event("restore.gipk", "Could not turn off generated invisible primary "
                          f"keys on the target ({exc.args[-1]})", logging.WARNING)
    return connection


_ER_UNKNOWN_SYSTEM_VARIABLE = 1193


class ParallelLoader:
    def __init__(self, server: Server, workers: int) -> None:
        self.server = server
        self.ddl = _session(server)
        self._workers = [_Worker(_session(server)) for _ in range(max(1, workers))]
        self._pending: dict[str, int] = {}
        self._in_flight = 0  # bytes of INSERTs queued or running
        self._ordered_tables: set[str] = set()
        self._pinned: dict[str, int] = {}
        self._next = 0
        self._done = threading.Condition()
        self._error: BaseException | None = None
        self._failed_statement = ""
        for worker in self._workers:
            worker.thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            worker.thread.start()

    def execute(self, statement: Statement) -> None:
        self._raise_if_failed()
        if statement.kind == "insert":
            self._insert(statement)
        elif statement.kind in ("session", "use"):
            self._run_sql(self.ddl, statement.sql, statement)
            for worker in self._workers:
                worker.queue.put((None, statement))
        elif statement.kind == "lock":
            pass  # LOCK TABLES would serialise the connections; nothing else writes here
        else:
            # DDL naming a table (a trigger: its ON table) waits for that table's rows;
            # DDL naming none (views, routines) for all of them.
            self._wait_for(self._key(statement) if statement.table else None)
            if statement.kind == "create_table" and not has_row_order_key(statement.sql):
                self._ordered_tables.add(self._key(statement))
            self._run_sql(self.ddl, statement.sql, statement)

    def finish(self) -> None:
        self._wait_for(None)
        for worker in self._workers:
            worker.queue.put(_STOP)
        for worker in self._workers:
            worker.thread.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Stop the workers and close every connection (also after a failure)."""
        with self._done:
            if self._error is None:
                self._error = RestoreFailedError("The restore was interrupted.")
            self._done.notify_all()
        for worker in self._workers:
            if worker.thread and worker.thread.is_alive():
                with contextlib.suppress(queue.Full):
                    worker.queue.put(_STOP, timeout=5)
                worker.thread.join(timeout=30)
        for connection in [self.ddl, *(w.connection for w in self._workers)]:
            with contextlib.suppress(Exception):
                connection.close()

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _key(statement: Statement) -> str:
        return f"{statement.database}.{statement.table}"

    def _insert(self, statement: Statement) -> None:
        key = self._key(statement)
        if key in self._ordered_tables:
            if key not in self._pinned:
                self._pinned[key] = self._next % len(self._workers)
                self._next += 1
            index = self._pinned[key]
        else:
            # The connection with the shortest queue.
            index = min(range(len(self._workers)), key=lambda i: self._workers[i].queue.qsize())
        size = len(statement.sql)
        with self._done:
            while self._error is None and self._in_flight and \
                    self._in_flight + size > _IN_FLIGHT_BYTES:
                self._done.wait()
            self._in_flight += size
            self._pending[key] = self._pending.get(key, 0) + 1
        self._put(self._workers[index], (key, statement))

    def _put(self, worker: _Worker, item) -> None:
        while True:
            self._raise_if_failed()
            try:
                worker.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _wait_for(self, table: str | None) -> None:
        with self._done:
            while self._error is None and (
                self._pending.get(table, 0) if table else any(self._pending.values())
            ):
                self._done.wait()
        self._raise_if_failed()

    def _run(self, worker: _Worker) -> None:
        while (item := worker.queue.get()) is not _STOP:
            key, statement = item
            if self._error is None:
                try:
                    self._run_sql(worker.connection, statement.sql, statement)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    with self._done:
                        self._error = self._error or exc
            if key is not None:
                with self._done:
                    self._pending[key] -= 1
                    self._in_flight -= len(statement.sql)
                    self._done.notify_all()
            if self._error is not None:
                with self._done:
                    self._done.notify_all()

    def _run_sql(self, connection: pymysql.Connection, sql: bytes, statement: Statement) -> None:
        for attempt in range(1, len(_RETRY_DELAYS) + 2):
            try:
                if len(sql) > _LARGE_STATEMENT:
                    query_without_copies(connection, sql)
                else:
                    connection.query(sql)
                return
            except pymysql.err.MySQLError as exc:
                error = exc
            code = error.args[0] if error.args else "?"
            message = str(error.args[1] if len(error.args) > 1 else error)[:200]
            where = f"table {statement.database}.{statement.table}" if statement.table else (
                f"a {statement.kind} statement in {statement.database or 'the header'}")
            if code not in _RETRYABLE or attempt > len(_RETRY_DELAYS):
                break
            # A deadlock or lock wait rolled the statement back: run it again, as
            # myloader does, before calling the restore failed.
            delay = _RETRY_DELAYS[attempt - 1]
            log_event("restore.retry", f"{where} met ERROR {code} ({message}); retrying in "
                      f"{delay:g} s ({attempt} of {len(_RETRY_DELAYS)})", level=logging.WARNING,
                      error_code=code, attempt=attempt)
            time.sleep(delay)
        if code in _PACKET_ERRORS and len(sql) > 1024 * 1024:
            message += (f"; the statement is {len(sql) / 2**20:.0f} MiB: is the target's "
                        "max_allowed_packet smaller? drkit restore --check compares them")
        raise RestoreFailedError(
            f"The target server {self.server.address} rejected {where} "
            f"(ERROR {code}: {message}).",
            PARTIAL_LOAD_FIX,
        ) from None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, RestoreFailedError):
                raise self._error
            raise RestoreFailedError(f"Loading into the target failed: {self._error}.")
