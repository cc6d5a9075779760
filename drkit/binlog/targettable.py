"""A replayed table as the target has it: its columns in the row image's order, which of
them are stored, unsigned or in a unique key, its primary key and its engine's kind."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymysql.cursors import Cursor

from drkit.binlog.rowevents import TableMap
from drkit.errors import BinlogArchiveError
from drkit.stream.statement import quote_name

_BINARY = re.compile(r"^binary\((\d+)\)", re.IGNORECASE)
_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "bigint"}


@dataclass(frozen=True)
class TargetTable:
    name: str  # `db`.`table` as the target has it
    columns: tuple[str, ...]  # in the row image's order
    quoted: tuple[bytes, ...]  # the columns' names quoted, for statements
    stored: tuple[bool, ...]  # False: generated, never written
    unsigned: tuple[bool, ...]
    on_update: tuple[bool, ...]  # ON UPDATE CURRENT_TIMESTAMP: the server sets it itself
    binary: tuple[int, ...]  # BINARY(n)'s n, else 0
    key: tuple[int, ...]  # primary key columns; empty: none
    integer_key: bool  # every primary key column an integer (compared as numbers, no collation)
    unique: tuple[bool, ...]  # in a unique key other than the primary key
    self_referencing: bool  # a foreign key to itself: its rows' order of deletion matters
    transactional: bool  # InnoDB: a savepoint undoes a statement's rows


def target_table(cursor: Cursor, database: str, mapped: TableMap) -> TargetTable:
    """``mapped``'s table in ``database`` on the target; refused where its columns are not
    the binlog's."""
    cursor.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA, COLUMN_KEY, TABLE_NAME, DATA_TYPE FROM "
        "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
        "LOWER(TABLE_NAME) = LOWER(%s) ORDER BY ORDINAL_POSITION", (database, mapped.table))
    rows = cursor.fetchall()
    if len(rows) == len(mapped.types) + 1 and rows[0][0] == "my_row_id":
        rows = rows[1:]  # a primary key the target generated (GIPK): not in images
    if len(rows) != len(mapped.types):
        raise BinlogArchiveError(
            f"Table {database}.{mapped.table} has {len(rows)} columns on the target where "
            f"the binlog's rows have {len(mapped.types)}; nothing of this transaction was "
            "applied.", "Restore to a time before its change.")
    cursor.execute(
        "SELECT 1 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND "
        "TABLE_NAME = %s AND REFERENCED_TABLE_SCHEMA = TABLE_SCHEMA AND "
        "REFERENCED_TABLE_NAME = TABLE_NAME LIMIT 1", (database, rows[0][4]))
    self_referencing = bool(cursor.fetchall())
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND "
        "TABLE_NAME = %s AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'", (database, rows[0][4]))
    unique = {row[0].lower() for row in cursor.fetchall()}
    cursor.execute("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                   "TABLE_NAME = %s", (database, rows[0][4]))
    engine = cursor.fetchone()
    key = tuple(i for i, r in enumerate(rows) if r[3] == "PRI")
    return TargetTable(
        name=f"{quote_name(database)}.{quote_name(rows[0][4])}",
        columns=tuple(r[0] for r in rows),
        quoted=tuple(quote_name(r[0]).encode() for r in rows),
        stored=tuple("GENERATED" not in (r[2] or "").upper() for r in rows),
        unsigned=tuple("unsigned" in r[1].lower() for r in rows),
        on_update=tuple("on update" in (r[2] or "").lower() for r in rows),
        binary=tuple(int(m.group(1)) if (m := _BINARY.match(r[1])) else 0 for r in rows),
        key=key,
        integer_key=bool(key) and all(rows[i][5].lower() in _INTEGERS for i in key),
        unique=tuple(r[0].lower() in unique for r in rows),
        self_referencing=self_referencing,
        transactional=bool(engine) and (engine[0] or "").lower() == "innodb")
