"""What a MySQL server holds, asked through information_schema: version, tables, objects.

Used by the backup (the manifest) and by the restore proof (the same questions asked of the
target), so both sides are described the same way.
"""

from __future__ import annotations

from typing import Any

import pymysql

from drkit.stream.schema import schema_entry
from drkit.stream.statement import Statement, quote

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


def table_definitions(connection: pymysql.Connection, databases: list[str]) -> dict[str, str]:
    """Every base table's CREATE TABLE, normalised as the manifest keeps it
    (:func:`drkit.stream.schema.schema_entry`), by ``"db.table"``."""
    definitions = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE "
                       "TABLE_SCHEMA IN %s AND TABLE_TYPE = 'BASE TABLE'", (tuple(databases),))
        for database, table in cursor.fetchall():
            try:
                cursor.execute(f"SHOW CREATE TABLE {quote(database).decode('utf-8')}."
                               f"{quote(table).decode('utf-8')}")
            except pymysql.err.ProgrammingError:  # dropped since it was listed
                continue
            sql = cursor.fetchone()[1].encode("utf-8", "surrogateescape")
            entry = schema_entry(Statement(sql, "create_table", database, table))
            if entry is not None:
                definitions[f"{database}.{table}"] = entry[1]
    return definitions


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
