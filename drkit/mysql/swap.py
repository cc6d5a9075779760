"""Putting a restored copy in the place of a database, with no moment where data is lost.

``restore --replace`` loads the backup into a scratch database and proves it there; then
:func:`plan_swap` reads both databases' views, triggers, routines and events (as mysqldump
writes them, ``--no-data``) and refuses, changing nothing, a swap it could not undo
(objects of another definer, foreign keys of other databases into the old tables). Then
:func:`swap_in`:

1. writes the old objects' SQL to a journal file under the state directory (what a
   ``kill -9`` cannot take away) and takes every table's lock once, so another session's
   long transaction stops the swap before anything changed;
2. creates the dated database and copies the old routines and events into it;
3. drops the views and triggers of both (RENAME TABLE moves neither a view nor a table
   with triggers to another database);
4. one RENAME TABLE moves every old table into the dated database and every restored one
   into place, atomically;
5. creates the old views and triggers beside the old tables (the dated database is then a
   whole copy of what was replaced), replaces the routines and events in place, creates
   the restored objects, and checks the place against what was restored;
6. drops the scratch and the dated database (kept, with a warning, where another
   database's key still needs it).

A failure in steps 2 to 5 puts everything back as it was (tables renamed back, the old
objects created again) and drops the scratch; if even that fails, the error names the
databases that hold the data and the journal. SIGTERM waits until the swap is done or
undone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql

from drkit.console import log_event
from drkit.errors import DrkitError, SwapFailedError
from drkit.interrupts import deferred_signals
from drkit.mysql import dump, inventory
from drkit.mysql.connection import Server, connect
from drkit.mysql.qualifiers import quote_name as _q
from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import Statement, unquote

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
    one is kept under during the swap (lower case: Azure folds names). A token per run keeps
    two runs started in the same second out of each other's databases."""
    run = secrets.token_hex(3)
    return {database: (f"drkit_restore_{stamp}_{run}_{index}",
                       f"drkit_replaced_{stamp}_{run}_{index}")
            for index, database in enumerate(databases, start=1)}


@dataclass
class SwapPlan:
    """What a swap will move, read and checked before anything changes."""

    place: str
    scratch: str
    old: str
    current: _Database
    restored: _Database


def plan_swap(server: Server, place: str, scratch: str, old: str) -> SwapPlan:
    """Read both databases and refuse, changing nothing, a swap that could not be undone:
    objects of another definer (this login may not create them again, as on Flexible
    Server without SUPER), and foreign keys of other databases into the old tables (they
    would follow the old tables away)."""
    with contextlib.closing(connect(server)) as connection:
        try:
            current = _read(server, connection, place)
            restored = _read(server, connection, scratch)
        except DrkitError as error:
            raise SwapFailedError(f"Database {place} cannot be swapped out: {error.message} "
                                  "Nothing was changed.") from None
        if foreign := _foreign_definers(connection, place):
            raise SwapFailedError(
                f"Database {place} holds objects of another definer ({', '.join(foreign)}), "
                "which this login could not create again if the swap had to be undone; "
                "nothing was changed.",
                "Restore under another name with --as, or drop or re-create those objects "
                "as this user first.")
        if referrers := _foreign_keys_into(connection, place):
            raise SwapFailedError(
                f"Tables of other databases have foreign keys into {place} "
                f"({', '.join(referrers)}); a swap would leave them pointing at the old "
                "tables; nothing was changed.",
                "Restore under another name with --as, or drop those keys first.")
    return SwapPlan(place, scratch, old, current, restored)


def swap_in(server: Server, plan: SwapPlan, lock_wait_seconds: int, journal: Path) -> None:
    """Put ``plan.scratch`` in the place of ``plan.place``; keep the old database as
    ``plan.old`` until the swap is done, then drop both helpers. Before anything changes,
    the old objects' SQL is written to ``journal`` and every table's lock is taken once:
    a lock another session holds longer than ``lock_wait_seconds`` stops the swap there."""
    place, scratch, old = plan.place, plan.scratch, plan.old
    current, restored = plan.current, plan.restored
    journal.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal.write_bytes(b";\n".join(bytes(s.sql) for s in current.objects) + b";\n")
    with contextlib.closing(connect(server)) as connection, deferred_signals(
            f"database {place} was replaced by the restored copy (proven before the swap)"):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_seconds,))
        try:
            _probe_locks(connection, place, scratch, current, restored)
        except SwapFailedError:
            _drop_database(connection, scratch)
            journal.unlink(missing_ok=True)
            raise
        log_event("restore.swap", f"Swapping the restored copy {scratch} in for {place}; "
                  f"the old tables stay in {old} until it is done (old objects' SQL: "
                  f"{journal})", database=place, scratch=scratch, old=old, journal=str(journal))
        moved = False
        try:
            _create_like(connection, old, place)
            # Routines and events need no tables: copied before anything is dropped.
            _create_objects(connection, current.objects, place, old, _UNBOUND,
                            strip_definer=True)
            _drop_objects(connection, place, ("views", "triggers"))
            _drop_objects(connection, scratch, ("views", "triggers"))
            _rename(connection, [(place, old, current.tables), (scratch, place, restored.tables)])
            moved = True
            _create_objects(connection, current.objects, place, old, _BOUND,
                            strip_definer=True)
            _drop_objects(connection, place, ("routines", "events"))
            _create_objects(connection, restored.objects, scratch, place)
            _check_in_place(connection, place, restored)
        except (pymysql.err.MySQLError, DrkitError) as error:
            reason = error.args[-1] if isinstance(error, pymysql.err.MySQLError) else error
            _undo(connection, place, scratch, old, current, restored, moved, reason)
        log_event("restore.swapped", f"The restored copy is now {place}", database=place)
        _drop_database(connection, scratch)
        try:
            _drop_database(connection, old)
        except pymysql.err.MySQLError as exc:
            log_event("restore.old_kept", f"The old copy stays as {old}: it could not be "
                      f"dropped ({exc.args[-1]}); drop it once nothing needs it", logging.WARNING,
                      database=old)
    journal.unlink(missing_ok=True)


_UNBOUND = ("procedure", "function", "event")  # objects that need no table
_BOUND = ("view", "trigger")


def _probe_locks(connection: pymysql.Connection, place: str, scratch: str,
                 current: _Database, restored: _Database) -> None:
    """Take and release every table's write lock once, so that a long transaction of
    another session stops the swap before anything was dropped, not halfway."""
    tables = [f"{_q(db)}.{_q(t)} WRITE" for db, database in ((place, current),
                                                               (scratch, restored))
              for t in database.tables]
    if not tables:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLES " + ", ".join(tables))
            cursor.execute("UNLOCK TABLES")
    except pymysql.err.MySQLError as exc:
        raise SwapFailedError(
            f"Swapping the restored copy in for database {place} could not lock its tables "
            f"({exc.args[-1]}); nothing was changed and {place} is as it was.",
            "Let the other session's transaction end (SHOW PROCESSLIST shows it), or raise "
            "restore.swap_lock_wait_seconds, then restore again.") from None


def _foreign_definers(connection: pymysql.Connection, database: str) -> list[str]:
    """Objects whose DEFINER is not this login, unless it may set any definer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        me = cursor.fetchone()[0]
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall()).upper()
        if "ALL PRIVILEGES ON *.*" in grants or "SUPER" in grants or "SET USER" in grants:
            return []
        cursor.execute(
            "SELECT CONCAT(TRIGGER_NAME, ' (', DEFINER, ')') FROM information_schema.TRIGGERS"
            " WHERE TRIGGER_SCHEMA = %s AND DEFINER <> %s UNION ALL "
            "SELECT CONCAT(ROUTINE_NAME, ' (', DEFINER, ')') FROM information_schema.ROUTINES"
            " WHERE ROUTINE_SCHEMA = %s AND DEFINER <> %s UNION ALL "
            "SELECT CONCAT(TABLE_NAME, ' (', DEFINER, ')') FROM information_schema.VIEWS"
            " WHERE TABLE_SCHEMA = %s AND DEFINER <> %s UNION ALL "
            "SELECT CONCAT(EVENT_NAME, ' (', DEFINER, ')') FROM information_schema.EVENTS"
            " WHERE EVENT_SCHEMA = %s AND DEFINER <> %s", (database, me) * 4)
        return sorted(row[0] for row in cursor.fetchall())


def _foreign_keys_into(connection: pymysql.Connection, database: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME) FROM "
                       "information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                       "UNIQUE_CONSTRAINT_SCHEMA = %s AND CONSTRAINT_SCHEMA <> %s",
                       (database, database))
        return sorted(row[0] for row in cursor.fetchall())


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
    return _Database(database, _base_tables(connection, database),
                     list(_object_statements(server, database)))


def _base_tables(connection: pymysql.Connection, database: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                       " AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (database,))
        return [name for (name,) in cursor.fetchall()]


def _object_statements(server: Server, database: str) -> Iterator[Statement]:
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
                    source: str, database: str, kinds: tuple[str, ...] | None = None,
                    strip_definer: bool = False) -> None:
    """Run mysqldump's statements for ``source``'s objects of ``kinds`` (all: None) in
    ``database``, leaving out the objects it already has. ``strip_definer`` for the
    short-lived copy of the old objects."""
    present = _present(connection, database)
    rewriter = Rewriter(azure=strip_definer, rename={source: database} if source != database
                        else {})
    for statement in statements:
        key = _object_key(statement)
        if key in present or (key is not None and kinds is not None and key[0] not in kinds):
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
    tables = _base_tables(connection, place)
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


def drop_scratch(server: Server, databases: list[str]) -> bool:
    """Drop scratch databases of a restore that did not get to its swap; whether it worked."""
    try:
        with contextlib.closing(connect(server)) as connection:
            for database in databases:
                _drop_database(connection, database)
    except (pymysql.err.MySQLError, DrkitError):
        return False
    return True
