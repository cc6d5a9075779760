"""The statements a swap and its recovery share (:mod:`drkit.mysql.swap`).

Each one that changes something passes ``failpoint(point)`` first, so that a test can kill
the run at exactly that statement; reading the server's state passes none.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pymysql

from drkit.errors import SwapFailedError
from drkit.failpoints import failpoint
from drkit.mysql import dump, inventory
from drkit.mysql.connection import Server
from drkit.mysql.swapjournal import SwapJournal
from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import Statement, unquote
from drkit.stream.statement import quote_name as _q

# mysqldump's drops before it creates an object (never DROP TABLE: that is for tables).
_DROP_OBJECT = re.compile(rb"^(?:/\*!\d+ )?DROP (VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT) "
                          rb"(?:IF EXISTS )?(`(?:[^`]|``)+`|\w+)", re.I)
_SESSION_KINDS = ("session", "use", "alter_database")
Key = tuple[str, str]  # (kind, lower-case name) of a view, trigger, routine or event


def run(connection: pymysql.Connection, point: str, label: str, sql: str | bytes) -> None:
    """One statement that changes something, after its failpoint."""
    failpoint(point, label)
    if isinstance(sql, bytes):
        connection.query(sql)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def set_lock_wait(connection: pymysql.Connection, seconds: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION lock_wait_timeout = %s", (seconds,))


def exists(connection: pymysql.Connection, database: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                       (database,))
        return bool(cursor.fetchone()[0])


def holds_anything(connection: pymysql.Connection, database: str) -> bool:
    """Tables, views, routines or events (a trigger needs a table): an empty database needs
    no dump to be read."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s)"
            " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)"
            " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s)",
            (database,) * 3)
        return bool(cursor.fetchone()[0])


def base_tables(connection: pymysql.Connection, database: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                       " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (database,))
        return [name for (name,) in cursor.fetchall()]


def object_statements(server: Server, database: str) -> Iterator[Statement]:
    """The statements that create ``database``'s views, triggers, routines and events, with
    the session settings mysqldump wraps them in; tables and rows are left out."""
    lexer = SqlLexer()
    statements: list[Statement] = []
    chunks = dump.dump_chunks(server, [database], "to read its objects", ("--no-data",))
    with contextlib.closing(chunks):
        for chunk in chunks:
            statements += lexer.feed(chunk)
    statements += lexer.close()
    yield from (s for s in statements if s.kind in _SESSION_KINDS or s.kind == "create_object"
                or (s.kind == "other" and _DROP_OBJECT.match(s.sql)))


def create_like(connection: pymysql.Connection, database: str, like: str,
                point: str = "swap") -> None:
    """Create ``database`` with the character set and collation of ``like``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                       "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (like,))
        row = cursor.fetchone()
    if row is None:
        raise SwapFailedError(f"database {like} no longer exists")
    charset, collation = row
    run(connection, point, f"create database {database}",
        f"CREATE DATABASE {_q(database)} CHARACTER SET {charset} COLLATE {collation}")


def rename_tables(connection: pymysql.Connection, point: str,
                  moves: list[tuple[str, str, list[str]]]) -> None:
    """One RENAME TABLE for all moves: the old and new tables change places at once."""
    pairs = [f"{_q(source)}.{_q(table)} TO {_q(target)}.{_q(table)}"
             for source, target, tables in moves for table in tables]
    if pairs:
        run(connection, point, "rename", "RENAME TABLE " + ", ".join(pairs))


def create_objects(connection: pymysql.Connection, statements: list[Statement],
                   source: str, database: str, point: str) -> None:
    """Run mysqldump's statements for ``source``'s objects in ``database``, leaving out the
    triggers, routines and events it already has, so that a repeat after a kill makes only
    what is missing. Views are always made again as mysqldump writes them (a stand-in first,
    dropped for the real one later): a stand-in left by a kill has the view's name."""
    present = present_objects(connection, database)
    rewriter = Rewriter(azure=False, rename={source: database} if source != database else {})
    for statement in statements:
        key = object_key(statement)
        if key is not None and key[0] != "view" and (
                key in present or statement.kind != "create_object"):
            continue  # there already, or mysqldump's DROP of one that is not
        rewritten = rewriter.rewrite(statement)
        if rewritten is None:
            continue
        if key is None:  # session settings: nothing a kill could leave half-done
            connection.query(bytes(rewritten.sql))
        else:
            verb = "create" if statement.kind == "create_object" else "drop"
            run(connection, point, f"{verb} {key[0]} {key[1]}", bytes(rewritten.sql))


def drop_objects(connection: pymysql.Connection, database: str, keys: set[Key],
                 point: str) -> None:
    """Drop those of ``keys`` that ``database`` holds, one statement each."""
    present = present_objects(connection, database)
    for kind, name in ordered(keys & set(present)):
        spelt = present[kind, name]
        run(connection, point, f"drop {kind} {database}.{spelt}",
            f"DROP {kind.upper()} IF EXISTS {_q(database)}.{_q(spelt)}")


def present_objects(connection: pymysql.Connection, database: str) -> dict[Key, str]:
    """Every view, trigger, routine and event in ``database``: its key, and its name as the
    server spells it (for a DROP)."""
    present = {}
    for kind, names in inventory.stored_objects(connection, [database]).items():
        for qualified in names:
            name = qualified.split(".", 1)[1]
            if kind == "routines":  # "procedure p"
                routine_kind, _, name = name.partition(" ")
                present[routine_kind, name.lower()] = name
            else:
                present[kind.rstrip("s"), name.lower()] = name
    return present


def object_key(statement: Statement) -> Key | None:
    """The object a statement creates or drops."""
    if statement.kind == "create_object" and statement.object_kind and statement.name:
        return statement.object_kind, statement.name.lower()
    if statement.kind == "other" and (drop := _DROP_OBJECT.match(statement.sql)):
        name = drop.group(2)
        return drop.group(1).decode().lower(), (
            unquote(name[1:-1]) if name.startswith(b"`") else name.decode()).lower()
    return None


def object_keys(statements: list[Statement]) -> set[Key]:
    """The objects the statements create (a view's stand-in has its name too)."""
    return {key for s in statements if s.kind == "create_object"
            and (key := object_key(s)) is not None}


def ordered(keys: set[Key]) -> list[Key]:
    """Triggers first, then views, routines and events: a fixed order, so that a failpoint
    stops the same statement every run."""
    rank = {"trigger": 0, "view": 1, "procedure": 2, "function": 3, "event": 4}
    return sorted(keys, key=lambda k: (rank.get(k[0], 9), k[1]))


def missing_new(connection: pymysql.Connection, journal: SwapJournal) -> list[str]:
    """What of the restored copy the place lacks, by name."""
    tables = set(base_tables(connection, journal.place))
    objects = set(present_objects(connection, journal.place))
    return ([f"table {t}" for t in journal.new_tables if t not in tables]
            + [f"{k} {n}" for k, n in ordered(object_keys(journal.new_objects) - objects)])


def drop_database(connection: pymysql.Connection, database: str, point: str = "") -> None:
    """DROP DATABASE; with a failpoint, only one that exists (a repeat passes no point)."""
    if point:
        if not exists(connection, database):
            return
        failpoint(point, f"drop {database}")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {_q(database)}")


def finish_swap(connection: pymysql.Connection, journal: SwapJournal, point: str) -> None:
    """The place holds the restored copy: the scratch goes first, the old tables last."""
    for database in (journal.scratch, journal.old):
        drop_database(connection, database, point)

