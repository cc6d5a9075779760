"""A mysqldump stream as statements, and the rewrites a restore into Azure needs.

:class:`StatementSplitter` cuts the stream the way the ``mysql`` client does (including
``DELIMITER``), without ever parsing row data: an INSERT runs from its line start to the
first ``;`` followed by a newline, which cannot occur inside a dumped value.

:class:`Rewriter` applies, statement by statement and never to row data, what Microsoft
documents as breaking restores into Azure Database for MySQL Flexible Server (no SUPER):
DEFINER clauses, ``SQL_LOG_BIN`` and ``GTID_PURGED`` statements, storage engines other than
InnoDB/MEMORY, and the ``mysql`` system schema; plus renaming the database (``--as``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from drkit.stream.dumpscan import statement_end

_INSERT = b"INSERT INTO `"
_IDENT = rb"`((?:[^`]|``)+)`"
_USE = re.compile(rb"^USE " + _IDENT + rb"$")
_CREATE_DATABASE = re.compile(rb"^CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?" + _IDENT)
# Where mysqldump names the database itself: what --as rewrites.
_DATABASE_REFERENCE = re.compile(
    rb"(^USE |^CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?|ALTER DATABASE )" + _IDENT)
_CREATE_TABLE = re.compile(rb"^CREATE TABLE " + _IDENT)
_LOCK = re.compile(rb"^(?:LOCK TABLES|UNLOCK TABLES)\b")
_SESSION = re.compile(rb"^(?:/\*!\d+ )?SET ")
_SANDBOX_LINE = b"/*M!999999\\- enable the sandbox mode */"
_DEFINER = re.compile(
    rb"DEFINER\s*=\s*(?:`[^`]*`|'[^']*'|[\w.-]+)@(?:`[^`]*`|'[^']*'|[\w.%-]+)\s*")
_SQL_LOG_BIN = re.compile(rb"SQL_LOG_BIN|@MYSQLDUMP_TEMP_LOG_BIN", re.I)
_GTID_PURGED = re.compile(rb"@@GLOBAL\.GTID_PURGED", re.I)
_ENGINE = re.compile(rb"\) ENGINE=(\w+)")
ALLOWED_ENGINES = {b"InnoDB", b"MEMORY"}
SYSTEM_SCHEMAS = {"mysql", "sys", "performance_schema", "information_schema"}


@dataclass
class Statement:
    sql: bytes
    kind: str  # insert, use, create_database, create_table, lock, session, other
    database: str = ""
    table: str | None = None


def _name(quoted: bytes) -> str:
    return quoted.replace(b"``", b"`").decode("utf-8")


def _quote(name: str) -> bytes:
    return b"`" + name.replace("`", "``").encode("utf-8") + b"`"


class StatementSplitter:
    """Feed chunks, get complete statements (without their delimiter)."""

    def __init__(self) -> None:
        self.database = ""
        self._pending = b""
        self._lines: list[bytes] = []
        self._delimiter = b";"

    def feed(self, chunk: bytes) -> Iterator[Statement]:
        data = self._pending + chunk if self._pending else chunk
        pos = 0
        while pos < len(data):
            if not self._lines and data.startswith(_INSERT, pos):
                end = statement_end(data, pos)
                if end < 0:
                    break
                yield self._classify(data[pos:end])
                pos = end + 2
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            line = data[pos:newline]
            pos = newline + 1
            statement = self._line(line)
            if statement is not None:
                yield statement
        self._pending = data[pos:]

    def close(self) -> Iterator[Statement]:
        """The last statement, if the stream did not end with a newline."""
        if self._pending:
            statement = self._line(self._pending)
            self._pending = b""
            if statement is not None:
                yield statement
        if self._lines:
            raise ValueError("the dump ends inside a statement")

    def _line(self, line: bytes) -> Statement | None:
        if not self._lines:
            stripped = line.strip()
            if not stripped or stripped.startswith(b"--") or stripped == _SANDBOX_LINE:
                return None
            if stripped.startswith(b"DELIMITER "):
                self._delimiter = stripped.split(None, 1)[1]
                return None
        self._lines.append(line)
        stripped = line.rstrip()
        if not stripped.endswith(self._delimiter):
            return None
        self._lines[-1] = stripped[: -len(self._delimiter)]
        sql = b"\n".join(self._lines)
        self._lines = []
        return self._classify(sql)

    def _classify(self, sql: bytes) -> Statement:
        if sql.startswith(_INSERT):
            name_end = sql.index(b"` VALUES", len(_INSERT))
            return Statement(sql, "insert", self.database, _name(sql[len(_INSERT):name_end]))
        if match := _USE.match(sql):
            self.database = _name(match.group(1))
            return Statement(sql, "use", self.database)
        if match := _CREATE_DATABASE.match(sql):
            self.database = _name(match.group(1))
            return Statement(sql, "create_database", self.database)
        if match := _CREATE_TABLE.match(sql):
            return Statement(sql, "create_table", self.database, _name(match.group(1)))
        if _LOCK.match(sql):
            return Statement(sql, "lock", self.database)
        if _SESSION.match(sql):
            return Statement(sql, "session", self.database)
        return Statement(sql, "other", self.database)


@dataclass
class Rewriter:
    """Rewrites statements for the target; counts what it changed for ``restore --check``."""

    azure: bool = True
    definer: str = "strip"  # strip, or "admin": replace with the target's admin user
    admin_user: str = ""
    rename: dict[str, str] = field(default_factory=dict)
    changes: Counter = field(default_factory=Counter)
    blockers: list[str] = field(default_factory=list)
    _tables: dict[str, dict[str, str]] = field(default_factory=dict)

    def rewrite(self, statement: Statement) -> Statement | None:
        """The statement to run, or None to skip it. Row data is never changed."""
        if self.azure and statement.database in SYSTEM_SCHEMAS:
            self.changes[f"skipped statements of system schema {statement.database}"] += 1
            return None
        database = self.rename.get(statement.database, statement.database)
        if statement.kind == "insert":  # rows are never rewritten, only their bookkeeping
            return Statement(statement.sql, "insert", database, statement.table)
        sql = statement.sql
        if statement.kind == "create_table" and statement.table:
            self._check_case(statement.database, statement.table)
        if self.azure:
            if _SQL_LOG_BIN.search(sql):
                self.changes["removed SQL_LOG_BIN statements"] += 1
                return None
            if _GTID_PURGED.search(sql):
                self.changes["removed GTID_PURGED statements"] += 1
                return None
            if _DEFINER.search(sql):
                sql = _DEFINER.sub(self._definer_replacement(), sql)
                self.changes[f"{'removed' if self.definer == 'strip' else 'replaced'} "
                             "DEFINER clauses"] += 1
            if statement.kind == "create_table":
                engine = _ENGINE.search(sql)
                if engine and engine.group(1) not in ALLOWED_ENGINES:
                    self.changes[f"converted {engine.group(1).decode()} tables to InnoDB"] += 1
                    sql = sql[: engine.start(1)] + b"InnoDB" + sql[engine.end(1):]
        if self.rename:
            sql = self._renamed(statement, sql)
        return Statement(sql, statement.kind, database, statement.table)

    def _definer_replacement(self) -> bytes:
        if self.definer == "admin":
            return b"DEFINER=" + _quote(self.admin_user) + b"@`%` "
        return b""

    def _renamed(self, statement: Statement, sql: bytes) -> bytes:
        if statement.kind == "insert":
            return sql

        def swap(match: re.Match) -> bytes:
            old = _name(match.group(2))
            if old not in self.rename:
                return match.group(0)
            self.changes["renamed database references"] += 1
            return match.group(1) + _quote(self.rename[old])

        return _DATABASE_REFERENCE.sub(swap, sql)

    def _check_case(self, database: str, table: str) -> None:
        seen = self._tables.setdefault(database, {})
        other = seen.get(table.lower())
        if other is not None and other != table:
            self.blockers.append(
                f"tables {database}.{other} and {database}.{table} collide under "
                "lower_case_table_names=1 (Azure's setting)")
        seen.setdefault(table.lower(), table)
