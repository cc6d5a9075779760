"""Putting a restored copy in the place of a database, with no moment where data is lost.

``restore --replace`` loads the backup into a scratch database and proves it there; only
then does :func:`swap_in` put it in place:

1. the views, triggers, routines and events of both databases are read as mysqldump writes
   them (``--no-data``) and kept in memory;
2. those of the old database, and the scratch's views and triggers, are dropped: RENAME
   TABLE moves neither a view nor a table with triggers to another database;
3. one RENAME TABLE moves every old table into a dated database and every restored one into
   place, atomically;
4. the objects are created again from what step 1 read: the restored ones in place, the old
   ones beside the old tables, so the dated database is a whole copy of what was replaced
   until the end;
5. the place is checked against what was restored (tables and objects by name), then the
   scratch and the dated database are dropped.

A failure in steps 2 to 5 puts everything back as it was (tables renamed back, the old
objects created again from step 1) and drops the scratch; if even that fails, the error
names the databases that hold the data. SIGTERM waits until the swap is done or undone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql

from drkit.console import log_event
from drkit.errors import DrkitError, DumpFailedError, SwapFailedError
from drkit.interrupts import deferred_signals
from drkit.mysql import dump, inventory
from drkit.mysql.connection import Server, connect, option_file
from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import Statement, quote, unquote

# mysqldump's drops before it creates an object (never DROP TABLE: that is for tables).
_DROP_OBJECT = re.compile(rb"^(?:/\*!\d+ )?DROP (VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT) "
                          rb"(?:IF EXISTS )?(`(?:[^`]|``)+`|\w+)", re.I)
_SESSION_KINDS = ("session", "use", "alter_database")


@dataclass
class _Database:
    name: str
    tables: list[str]
    objects: list[Statement]  # as mysqldump writes them, in its order


def scratch_names(databases: list[str], stamp: str) -> dict[str, tuple[str, str]]:
    """Per database to replace: the scratch it is restored into and the dated name the old
    one is kept under during the swap (lower case: Azure folds names)."""
    return {database: (f"drkit_restore_{stamp}_{index}", f"drkit_replaced_{stamp}_{index}")
            for index, database in enumerate(databases, start=1)}


def swap_in(server: Server, place: str, scratch: str, old: str, lock_wait_seconds: int) -> None:
    """Put database ``scratch`` in the place of ``place``; keep ``place`` as ``old`` until
    the swap is done, then drop both helpers. A lock held longer than ``lock_wait_seconds``
    by another session on the old tables makes it give up (and undo)."""
    with contextlib.closing(connect(server)) as connection, deferred_signals():
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_seconds,))
        current = _read(server, connection, place)
        restored = _read(server, connection, scratch)
        log_event("restore.swap", f"Swapping the restored copy {scratch} in for {place}; "
                  f"the old tables stay in {old} until it is done",
                  database=place, scratch=scratch, old=old)
        moved = False
        try:
            _create_like(connection, old, place)
            _drop_objects(connection, place, ("views", "triggers", "routines", "events"))
            _drop_objects(connection, scratch, ("views", "triggers"))
            _rename(connection, [(place, old, current.tables), (scratch, place, restored.tables)])
            moved = True
            _create_objects(connection, current.objects, place, old, strip_definer=True)
            _create_objects(connection, restored.objects, scratch, place)
            _check_in_place(connection, place, restored)
        except (pymysql.err.MySQLError, DrkitError) as error:
            reason = error.args[-1] if isinstance(error, pymysql.err.MySQLError) else error
            _undo(connection, place, scratch, old, current, restored, moved, reason)
        _drop_database(connection, scratch)
        _drop_database(connection, old)
    log_event("restore.swapped", f"The restored copy is now {place}; the old one is dropped",
              database=place)


def _undo(connection: pymysql.Connection, place: str, scratch: str, old: str,
          current: _Database, restored: _Database, moved: bool, reason: object) -> None:
    """Everything back as before the swap, then raise what went wrong. What is undone is
    read from the server: a step may have stopped halfway (a lock not granted)."""
    try:
        if moved:
            _drop_objects(connection, place, ("views", "triggers", "routines", "events"))
            _drop_objects(connection, old, ("views", "triggers"))
            _rename(connection, [(place, scratch, restored.tables),
                                 (old, place, current.tables)])
        _create_objects(connection, current.objects, place, place)
        _drop_database(connection, old)
        _drop_database(connection, scratch)
    except (pymysql.err.MySQLError, DrkitError) as error:
        detail = error.args[-1] if isinstance(error, pymysql.err.MySQLError) else error
        raise SwapFailedError(
            f"Swapping the restored copy in for database {place} failed ({reason}) and "
            f"undoing it failed too ({detail}): the old tables are in {place} or {old}, "
            f"the restored ones in {place} or {scratch}; nothing was dropped.",
            f"Compare {place} with {old} before you drop anything; the run log lists the "
            "steps.") from None
    raise SwapFailedError(
        f"Swapping the restored copy in for database {place} failed ({reason}); it was "
        f"undone and {place} is as it was before the restore.",
        "Fix the cause and restore again.") from None


def _read(server: Server, connection: pymysql.Connection, database: str) -> _Database:
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                       " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (database,))
        tables = [name for (name,) in cursor.fetchall()]
    return _Database(database, tables, list(_object_statements(server, database)))


def _object_statements(server: Server, database: str) -> Iterator[Statement]:
    """The statements that create ``database``'s views, triggers, routines and events, with
    the session settings mysqldump wraps them in; tables and rows are left out."""
    client = dump.dump_client()
    lexer = SqlLexer()
    with option_file(server) as options:
        process = dump.DumpProcess(client.command(options, [database], ("--no-data",)),
                                   options)
        statements: list[Statement] = []
        try:
            for chunk in process.chunks():
                statements += lexer.feed(chunk)
            statements += lexer.close()
        except BaseException:
            process.stop()  # never leave mysqldump blocked on a pipe nobody reads
            raise
        code = process.wait()
    if code != 0:
        raise DumpFailedError(f"Reading the objects of database {database} failed "
                              f"({process.stderr or code}).")
    yield from (s for s in statements if s.kind in _SESSION_KINDS or s.kind == "create_object"
                or (s.kind == "other" and _DROP_OBJECT.match(s.sql)))


def _create_like(connection: pymysql.Connection, database: str, like: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                       "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (like,))
        charset, collation = cursor.fetchone()
        cursor.execute(f"CREATE DATABASE {_q(database)} CHARACTER SET {charset} "
                       f"COLLATE {collation}")


def _drop_objects(connection: pymysql.Connection, database: str, kinds: tuple[str, ...]) -> None:
    with connection.cursor() as cursor:
        for kind, name in sorted(_present(connection, database)):
            if f"{kind}s" in kinds or kind in ("procedure", "function") and "routines" in kinds:
                cursor.execute(f"DROP {kind.upper()} IF EXISTS {_q(database)}.{_q(name)}")


def _rename(connection: pymysql.Connection,
            moves: list[tuple[str, str, list[str]]]) -> None:
    """One RENAME TABLE for all moves: the old and new tables change places at once."""
    pairs = [f"{_q(source)}.{_q(table)} TO {_q(target)}.{_q(table)}"
             for source, target, tables in moves for table in tables]
    if pairs:
        with connection.cursor() as cursor:
            cursor.execute("RENAME TABLE " + ", ".join(pairs))


def _create_objects(connection: pymysql.Connection, statements: list[Statement],
                    source: str, database: str, strip_definer: bool = False) -> None:
    """Run mysqldump's statements for ``source``'s objects in ``database``, leaving out the
    objects it already has. ``strip_definer`` for the short-lived copy of the old objects:
    their definer may be a user this login cannot act as."""
    present = _present(connection, database)
    rewriter = Rewriter(azure=strip_definer, rename={source: database} if source != database
                        else {})
    for statement in statements:
        if _object_key(statement) in present:
            continue
        rewritten = rewriter.rewrite(statement)
        if rewritten is not None:
            connection.query(bytes(rewritten.sql))


def _present(connection: pymysql.Connection, database: str) -> set[tuple[str, str]]:
    """(kind, name) of every view, trigger, routine and event in ``database``."""
    present = set()
    for kind, names in inventory.stored_objects(connection, [database]).items():
        for qualified in names:
            name = qualified.split(".", 1)[1]
            if kind == "routines":  # "procedure p"
                routine_kind, _, name = name.partition(" ")
                present.add((routine_kind, name))
            else:
                present.add((kind.rstrip("s"), name))
    return present


def _object_key(statement: Statement) -> tuple[str, str] | None:
    """The object a statement creates or drops, as (kind, name)."""
    if statement.kind == "create_object" and statement.object_kind and statement.name:
        return statement.object_kind, statement.name
    if statement.kind == "other" and (drop := _DROP_OBJECT.match(statement.sql)):
        name = drop.group(2)
        return drop.group(1).decode().lower(), (
            unquote(name[1:-1]) if name.startswith(b"`") else name.decode())
    return None


def _check_in_place(connection: pymysql.Connection, place: str, restored: _Database) -> None:
    """The place now holds the restored tables and objects, by name."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                       " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (place,))
        tables = [name for (name,) in cursor.fetchall()]
    expected = len({(s.object_kind, s.name) for s in restored.objects
                    if s.kind == "create_object"})  # a view's stand-in has its name too
    found = sum(len(v) for v in inventory.stored_objects(connection, [place]).values())
    if tables != restored.tables or found != expected:
        raise SwapFailedError(f"after the swap, {place} holds {len(tables)} tables and "
                              f"{found} objects, not the {len(restored.tables)} tables and "
                              f"{expected} objects restored")


def _drop_database(connection: pymysql.Connection, database: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {_q(database)}")


def _q(name: str) -> str:
    return quote(name).decode("utf-8", "surrogateescape")
