"""Applying binlog events to restored databases as plain SQL, whole transactions only.

Row events become INSERT/UPDATE/DELETE statements whose values are literals read straight
from the row images (:mod:`drkit.binlog.rowevents`), many rows a statement where SQL allows
(:mod:`drkit.binlog.rowstatements`), inserted rows by LOAD DATA LOCAL from memory where the
target allows it (:mod:`drkit.binlog.batch`); the statements run on a thread of their own while the
next events are decoded (:mod:`drkit.binlog.worker`); source transactions are committed
several at a time (:mod:`drkit.binlog.txgroup`). DDL of a restored database runs in it; a
statement naming a database by name (``shop.t``, ``DROP DATABASE shop``) is refused under
another name, because running it there would touch the original. A transaction the archive
holds only in part is undone: never half of one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import pymysql
import zstandard
from pymysql.constants import CLIENT
from pymysql.cursors import Cursor

from drkit.binlog import rowstatements
from drkit.binlog.batch import StatementBatch
from drkit.binlog.events import (
    ACCOUNTS,
    DATABASE_DDL,
    FORMAT_DESCRIPTION,
    IGNORABLE_FLAG,
    PASSED_OVER,
    QUERY,
    ROLLBACK,
    SAVEPOINT_STATEMENT,
    STATEMENT_DML,
    UNAPPLIABLE,
    WHOLE_TABLE_DELETE,
    XID,
    parse_query,
    payload_events,
    statement_kind,
)
from drkit.binlog.protocol import HEARTBEAT_DATABASE, HEARTBEAT_TABLE
from drkit.binlog.qualifiers import rename_qualified
from drkit.binlog.rowevents import (
    DELETE_ROWS,
    HEADER,
    NULLS,
    SQL_MODE_FOR_LITERALS,
    TABLE_MAP,
    UPDATE_ROWS,
    WRITE_ROWS,
    ColumnReaders,
    TableMap,
    UnsupportedColumn,
    column_readers,
    load_columns,
    rows_event,
    table_map,
)
from drkit.binlog.targettable import TargetTable, target_table
from drkit.binlog.triggers import TriggersAside
from drkit.binlog.txgroup import TransactionGroup
from drkit.binlog.worker import ConnectionWorker
from drkit.errors import BinlogArchiveError
from drkit.failpoints import failpoint
from drkit.mysql.connection import Server, connect, kill_query
from drkit.mysql.localrows import LocalRowsConnection
from drkit.stream.statement import quote_name, unquote_name, without_definer

# Statements sent in one round trip at most: larger batches were no faster
# (bench/binlog_bench.py).
BATCH_BYTES = 2 * 1024 * 1024
# What a statement over max_allowed_packet gets: the server's "packet bigger than" or, as
# it drops the connection, "gone away" / "lost connection", whichever the client sees first
# (those two are also what a restart or a killed session gives).
_PACKET_TOO_LARGE = 1153
_CONNECTION_LOST = {2006, 2013}
# Row images hold explicit values for AUTO_INCREMENT 0. Replayed DDL runs without
# NO_BACKSLASH_ESCAPES: its text means what it meant on the source.
_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"


class PositionMarks(Protocol):
    """Where the replay stands, kept on the target by the transactions that apply the
    changes (a standby's position, :mod:`drkit.ops.standby`)."""

    def session_started(self, cursor: Cursor) -> None:
        """The replay's session is open (before anything is applied through it)."""

    def transaction_end(self) -> bytes:
        """The statement committed with the source transaction that just ended (and, in a
        commit of its own, after a DDL statement)."""

    def before_ddl(self) -> Callable[[Cursor], None]:
        """Work run on the replay's session before the DDL statement that just came: DDL
        commits by itself, so the position after it cannot share its commit."""


class RowApplier:
    """Applies binlog events to the restored databases (``load_as``: the source's name ->
    the target's) through one connection, worked on a thread of its own. ``mark`` keeps
    where the replay stands in the transactions that apply it."""

    def __init__(self, server: Server, load_as: dict[str, str],
                 mark: PositionMarks | None = None) -> None:
        # Several statements a round trip (an UPDATE is one row each); an UPDATE's count is
        # of the rows it found, not only those it changed.
        connection = connect(server, client_flag=CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS,
                             connection_class=LocalRowsConnection)
        connection.autocommit(False)
        with connection.cursor() as cursor:
            # Row images hold TIMESTAMPs in UTC. Foreign keys stay on, as on a replica: ON
            # DELETE CASCADE's deletes are not in the binary log, the server does them again.
            cursor.execute("SET time_zone = '+00:00', foreign_key_checks = 1, "
                           f"sql_mode = '{_SQL_MODE},{SQL_MODE_FOR_LITERALS}'")
            cursor.execute("SELECT @@max_allowed_packet, @@GLOBAL.local_infile")
            max_packet, local_infile = cursor.fetchone()
            # A batch well inside what the target takes in one statement.
            batch_limit = min(BATCH_BYTES, max_packet // 2)
            if mark is not None:
                mark.session_started(cursor)
        # Inserted rows go by LOAD DATA LOCAL where the server allows it (MySQL 8's default
        # is OFF, Flexible Server's ON); else all as INSERTs.
        self._loads = bool(local_infile)
        self._server, self._thread_id = server, connection.thread_id()
        self._worker = ConnectionWorker(connection)
        self._triggers = TriggersAside(sorted(set(load_as.values())))
        try:
            with _refused():
                self._worker.call(self._triggers.set_aside)
        except BaseException:
            self._worker.close(interrupt=self._kill_statement)
            raise
        self.load_as = load_as
        self.maps: dict[int, TableMap] = {}
        self.tables: dict[tuple[str, str], TargetTable] = {}
        self._readers: dict[TableMap, ColumnReaders] = {}
        self._load_readers: dict[TableMap, _Loading | None] = {}
        self.checksum = 0
        self.rows = 0
        self.committed = False
        self.skipped_statements = 0
        self._batch = StatementBatch(self._worker, batch_limit)
        self._mark = mark
        self._transactions = TransactionGroup(self._batch, self._worker,
                                              mark.transaction_end if mark else None)
        self._known: set[str] | None = None
        self.heartbeat: str | None = None  # the newest drkit_heartbeat beat replayed (UTC)
        self._beat: str | None = None  # one in the open transaction

    @property
    def skipped_rows(self) -> int:
        """Rows a replayed UPDATE or DELETE did not find (the target had them not as the
        source had them)."""
        return self._batch.skipped_rows

    @property
    def loaded_rows(self) -> int:
        """Rows inserted by LOAD DATA (the rest of ``rows`` went as statements)."""
        return self._batch.loaded_rows

    # -- events ---------------------------------------------------------------------------
    def note(self, kind: int, data: bytes) -> None:
        """An event before the starting point: only what later events need is kept."""
        if kind in (FORMAT_DESCRIPTION, TABLE_MAP):
            self.apply(kind, data)

    def is_begin(self, data: bytes) -> bool:
        return self._query(data)[1].strip().upper() == b"BEGIN"

    def payload(self, data: bytes) -> Iterator[bytes]:
        """The events of a TRANSACTION_PAYLOAD event (MySQL 8's compressed transaction)."""
        try:
            yield from payload_events(self._body(data))
        except (ValueError, KeyError, IndexError, zstandard.ZstdError) as exc:
            raise BinlogArchiveError(
                f"A compressed transaction of the binlog cannot be read ({exc}); nothing of "
                "it was applied.", "Restore to a time before it.") from None

    def framed(self, inner: bytes) -> bytes:
        """An event from inside a payload, framed as the file's events are: they carry no
        checksum of their own, so a placeholder stands where the file's would be."""
        return inner + bytes(self.checksum)

    def begin(self) -> None:
        """A source transaction begins (one the archive did not end is undone first)."""
        self._beat = None  # a beat of one undone is not the data's
        with _refused():
            self._transactions.begin()

    def apply(self, kind: int, data: bytes) -> None:
        with _refused():
            self._apply(kind, data)

    def _apply(self, kind: int, data: bytes) -> None:
        self.committed = False
        if kind == FORMAT_DESCRIPTION:
            self.checksum = 4 if data[-5] == 1 else 0  # CRC32 announced after the lengths
        elif kind == TABLE_MAP:
            table_id, mapped = table_map(self._body(data))
            self.maps[table_id] = mapped
        elif kind in WRITE_ROWS | UPDATE_ROWS | DELETE_ROWS:
            self._rows(kind, data)
        elif kind == XID:
            self._commit()
        elif kind == QUERY:
            self._statement(data)
        elif kind not in PASSED_OVER and not data[17] & IGNORABLE_FLAG:
            what = UNAPPLIABLE.get(kind, f"an event of type {kind}, unknown to drkit")
            raise BinlogArchiveError(
                f"The binlog holds {what}, which drkit cannot apply as SQL; nothing of the "
                "transaction it belongs to was applied.",
                "Restore to a time before it; for changes after it, set the source's binlog "
                "options as drkit doctor advises and take a new full backup.")

    def _commit(self) -> None:
        # The beat first: the transaction's mark, sent at its end, records it.
        self.heartbeat = max(filter(None, (self.heartbeat, self._beat)), default=None)
        self._beat = None
        self._transactions.end()

    def finish(self) -> None:
        """Waits for the statements sent; rolls back a transaction whose end the archive
        does not hold."""
        with _refused():
            self._transactions.finish()
            self._worker.call(self._triggers.put_back)

    def close(self) -> None:
        self._worker.close(interrupt=self._kill_statement)

    def _kill_statement(self) -> None:
        kill_query(self._server, self._thread_id)

    # -- rows -----------------------------------------------------------------------------
    def _rows(self, kind: int, data: bytes) -> None:
        body = self._body(data)
        mapped = self.maps[int.from_bytes(body[:6], "little")]
        if (mapped.database, mapped.table) == (HEARTBEAT_DATABASE, HEARTBEAT_TABLE):
            self._read_beat(kind, body, mapped)
            return
        if mapped.database not in self.load_as:
            return  # another database's rows
        target = self._target(mapped)
        try:
            readers = self._column_readers(mapped, target)
            loading = self._loading(mapped, target) if kind in WRITE_ROWS else None
            event = rows_event(kind, body, readers) if loading is None else \
                rows_event(kind, body, loading.readers, NULLS["load"])
        except UnsupportedColumn as exc:
            raise BinlogArchiveError(
                f"A row event of {mapped.database}.{mapped.table} has a {exc} column, which "
                "drkit cannot apply as SQL; nothing of this transaction was applied.",
                "Restore to a time before it, or apply the rest with mysqlbinlog as a user "
                "with BINLOG_ADMIN.") from None
        if loading is not None:  # the literals read only where the rows go as an INSERT
            rowstatements.load(self._batch, target, event, loading.numbers,
                               lambda: rows_event(kind, body, readers))
        elif event.kind == "insert":
            rowstatements.insert(self._batch, target, event)
        elif event.kind == "delete":
            rowstatements.delete(self._batch, target, event)
        else:
            rowstatements.update(self._batch, target, event)
        self.rows += len(event.rows)

    def _read_beat(self, kind: int, body: bytes, mapped: TableMap) -> None:
        """A drkit_heartbeat row: the time it beat, kept until its transaction ends."""
        if mapped not in self._readers:  # kept: a day holds some 17,280 beats (5 s apart)
            self._readers[mapped] = column_readers(mapped, (False,) * len(mapped.types))
        event = rows_event(kind, body, self._readers[mapped])
        image, after = event.rows[-1]
        at = dict(zip(event.after_present, after or image, strict=True)).get(1, b"NULL")
        self._beat = None if at == b"NULL" else at.decode().strip("'")

    def _column_readers(self, mapped: TableMap, target: TargetTable) -> ColumnReaders:
        if mapped not in self._readers:
            self._readers[mapped] = column_readers(mapped, target.unsigned, target.binary)
        return self._readers[mapped]

    def _loading(self, mapped: TableMap, target: TargetTable) -> _Loading | None:
        """How ``mapped``'s inserted rows are read for LOAD DATA; None where they go as
        INSERTs: the target refuses LOAD DATA LOCAL, a value has no field form, or a
        savepoint would not undo the load (not InnoDB)."""
        if mapped not in self._load_readers:
            numbers = load_columns(mapped)
            self._load_readers[mapped] = None if numbers is None or not self._loads or \
                not target.transactional else \
                _Loading(column_readers(mapped, target.unsigned, target.binary, "load"), numbers)
        return self._load_readers[mapped]

    def _target(self, mapped: TableMap) -> TargetTable:
        key = (mapped.database, mapped.table)
        if key not in self.tables:  # read after the DDL sent before it
            self.tables[key] = self._worker.call(
                lambda cursor: target_table(cursor, self.load_as[mapped.database], mapped))
        return self.tables[key]

    # -- statements -----------------------------------------------------------------------
    def _statement(self, data: bytes) -> None:
        database, text, modes = self._query(data)
        if self._transaction_control(text):
            return
        self.committed = True  # DDL is a transaction of its own
        self._transactions.ended_by_statement()
        if ACCOUNTS.match(text):  # users and grants are the server's, not the restored data
            self.skipped_statements += 1
            return
        renamed = self._renamed(database, text, modes)
        if renamed is None:
            return  # another database's statement
        self._transactions.before_ddl()
        self.tables.clear()  # its columns may have changed: read again when next used
        self._readers.clear()
        self._load_readers.clear()
        if self._mark is not None:
            self._worker.submit(self._mark.before_ddl())
        self._worker.submit(self._ddl(renamed, self.load_as.get(database), modes))
        self._mark_ddl()

    def _transaction_control(self, text: bytes) -> bool:
        """BEGIN, COMMIT, ROLLBACK and the source's savepoints, applied; False for anything
        else. XA is refused."""
        command = text.strip().upper()
        if command == b"BEGIN":
            return True
        if command == b"COMMIT":
            self._commit()
            self.committed = True
            return True
        if command.startswith(b"XA "):
            raise BinlogArchiveError(
                "The binlog holds an XA transaction, which drkit cannot apply as SQL; "
                "nothing of it was applied.", "Restore to a time before it.")
        if ROLLBACK.match(text):
            self._transactions.undo_open()  # the source undid its rows too
            self.committed = True
            return True
        if savepoint := SAVEPOINT_STATEMENT.match(text):
            self._batch.add(self._transactions.source_savepoint(
                savepoint.group(1), unquote_name(savepoint.group(2))), expected=0)
            return True
        return False

    def _renamed(self, database: str, text: bytes, modes: list[str] | None) -> bytes | None:
        """The DDL as it runs on the target, the restored databases' qualifiers renamed;
        None for another database's statement. Refuses one that would not do there what it
        did on the source."""
        qualifiers: set[str] = set()
        renames = {db: new for db, new in self.load_as.items() if new != db}
        renamed = rename_qualified(text, renames, qualifiers,
                                   ansi_quotes="ANSI_QUOTES" in (modes or ()),
                                   backslash_escapes="NO_BACKSLASH_ESCAPES" not in (modes or ()))
        if database not in self.load_as and not qualifiers & set(self.load_as):
            return None
        kind = statement_kind(text)  # never the text itself: it may hold a password
        others = sorted(q for q in qualifiers - set(self.load_as)
                        if q.lower() in self._databases())
        if others:
            raise BinlogArchiveError(
                f"A {kind} statement of the binlog for {database or 'no database'} also names "
                f"database {others[0]}, which this restore does not cover; nothing of it was "
                "applied.", "Restore to a time before it.")
        if (dml := STATEMENT_DML.match(text)) and not WHOLE_TABLE_DELETE.match(text):
            subject = database or ", ".join(sorted(qualifiers))
            raise BinlogArchiveError(
                f"The binlog holds a change of {subject} logged as a statement "
                f"({dml.group(1).decode().upper()}), not as rows (binlog_format was not ROW "
                "for its session); replayed as text it would not give the source's rows. "
                "Nothing of it was applied.",
                "Restore to a time before it; set binlog_format ROW for every session (RDS: "
                "in the DB parameter group) and take a new full backup.")
        if renames and DATABASE_DDL.match(text):
            raise BinlogArchiveError(
                f"A {kind} statement of the binlog works on a whole database; replayed "
                "under another name it would change the original. Nothing of it was applied.",
                "Restore to a time before it, or restore in place (without --as or "
                "--replace) on an empty target.")
        return renamed

    def _ddl(self, renamed: bytes, use: str | None,
             modes: list[str] | None) -> Callable[[Cursor], None]:
        def run(cursor: Cursor) -> None:
            # Here, in order with the DDL before it: the trigger may have been made by one.
            if self._triggers.dropped(renamed, use):
                # Set aside already: the target has no such trigger to drop. The group
                # ends here all the same, as the DDL would have ended it.
                cursor.connection.commit()
                return
            cursor.execute(f"SET sql_mode = '{_SQL_MODE if modes is None else ','.join(modes)}'")
            if use:
                cursor.execute(f"USE {quote_name(use)}")
            # As the source wrote it, qualifiers renamed; a DEFINER would need SUPER.
            ddl = without_definer(renamed)
            cursor.execute(self._triggers.creatable(ddl))
            cursor.connection.commit()
            failpoint("replay.ddl")  # the DDL done, its position not yet recorded
            self._triggers.after_ddl(cursor, ddl)
            cursor.execute(f"SET sql_mode = '{_SQL_MODE},{SQL_MODE_FOR_LITERALS}'")
        return run

    def _mark_ddl(self) -> None:
        """DDL commits by itself: its mark follows it, in a commit of its own."""
        if self._mark is None:
            return
        marked = self._mark.transaction_end()  # here, in order: the worker runs it later

        def mark(cursor: Cursor) -> None:
            cursor.execute(marked)
            cursor.connection.commit()

        self._worker.submit(mark)

    def _databases(self) -> set[str]:
        if self._known is None:
            def names(cursor: Cursor) -> set[str]:
                cursor.execute("SHOW DATABASES")
                return {row[0].lower() for row in cursor.fetchall()}
            self._known = self._worker.call(names)
        return self._known

    def _query(self, data: bytes) -> tuple[str, bytes, list[str] | None]:
        return parse_query(self._body(data))

    def _body(self, data: bytes) -> bytes:
        return data[HEADER:len(data) - self.checksum]


class _Loading(NamedTuple):
    """A table's inserted rows read as LOAD DATA fields."""

    readers: ColumnReaders
    numbers: tuple[bool, ...]  # load_columns(): the columns loaded as numbers


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """The target's refusal of a replayed change, in a sentence."""
    try:
        yield
    except pymysql.err.MySQLError as exc:
        code, message = (exc.args + ("", ""))[:2]
        if code == _PACKET_TOO_LARGE:
            raise BinlogArchiveError(
                f"The target refused a replayed statement larger than its max_allowed_packet "
                f"({code}), such as one huge row; the transaction was not applied.",
                "Raise max_allowed_packet on the target, or restore to a time before "
                "it.") from None
        if code in _CONNECTION_LOST:
            raise BinlogArchiveError(
                f"The target dropped the replay's connection ({code}): it restarted or "
                "ended the session, or refused a statement larger than its "
                "max_allowed_packet (one huge row); the transaction was not applied.",
                "Look at the target's error log; raise max_allowed_packet if a row is "
                "larger, then restore again.") from None
        raise BinlogArchiveError(
            f"The target refused a replayed change ({code}: {str(message)[:160]}); the "
            "transaction it belongs to was not applied.",
            "Restore to a time before it (the log names the time reached).") from None
