"""Applying binlog events to restored databases as plain SQL, transaction by transaction.

Row events become parameterised INSERT/UPDATE/DELETE statements (values travel as
parameters, never as SQL text). UPDATE and DELETE find their row by the primary key where the
table has one, else by every stored column (``<=>``, one row). DDL of a restored database
runs in it; a statement naming a database by name (``shop.t``, ``DROP DATABASE shop``) is
refused under another name, because running it there would touch the original. A transaction
the archive holds only in part is rolled back: never half of one.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import pymysql

from drkit.errors import BinlogArchiveError
from drkit.mysql.binlog import HEARTBEAT_DATABASE, HEARTBEAT_TABLE
from drkit.mysql.connection import Server, connect
from drkit.mysql.rowevents import (
    DELETE_ROWS,
    HEADER,
    INT_SIZES,
    TABLE_MAP,
    UPDATE_ROWS,
    WRITE_ROWS,
    TableMap,
    UnsupportedColumn,
    rows_event,
    table_map,
)

FORMAT_DESCRIPTION, QUERY, XID = 15, 2, 16
INSERT_BATCH_BYTES = 8 * 1024 * 1024  # rows held for one INSERT at most
_ACCOUNTS = re.compile(rb"^\s*(?:(?:CREATE|ALTER|DROP|RENAME)\s+(?:USER|ROLE)|GRANT|REVOKE|"
                       rb"SET\s+(?:PASSWORD|DEFAULT\s+ROLE)|FLUSH)\b", re.IGNORECASE)
_DATABASE_DDL = re.compile(rb"^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\b", re.IGNORECASE)


@dataclass(frozen=True)
class TargetTable:
    name: str  # `db`.`table` as the target has it
    columns: tuple[str, ...]  # in the row image's order
    stored: tuple[bool, ...]  # False: generated, never written
    unsigned: tuple[bool, ...]
    key: tuple[int, ...]  # primary key columns; empty: none


class RowApplier:
    def __init__(self, server: Server, load_as: dict[str, str]) -> None:
        self.connection = connect(server)
        self.connection.autocommit(False)
        with self.connection.cursor() as cursor:
            # Row images hold TIMESTAMPs in UTC and explicit values for AUTO_INCREMENT 0.
            # Foreign keys stay on, as on a replica: ON DELETE CASCADE's deletes are not in
            # the binary log, the server does them again.
            cursor.execute("SET time_zone = '+00:00', foreign_key_checks = 1, "
                           "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")
        self.load_as = load_as
        self.maps: dict[int, TableMap] = {}
        self.tables: dict[tuple[str, str], TargetTable] = {}
        self.checksum = 0
        self.rows = self.skipped_rows = 0
        self.committed = False
        self.skipped_statements = 0
        self._insert, self._inserts, self._insert_bytes = "", [], 0  # a batch of rows
        self._known: set[str] | None = None
        self.heartbeat: str | None = None  # the newest drkit_heartbeat beat replayed (UTC)
        self._beat: str | None = None  # one in the open transaction

    # -- events ---------------------------------------------------------------------------
    def note(self, kind: int, data: bytes) -> None:
        """An event before the starting point: only what later events need is kept."""
        if kind in (FORMAT_DESCRIPTION, TABLE_MAP):
            self.apply(kind, data)

    def is_begin(self, data: bytes) -> bool:
        return self._query(data)[1].strip().upper() == b"BEGIN"

    def begin(self) -> None:
        self.connection.rollback()  # nothing is open between transactions

    def apply(self, kind: int, data: bytes) -> None:
        try:
            self._apply(kind, data)
        except pymysql.err.MySQLError as exc:
            code, message = (exc.args + ("", ""))[:2]
            raise BinlogArchiveError(
                f"The target refused a replayed change ({code}: {str(message)[:160]}); the "
                "transaction it belongs to was not applied.",
                "Restore to a time before it (the log names the time reached).") from None

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

    def _commit(self) -> None:
        self._flush_inserts()
        self.connection.commit()
        self.heartbeat = max(filter(None, (self.heartbeat, self._beat)), default=None)
        self._beat = None

    def finish(self) -> None:
        self._insert, self._inserts, self._insert_bytes = "", [], 0
        self.connection.rollback()  # a transaction whose end the archive does not hold

    def close(self) -> None:
        with contextlib.suppress(pymysql.err.Error):
            self.connection.close()

    # -- rows -----------------------------------------------------------------------------
    def _rows(self, kind: int, data: bytes) -> None:
        body = self._body(data)
        mapped = self.maps[int.from_bytes(body[:6], "little")]
        if (mapped.database, mapped.table) == (HEARTBEAT_DATABASE, HEARTBEAT_TABLE):
            event = rows_event(kind, body, mapped)
            image, after = event.rows[-1]
            self._beat = dict(zip(event.present, after or image, strict=True)).get(1)
            return
        if mapped.database not in self.load_as:
            return  # another database's rows
        try:
            event = rows_event(kind, body, mapped)
        except UnsupportedColumn as exc:
            raise BinlogArchiveError(
                f"A row event of {mapped.database}.{mapped.table} has a {exc} column, which "
                "drkit cannot apply as SQL; nothing of this transaction was applied.",
                "Restore to a time before it, or apply the rest with mysqlbinlog as a user "
                "with BINLOG_ADMIN.") from None
        target = self._target(mapped)
        if event.kind == "insert":
            # Rows of consecutive inserts into one table go as one multi-row INSERT: a row
            # event holds a few rows (about 8 KB), a round trip each would be the cost.
            columns = [c for c in event.present if target.stored[c]]
            statement = (f"INSERT INTO {target.name} ("
                         f"{', '.join(_q(target.columns[c]) for c in columns)}) VALUES "
                         f"({', '.join(['%s'] * len(columns))})")
            if statement != self._insert:
                self._flush_inserts()
                self._insert = statement
            self._inserts.extend(self._values(target, mapped, event.present, image, columns)
                                 for image, _ in event.rows)
            self._insert_bytes += len(body)
            if self._insert_bytes >= INSERT_BATCH_BYTES:
                self._flush_inserts()
            self.rows += len(event.rows)
            return
        self._flush_inserts()
        with self.connection.cursor() as cursor:
            for image, after in event.rows:
                where, arguments = self._where(target, mapped, event.present, image)
                if event.kind == "delete":
                    changed = cursor.execute(f"DELETE FROM {target.name} WHERE {where} LIMIT 1",
                                             arguments)
                else:
                    columns = [c for c in event.present if target.stored[c]]
                    changed = cursor.execute(
                        f"UPDATE {target.name} SET "
                        f"{', '.join(_q(target.columns[c]) + ' = %s' for c in columns)} "
                        f"WHERE {where} LIMIT 1",
                        [*self._values(target, mapped, event.present, after, columns),
                         *arguments])
                self.skipped_rows += changed == 0 and event.kind == "delete"
        self.rows += len(event.rows)

    def _flush_inserts(self) -> None:
        if self._inserts:
            with self.connection.cursor() as cursor:
                cursor.executemany(self._insert, self._inserts)
        self._insert, self._inserts, self._insert_bytes = "", [], 0

    def _values(self, target: TargetTable, mapped: TableMap, present: tuple[int, ...],
                image: tuple[Any, ...], columns: list[int]) -> list[Any]:
        by_column = dict(zip(present, image, strict=True))
        values = []
        for column in columns:
            value = by_column[column]
            if target.unsigned[column] and isinstance(value, int) and value < 0 and \
                    mapped.types[column] in INT_SIZES:
                value += 1 << (8 * INT_SIZES[mapped.types[column]])
            values.append(value)
        return values

    def _where(self, target: TargetTable, mapped: TableMap, present: tuple[int, ...],
               image: tuple[Any, ...]) -> tuple[str, list[Any]]:
        columns = [c for c in (target.key or present) if target.stored[c] and c in present]
        values = self._values(target, mapped, present, image, columns)
        return " AND ".join(f"{_q(target.columns[c])} <=> %s" for c in columns), values

    def _target(self, mapped: TableMap) -> TargetTable:
        key = (mapped.database, mapped.table)
        if key not in self.tables:
            database = self.load_as[mapped.database]
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA, COLUMN_KEY, TABLE_NAME FROM "
                    "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                    "LOWER(TABLE_NAME) = LOWER(%s) ORDER BY ORDINAL_POSITION",
                    (database, mapped.table))
                rows = cursor.fetchall()
            if len(rows) == len(mapped.types) + 1 and rows[0][0] == "my_row_id":
                rows = rows[1:]  # a primary key the target generated (GIPK): not in images
            if len(rows) != len(mapped.types):
                raise BinlogArchiveError(
                    f"Table {database}.{mapped.table} has {len(rows)} columns on the target "
                    f"where the binlog's rows have {len(mapped.types)}; nothing of this "
                    "transaction was applied.", "Restore to a time before its change.")
            self.tables[key] = TargetTable(
                name=f"{_q(database)}.{_q(rows[0][4])}",
                columns=tuple(r[0] for r in rows),
                stored=tuple("GENERATED" not in (r[2] or "").upper() for r in rows),
                unsigned=tuple("unsigned" in r[1].lower() for r in rows),
                key=tuple(i for i, r in enumerate(rows) if r[3] == "PRI"))
        return self.tables[key]

    # -- statements -----------------------------------------------------------------------
    def _statement(self, data: bytes) -> None:
        database, text = self._query(data)
        command = text.strip().upper()
        if command == b"BEGIN":
            return
        if command == b"COMMIT":
            self._commit()
            self.committed = True
            return
        self.committed = True  # DDL is a transaction of its own
        if _ACCOUNTS.match(text):  # users and grants are the server's, not the restored data
            self.skipped_statements += 1
            return
        qualifiers: set[str] = set()
        renames = {db: new for db, new in self.load_as.items() if new != db}
        renamed = rename_qualified(text, renames, qualifiers)
        if database not in self.load_as and not qualifiers & set(self.load_as):
            return  # another database's statement
        kind = _kind(text)  # never the text itself: it may hold a password
        others = sorted(q for q in qualifiers - set(self.load_as)
                        if q.lower() in self._databases())
        if others:
            raise BinlogArchiveError(
                f"A {kind} statement of the binlog for {database or 'no database'} also names "
                f"database {others[0]}, which this restore does not cover; nothing of it was "
                "applied.", "Restore to a time before it.")
        if renames and _DATABASE_DDL.match(text):
            raise BinlogArchiveError(
                f"A {kind} statement of the binlog works on a whole database; replayed "
                "under another name it would change the original. Nothing of it was applied.",
                "Restore to a time before it, or restore in place (without --as or "
                "--replace) on an empty target.")
        self._flush_inserts()
        with self.connection.cursor() as cursor:
            if database in self.load_as:
                cursor.execute(f"USE {_q(self.load_as[database])}")
            cursor.execute(renamed)  # bytes, as the source wrote them, qualifiers renamed
        self.connection.commit()
        self.tables.clear()  # its columns may have changed: read again when next used

    def _databases(self) -> set[str]:
        if self._known is None:
            with self.connection.cursor() as cursor:
                cursor.execute("SHOW DATABASES")
                self._known = {row[0].lower() for row in cursor.fetchall()}
        return self._known

    def _query(self, data: bytes) -> tuple[str, bytes]:
        body = self._body(data)
        database_length = body[8]
        variables = int.from_bytes(body[11:13], "little")
        start = 13 + variables
        database = body[start:start + database_length].decode()
        return database, body[start + database_length + 1:]

    def _body(self, data: bytes) -> bytes:
        return data[HEADER:len(data) - self.checksum]


def rename_qualified(sql: bytes, renames: dict[str, str],
                     seen: set[str] | None = None) -> bytes:
    """``db.`` qualifiers renamed where ``db`` is renamed; strings and comments untouched.
    Every name used as a qualifier is added to ``seen``."""
    out, i, size = bytearray(), 0, len(sql)
    while i < size:
        char = sql[i:i + 1]
        if char in (b"'", b'"'):  # a string literal, with its escapes
            end = i + 1
            while end < size and sql[end:end + 1] != char:
                end += 2 if sql[end:end + 1] == b"\\" else 1
            out += sql[i:end + 1]
            i = end + 1
        elif sql.startswith(b"/*", i) or sql.startswith(b"-- ", i) or char == b"#":
            end = sql.find(b"*/", i + 2) + 2 if char == b"/" else sql.find(b"\n", i)
            end = size if end < (2 if char == b"/" else 0) else end
            out += sql[i:end]
            i = end
        elif char == b"`" or _IDENTIFIER.match(char):
            match = _QUOTED.match(sql, i) if char == b"`" else _BARE.match(sql, i)
            name = match.group(1).replace(b"``", b"`").decode(errors="replace")
            after = _DOT.match(sql, match.end())
            if after and seen is not None and (i == 0 or not _IDENTIFIER.match(sql[i - 1:i])):
                seen.add(name)
            if after and name in renames and (i == 0 or not _IDENTIFIER.match(sql[i - 1:i])):
                out += _q(renames[name]).encode() + after.group(0)
                i = after.end()
            else:
                out += match.group(0)
                i = match.end()
        else:
            out += char
            i += 1
    return bytes(out)


_IDENTIFIER = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")
_BARE = re.compile(rb"([A-Za-z0-9_$\x80-\xff]+)")
_QUOTED = re.compile(rb"`((?:[^`]|``)*)`")
_DOT = re.compile(rb"\s*\.")


def _kind(sql: bytes) -> str:
    """What a statement is, in two words (``ALTER TABLE``), for messages."""
    words = re.findall(rb"[A-Za-z]+", sql[:60])[:2]
    return b" ".join(words).decode().upper() or "statement"


def _q(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
