"""The rewrites a restore into Azure Database for MySQL Flexible Server needs, per statement.

What Microsoft documents as breaking restores there (no SUPER): DEFINER clauses, the
``SQL_LOG_BIN`` and ``GTID_PURGED`` statements, storage engines other than InnoDB/MEMORY, and
the ``mysql`` system schema; plus renaming the database (``--as``). Each rewrite touches only
what mysqldump writes for it, located by :mod:`drkit.stream.lexer`: the DEFINER of a CREATE
VIEW/TRIGGER/PROCEDURE/FUNCTION/EVENT header (never one inside a body or a string), the
exact SET statements (never a column called ``sql_log_bin_off``), every ``ENGINE=`` of a
table and its partitions outside quotes. Row data is never rewritten.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from drkit.stream.statement import Statement, quote

# mysqldump's own statements, exactly (client/mysqldump.cc), conditional comment or not.
_SQL_LOG_BIN = re.compile(
    rb"^(?:/\*!\d+ )?SET (?:@MYSQLDUMP_TEMP_LOG_BIN = @@SESSION\.SQL_LOG_BIN"
    rb"|@@SESSION\.SQL_LOG_BIN ?= ?(?:0|@MYSQLDUMP_TEMP_LOG_BIN))(?: ?\*/)?$", re.I)
_GTID_PURGED = re.compile(rb"^(?:/\*!\d+ )?SET @@GLOBAL\.GTID_PURGED ?=", re.I)
_ENGINE = re.compile(rb"\bENGINE\s*=\s*(\w+)", re.I)
_QUOTED = re.compile(rb"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"", re.S)
_DATABASE_NAME = re.compile(rb"`(?:[^`]|``)+`")
ALLOWED_ENGINES = {b"INNODB", b"MEMORY"}
SYSTEM_SCHEMAS = {"mysql", "sys", "performance_schema", "information_schema"}
_NAMES_DATABASE = ("use", "create_database", "alter_database")  # what --as renames
_BARE_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@dataclass
class Rewriter:
    """Rewrites statements for the target; counts what it changed for ``restore --check``."""

    azure: bool = True
    definer: str = "strip"  # strip, or "admin": replace with the target's admin user
    admin_user: str = ""
    rename: dict[str, str] = field(default_factory=dict)
    # The databases to restore (by their names in the backup); None: all the backup holds.
    only: frozenset[str] | None = None
    changes: Counter = field(default_factory=Counter)
    blockers: list[str] = field(default_factory=list)
    _tables: dict[str, dict[str, str]] = field(default_factory=dict)

    def rewrite(self, statement: Statement) -> Statement | None:
        """The statement to run, or None to skip it. Row data is never changed."""
        if self._skipped(statement):
            return None
        database = self.rename.get(statement.database, statement.database)
        if statement.kind == "insert":  # rows are never rewritten, only their bookkeeping
            return replace(statement, database=database)
        sql = statement.sql
        if statement.kind == "create_table" and statement.table:
            self._check_case(statement.database, statement.table)
        if self.rename and statement.qualifiers:  # after the DEFINER: its span holds
            sql = self._renamed_qualifiers(statement, sql)
        if self.azure:
            sql = self._for_azure(statement, sql)
            if sql is None:
                return None
        name = statement.name
        if self.rename and statement.kind in _NAMES_DATABASE:
            sql, name = self._renamed(statement, sql), self.rename.get(name, name)
        return replace(statement, sql=sql, database=database, name=name, definer=None,
                       qualifiers=())

    def _skipped(self, statement: Statement) -> bool:
        """Whether the statement belongs to a database not restored (a system schema's
        cannot be restored into Azure)."""
        if self.azure and statement.database in SYSTEM_SCHEMAS:
            self.changes[f"skipped statements of system schema {statement.database}"] += 1
            return True
        if self.only is not None and not self._selected(statement):
            self.changes["skipped statements of databases not restored"] += 1
            return True
        return False

    def _for_azure(self, statement: Statement, sql: bytes) -> bytes | None:
        """``sql`` without what Azure refuses: mysqldump's SQL_LOG_BIN and GTID_PURGED
        statements (None), the header's DEFINER, engines other than InnoDB and MEMORY."""
        if statement.kind == "session" and _SQL_LOG_BIN.match(sql):
            self.changes["removed SQL_LOG_BIN statements"] += 1
            return None
        if statement.kind == "session" and _GTID_PURGED.match(sql):
            self.changes["removed GTID_PURGED statements"] += 1
            return None
        if statement.definer is not None:
            start, end = statement.definer
            sql = sql[:start] + self._definer_replacement() + sql[end:].lstrip(b" ")
            self.changes[f"{'removed' if self.definer == 'strip' else 'replaced'} "
                         "DEFINER clauses"] += 1
        if statement.kind == "create_table":
            sql = self._innodb(sql)
        return sql

    def _selected(self, statement: Statement) -> bool:
        """Whether a statement belongs to a database being restored; the dump's session
        settings (no database, or a SET between objects) belong to every one."""
        if statement.kind == "session":
            return True
        database = (statement.name or statement.database) if statement.kind in \
            _NAMES_DATABASE else statement.database
        return not database or database in self.only

    def _definer_replacement(self) -> bytes:
        if self.definer == "admin":
            return b"DEFINER=" + quote(self.admin_user) + b"@`%` "
        return b""

    def _innodb(self, sql: bytes) -> bytes:
        sql, converted = innodb_engines(sql)
        for engine in converted:
            self.changes[f"converted {engine.decode()} tables to InnoDB"] += 1
        return sql

    def _renamed(self, statement: Statement, sql: bytes) -> bytes:
        """The database name of ``USE``/``CREATE DATABASE``, renamed where it is the target."""
        if statement.name not in self.rename:
            return sql
        self.changes["renamed database references"] += 1
        old = quote(statement.name)
        at = sql.find(old)
        return sql[:at] + quote(self.rename[statement.name]) + sql[at + len(old):]

    def _renamed_qualifiers(self, statement: Statement, sql: bytes) -> bytes:
        """``db.`` in an object's header renamed where ``db`` is renamed (last first, so the
        earlier spans stay valid)."""
        for start, end, name in reversed(statement.qualifiers):
            if name in self.rename:
                new = self.rename[name]
                # Written as it was: a bare name stays bare where the new one may be bare.
                bare = sql[start:start + 1] != b"`" and _BARE_NAME.match(new)
                sql = sql[:start] + (new.encode() if bare else quote(new)) + sql[end:]
                self.changes["renamed database references"] += 1
        return sql

    def _check_case(self, database: str, table: str) -> None:
        seen = self._tables.setdefault(database, {})
        other = seen.get(table.lower())
        if other is not None and other != table:
            self.blockers.append(
                f"tables {database}.{other} and {database}.{table} collide under "
                "lower_case_table_names=1 (Azure's setting)")
        seen.setdefault(table.lower(), table)


def innodb_engines(sql: bytes) -> tuple[bytes, list[bytes]]:
    """A CREATE TABLE with every ENGINE= of the table and its partitions outside quotes set
    to InnoDB (MEMORY stays), and the engines it replaced."""
    quoted = [m.span() for m in _QUOTED.finditer(sql)]
    pieces, converted, last = [], [], 0
    for match in _ENGINE.finditer(sql):
        inside = any(start <= match.start() < end for start, end in quoted)
        engine = match.group(1)
        if inside or engine.upper() in ALLOWED_ENGINES:
            continue
        converted.append(engine)
        pieces += [sql[last:match.start(1)], b"InnoDB"]
        last = match.end(1)
    return (b"".join([*pieces, sql[last:]]) if pieces else sql), converted
