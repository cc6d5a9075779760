"""What a MySQL server holds, asked through information_schema: version, tables, objects.

Used by the backup (the manifest) and by the restore proof (the same questions asked of the
target), so both sides are described the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pymysql

from drkit.mysql.connection import Connection, Server, connect

TRANSACTIONAL_ENGINES = {"InnoDB"}


def server_version(connection: pymysql.Connection) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), @@version_comment")
        version, comment = cursor.fetchone()
    flavour = "mariadb" if "mariadb" in f"{version} {comment}".lower() else "mysql"
    return {"version": version, "flavour": flavour}


def table_engines(connection: pymysql.Connection, databases: list[str]) -> dict[str, str]:
    """``"db.table" -> engine`` for base tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN %s "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME",
            (tuple(databases),),
        )
        return {f"{schema}.{name}": engine for schema, name, engine in cursor.fetchall()}


# What SHOW CREATE TABLE shows, read for every table at once: the table's options, its
# columns, its index parts, its foreign keys and their rules, as rows of (schema, table,
# text), digested per table and part by the server (tens of thousands of rows at 5,000
# tables otherwise cross the wire). Not the AUTO_INCREMENT counter nor row counts or times,
# which ordinary writes move.
_SHAPE_PARTS = (
    # Base tables only (views have columns too): only tables with this part count.
    """SELECT TABLE_SCHEMA s, TABLE_NAME n, CONCAT_WS('|', ENGINE, TABLE_COLLATION, ROW_FORMAT,
       CREATE_OPTIONS, TABLE_COMMENT) x
  FROM information_schema.TABLES WHERE TABLE_SCHEMA IN %(dbs)s AND TABLE_TYPE = 'BASE TABLE'""",
    """SELECT TABLE_SCHEMA s, TABLE_NAME n, CONCAT_WS('|', ORDINAL_POSITION, COLUMN_NAME,
       COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '<no default>'), EXTRA,
       COLLATION_NAME, COLUMN_COMMENT, GENERATION_EXPRESSION) x
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN %(dbs)s""",
    """SELECT TABLE_SCHEMA s, TABLE_NAME n, CONCAT_WS('|', INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME,
       SUB_PART, NON_UNIQUE, INDEX_TYPE, INDEX_COMMENT) x
  FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN %(dbs)s""",
    """SELECT TABLE_SCHEMA s, TABLE_NAME n, CONCAT_WS('|', CONSTRAINT_NAME, ORDINAL_POSITION,
       COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME) x
  FROM information_schema.KEY_COLUMN_USAGE
 WHERE TABLE_SCHEMA IN %(dbs)s AND REFERENCED_TABLE_NAME IS NOT NULL""",
    """SELECT CONSTRAINT_SCHEMA s, TABLE_NAME n, CONCAT_WS('|', CONSTRAINT_NAME, UPDATE_RULE,
       DELETE_RULE) x
  FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN %(dbs)s""",
)
_DEFINITION_BYTES = 64 * 1024 * 1024  # group_concat_max_len: far above any table's text


def table_shapes(server: Server, databases: list[str]) -> dict[str, str]:
    """A digest of every base table's definition, by ``"db.table"``: taken before and after
    the dump, a table whose digest differs (or that appears or goes) was created, dropped or
    altered while it ran. One query a part, not a SHOW CREATE TABLE per table, whose round
    trips made the backup 1.5x mysqldump at 5,000 tables; the parts at once, each on a
    connection of its own, because the server opens every table again for most of them
    (MariaDB: Open_full_table), which took as long as the rest of the backup's own work."""
    with TableShapesRead(server, databases) as read:
        return read.result()


class TableShapesRead:
    """:func:`table_shapes`, read in the background from its start: ``result()`` waits for
    it. Left before that (an error, SIGTERM), the read's connections are cut: a source that
    stopped answering would otherwise hold its threads, and so the run, until it answers."""

    def __init__(self, server: Server, databases: list[str]) -> None:
        self.server, self.databases = server, databases
        self._open: set[Connection] = set()  # the parts' connections, while they read
        self._guard = threading.Lock()
        self._abandoned = False
        self._pool = ThreadPoolExecutor(len(_SHAPE_PARTS), thread_name_prefix="shapes")
        self._parts = [self._pool.submit(self._part, part) for part in _SHAPE_PARTS]

    def __enter__(self) -> TableShapesRead:
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._guard:
            self._abandoned = True
            for connection in self._open:
                connection.cut()
        self._pool.shutdown(cancel_futures=True)

    def result(self) -> dict[str, str]:
        parts = [part.result() for part in self._parts]
        return {table: hashlib.sha256("\n".join(part.get(table, "") for part in parts)
                                      .encode()).hexdigest() for table in parts[0]}

    def _part(self, part: str) -> dict[str, str]:
        with contextlib.closing(connect(self.server)) as connection:
            with self._guard:
                if self._abandoned:  # connected after the cut: not read at all
                    return {}
                self._open.add(connection)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"SET SESSION group_concat_max_len = {_DEFINITION_BYTES}")
                    cursor.execute(f"SELECT s, n, MD5(GROUP_CONCAT(x ORDER BY x SEPARATOR "
                                   f"'\\n')) FROM ({part}) part GROUP BY s, n",
                                   {"dbs": tuple(self.databases)})
                    return {f"{schema}.{table}": digest
                            for schema, table, digest in cursor.fetchall()}
            finally:
                with self._guard:
                    self._open.discard(connection)


# The statements that create, alter, drop or rename a table, as the server counts them in
# SHOW GLOBAL STATUS. Both flavours count a statement when it starts executing, wherever it
# comes from: a client, a prepared statement, a stored program, the replica's applier
# (mysql_execute_command, sql/sql_parse.cc: MySQL 8.0 and MariaDB 10.11). MariaDB counts
# temporary tables apart (Com_create_temporary_table); MySQL 8 counts them here, which
# only costs the check it spares.
_TABLE_DDL_COUNTERS = ("Com_alter_table", "Com_create_table", "Com_drop_table",
                       "Com_rename_table", "Com_create_index", "Com_drop_index", "Com_drop_db")


# Statements that cannot change a table's definition, by their first word (the stored
# functions and triggers such a statement may run cannot run DDL). Anything else running
# (DDL, CALL, EXECUTE, SET STATEMENT ... FOR, a leading comment) may be table DDL.
_NOT_TABLE_DDL = (r"(?i)^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH|DO|SHOW|LOAD|BEGIN|"
                  r"START|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|EXPLAIN|DESCRIBE|DESC|USE|"
                  r"HANDLER|KILL|CHECKSUM)\b")
# Whether every session is in view (the PROCESS privilege, granted to the user itself, not
# through a role), and how many other sessions run a statement that may be table DDL.
_TABLE_DDL_RUNNING = (
    "SELECT (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES"
    "        WHERE PRIVILEGE_TYPE = 'PROCESS' AND GRANTEE = CONCAT('''',"
    "          SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''',"
    "          SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')),"
    "       (SELECT COUNT(*) FROM information_schema.PROCESSLIST"
    "        WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL AND INFO NOT REGEXP %s)")


def table_ddl_counts(connection: pymysql.Connection) -> dict[str, int] | None:
    """How many table DDL statements the server has begun, by counter. Equal counts before
    and after a dump: no table was created, altered, dropped or renamed while it ran, so
    the table shapes need not be read again. A server restart or MariaDB's FLUSH STATUS
    resets them, which reads as a change.

    None where the counts cannot vouch for that: the server does not show every counter;
    or a statement that may be table DDL is running, or may run unseen (no PROCESS
    privilege): counted when it began, before this read, it would change its table after
    it (a long ALTER, one waiting for a metadata lock) and move no counter."""
    with connection.cursor() as cursor:
        try:
            cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN %s", (_TABLE_DDL_COUNTERS,))
            counts = {name.lower(): int(value) for name, value in cursor.fetchall()}
            cursor.execute(_TABLE_DDL_RUNNING, (_NOT_TABLE_DDL,))
            sees_every_session, running = cursor.fetchone()
        except pymysql.err.MySQLError:
            return None
    complete = len(counts) == len(_TABLE_DDL_COUNTERS)
    return counts if complete and sees_every_session and not running else None


def stored_objects(connection: pymysql.Connection, databases: list[str]) -> dict[str, list[str]]:
    """Views, routines, triggers and events as sorted ``"db.name"`` lists (routines typed)."""
    queries = {
        "views": "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS "
                 "WHERE TABLE_SCHEMA IN %s",
        "routines": "SELECT ROUTINE_SCHEMA, CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) "
                    "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN %s",
        "triggers": "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA IN %s",
        "events": "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
                  "WHERE EVENT_SCHEMA IN %s",
    }
    objects = {}
    with connection.cursor() as cursor:
        for kind, query in queries.items():
            cursor.execute(query, (tuple(databases),))
            objects[kind] = sorted(f"{schema}.{name}" for schema, name in cursor.fetchall())
    return objects


# MySQL 8.2 added SHOW BINARY LOG STATUS and 8.4 removed SHOW MASTER STATUS (MySQL 8.4
# manual, "SHOW BINARY LOG STATUS"); MariaDB keeps SHOW MASTER STATUS.
_BINLOG_STATUS = ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
_ER_PARSE = 1064


def binlog_position(connection: pymysql.Connection, flavour: str) -> dict[str, Any]:
    """The binary log coordinates and GTID set now; where they cannot be read, a record
    saying why (``{"file": None, "unavailable": reason}``), never a bare None."""
    gtid_variable = "@@GLOBAL.gtid_binlog_pos" if flavour == "mariadb" else "@@GLOBAL.gtid_executed"
    statements = _BINLOG_STATUS if flavour == "mysql" else _BINLOG_STATUS[::-1]
    row, reason = None, ""
    with connection.cursor() as cursor:
        for statement in statements:
            try:
                cursor.execute(statement)
            except pymysql.err.MySQLError as exc:
                reason = f"{statement}: {exc.args[-1]}"
                if exc.args and exc.args[0] == _ER_PARSE:
                    continue  # this server has the other statement
                return {"file": None, "position": None, "unavailable": reason}
            row, reason = cursor.fetchone(), ""
            break
        if reason:
            return {"file": None, "position": None, "unavailable": reason}
        if row is None:
            return {"file": None, "position": None, "unavailable": "binary logging is off"}
        try:
            cursor.execute(f"SELECT {gtid_variable}")
            gtid = cursor.fetchone()[0]
        except pymysql.err.MySQLError:
            gtid = None
    return {"file": row[0], "position": int(row[1]), "gtid": gtid or None}


def binlog_gtid_readable(connection: pymysql.Connection, position: dict[str, Any]) -> bool:
    """Whether MariaDB's BINLOG_GTID_POS answers for this position (see
    :func:`drkit.mysql.dump.snapshot_options`)."""
    if not position.get("file"):
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)",
                           (position["file"], position["position"]))
            return cursor.fetchone()[0] is not None
    except pymysql.err.MySQLError:
        return False


def binlog_retention(connection: pymysql.Connection) -> timedelta | None:
    """How long the server keeps binlogs; None: RDS with its NULL (purge at once)."""
    with connection.cursor() as cursor:
        try:
            cursor.execute("CALL mysql.rds_show_configuration")
            rows = {row[0]: row[1] for row in cursor.fetchall()}
            hours = rows.get("binlog retention hours")
            return timedelta(hours=int(hours)) if hours is not None else None
        except pymysql.err.MySQLError:
            pass  # not RDS: the server's own expiry
        for variable in ("@@binlog_expire_logs_seconds", "@@expire_logs_days * 86400"):
            try:
                cursor.execute(f"SELECT {variable}")
                seconds = cursor.fetchone()[0]
            except pymysql.err.MySQLError:
                continue
            if seconds:
                return timedelta(seconds=float(seconds))
    return timedelta(days=36500)  # never expired


def object_counts(connection: pymysql.Connection,
                  databases: list[str]) -> dict[str, int | None]:
    """Tables, views, routines and events per database; None where the database is absent."""
    counts: dict[str, int | None] = {}
    with connection.cursor() as cursor:
        for database in databases:
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s)"
                " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)"
                " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s),"
                " (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s)",
                (database,) * 4)
            objects, exists = cursor.fetchone()
            counts[database] = int(objects) if exists else None
    return counts


def max_allowed_packet(connection: pymysql.Connection) -> int:
    """The largest statement the server takes, in bytes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        return int(cursor.fetchone()[0])
