"""Putting a restored copy in the place of a database, with no instant where anything is lost.

A restore loads the backup into a scratch database and proves it there; then
:func:`plan_swap` reads both databases' tables and views, triggers, routines and events (as
mysqldump writes them, ``--no-data``) and refuses, changing nothing, a swap it could not
undo (objects of another definer, foreign keys of other databases into the old tables).
The place may also not exist yet, or be empty: then there is nothing old to keep.
:func:`swap_in` then:

1. writes a journal (fsync'd, 0600, never overwritten) holding all a recovery needs: the
   three names, both table lists, both databases' object statements, the target;
2. creates a marker table in the scratch and takes every table's lock once, so another
   session's long transaction stops the swap before anything changed;
3. creates the dated database (and the place, if it does not exist), drops the place's old
   objects and the scratch's triggers (RENAME TABLE moves neither a view nor a table with
   triggers to another database; the journal holds them all);
4. one RENAME TABLE moves every old table and the marker into the dated database and every
   restored table into the place, atomically;
5. creates the restored objects in the place, checks the place against what was restored,
   and commits: drops the marker; then drops the scratch, the dated database, the journal.

A ``kill -9`` at any instant leaves a state :func:`recover_swaps` reads back from the server
and puts whole, by where the marker is: in the scratch, nothing had moved: the old objects
missing from the place are created again from the journal and the helpers dropped; in the
dated database, the tables had moved but the place was not checked: the restored objects go,
one RENAME puts every table back, and the same follows; nowhere while the dated database
exists, the swap had committed: the helpers are dropped. Each step is safe to repeat, so a
kill during a recovery is recovered by the next one. A failure (not a kill) of steps 3 to 5
runs the same recovery at once. SIGTERM waits until the swap is done or undone.
``failpoint("swap")`` before each statement that changes something lets tests kill it at
an exact step (:mod:`drkit.failpoints`). The journal is :mod:`drkit.mysql.swapjournal`, the
recovery :mod:`drkit.mysql.swaprecover`, the statements both share
:mod:`drkit.mysql.swapsteps`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pymysql

from drkit.console import log_event
from drkit.errors import DrkitError, RunStopped, SwapFailedError, TargetNotEmptyError
from drkit.failpoints import failpoint
from drkit.interrupts import deferred_signals
from drkit.mysql import swapsteps as steps
from drkit.mysql.connection import Server, connect
from drkit.mysql.swapjournal import (
    MARKER,
    SwapJournal,
    pending_journals,
    remove_journal,
    write_journal,
)
from drkit.mysql.swaprecover import recover_swaps, settle
from drkit.stream.statement import Statement
from drkit.stream.statement import quote_name as _q

__all__ = ["SwapJournal", "SwapPlan", "drop_scratch", "pending_journals", "plan_swap",
           "recover_swaps", "scratch_names", "swap_in"]


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
    place_existed: bool = True  # False: the swap creates the place (nothing old to keep)


def plan_swap(server: Server, place: str, scratch: str, old: str,
              replace: bool = True) -> SwapPlan:
    """Read both databases and refuse, changing nothing, a swap that could not be undone:
    objects of another definer (this login may not create them again, as on Flexible
    Server without SUPER), and foreign keys of other databases into the old tables (they
    would follow the old tables away). The place may be absent or empty; without
    ``replace``, one that came to hold anything while the copy loaded is refused."""
    with contextlib.closing(connect(server)) as connection:
        existed = steps.exists(connection, place)
        try:
            current = _read(server, connection, place) if existed and steps.holds_anything(
                connection, place) else _Database(place, [], [])
            restored = _read(server, connection, scratch)
        except RunStopped:
            raise  # SIGTERM/SIGINT while reading: the run stops (143/130), no swap failed
        except DrkitError as error:
            raise SwapFailedError(f"Database {place} cannot be swapped out: {error.message} "
                                  "Nothing was changed.") from None
        if not replace and (current.tables or current.objects):
            raise TargetNotEmptyError(
                f"Database {place} appeared on the target while the restore loaded, and holds "
                "data now; nothing was put in its place.",
                "Restore under another name with --as, or pass --replace to replace it by the "
                "restored copy.")
        if MARKER in current.tables or MARKER in restored.tables:
            raise SwapFailedError(f"Database {place} or its restored copy holds a table named "
                                  f"{MARKER}, the name the swap uses for its marker; nothing "
                                  "was changed.", "Restore under another name with --as.")
        if existed and (foreign := _foreign_definers(connection, place)):
            raise SwapFailedError(
                f"Database {place} holds objects of another definer ({', '.join(foreign)}), "
                "which this login could not create again if the swap had to be undone; "
                "nothing was changed.",
                "Restore under another name with --as, or drop or re-create those objects "
                "as this user first.")
        if existed and (referrers := _foreign_keys_into(connection, place)):
            raise SwapFailedError(
                f"Tables of other databases have foreign keys into {place} "
                f"({', '.join(referrers)}); a swap would leave them pointing at the old "
                "tables; nothing was changed.",
                "Restore under another name with --as, or drop those keys first.")
    return SwapPlan(place, scratch, old, current, restored, existed)


def swap_in(server: Server, plan: SwapPlan, lock_wait_seconds: int, journal: Path) -> None:
    """Put ``plan.scratch`` in the place of ``plan.place``, keeping the old tables as
    ``plan.old`` until it is done; then drop both helpers. Before anything changes, the
    journal is written to ``journal`` and every table's lock is taken once: a lock another
    session holds longer than ``lock_wait_seconds`` stops the swap there."""
    place, scratch, old = plan.place, plan.scratch, plan.old
    record = SwapJournal(server.address, place, scratch, old, plan.place_existed,
                         list(plan.current.tables), list(plan.restored.tables),
                         list(plan.current.objects), list(plan.restored.objects))
    try:
        fd = write_journal(journal, record)
    except (OSError, SwapFailedError) as error:
        drop_scratch(server, [scratch])  # as any swap that did not begin
        if isinstance(error, SwapFailedError):
            raise
        raise SwapFailedError(f"Swapping the restored copy in for database {place} could not "
                              f"write its journal {journal} ({error.strerror or error}); "
                              f"nothing was changed and {place} is as it was.",
                              "Free space or fix the permissions under backup.state_dir, then "
                              "restore again.") from None
    try:
        failpoint("swap", "journal written")
        with contextlib.closing(connect(server)) as connection, deferred_signals(
                f"database {place} was replaced by the restored copy (proven before the swap)"):
            steps.set_lock_wait(connection, lock_wait_seconds)
            try:
                steps.run(connection, "swap", "marker",
                          f"CREATE TABLE {_q(scratch)}.{_q(MARKER)} (id INT PRIMARY KEY)")
                _probe_locks(connection, plan)
            except (SwapFailedError, pymysql.err.MySQLError) as error:
                steps.drop_database(connection, scratch)
                remove_journal(journal)
                if isinstance(error, SwapFailedError):
                    raise
                raise SwapFailedError(f"Swapping the restored copy in for database {place} "
                                      f"could not begin ({error.args[-1]}); nothing was "
                                      f"changed and {place} is as it was.",
                                      "Fix the cause and restore again.") from None
            log_event("restore.swap", f"Swapping the restored copy {scratch} in for {place}; "
                      f"the old tables stay in {old} until it is done (journal: {journal})",
                      database=place, scratch=scratch, old=old, journal=str(journal))
            try:
                _forward(connection, record)
            except (pymysql.err.MySQLError, DrkitError) as error:
                reason = error.args[-1] if isinstance(error, pymysql.err.MySQLError) else error
                _settle_after_failure(server, record, reason, lock_wait_seconds)
                return
            log_event("restore.swapped", f"The restored copy is now {place}", database=place)
            try:
                steps.finish_swap(connection, record, "swap")
            except pymysql.err.MySQLError as exc:
                log_event("restore.old_kept", f"The restored copy is now {place}, but "
                          f"dropping {scratch} or {old} failed ({exc.args[-1]}): the next "
                          f"restore on this target, or drkit restore --recover-swap, drops them "
                          f"(journal: {journal})", logging.WARNING, database=old)
                return
            failpoint("swap", "helpers dropped")
            remove_journal(journal)
    finally:
        os.close(fd)


def _forward(connection: pymysql.Connection, journal: SwapJournal) -> None:
    """Steps 3 to 5: every statement passes a failpoint first (``DRKIT_FAILPOINT``)."""
    place, scratch, old = journal.place, journal.scratch, journal.old
    if journal.place_existed:
        steps.create_like(connection, old, place)
    else:
        steps.create_like(connection, old, scratch)
        steps.create_like(connection, place, scratch)
    # Only the objects the journal holds: anything else stays where it is.
    steps.drop_objects(connection, place, steps.object_keys(journal.old_objects), "swap")
    triggers = {k for k in steps.present_objects(connection, scratch) if k[0] == "trigger"}
    steps.drop_objects(connection, scratch, triggers, "swap")
    steps.rename_tables(connection, "swap", [(place, old, journal.old_tables),
                                             (scratch, place, journal.new_tables),
                                             (scratch, old, [MARKER])])
    steps.create_objects(connection, journal.new_objects, scratch, place, "swap")
    failpoint("swap", "check")
    if missing := steps.missing_new(connection, journal):
        raise SwapFailedError(f"after the swap, {place} lacks {', '.join(missing)}")
    steps.run(connection, "swap", "commit", f"DROP TABLE {_q(old)}.{_q(MARKER)}")


def _settle_after_failure(server: Server, journal: SwapJournal, reason: object,
                          lock_wait_seconds: int) -> None:
    """A step failed (not a kill): recover at once, on a connection of its own (the swap's
    may be what broke). Returns if the place turned out whole with the restored copy."""
    try:
        with contextlib.closing(connect(server)) as connection:
            steps.set_lock_wait(connection, lock_wait_seconds)
            outcome, sentence = settle(connection, journal, "swap")
    except (pymysql.err.MySQLError, DrkitError) as error:
        detail = error.args[-1] if isinstance(error, pymysql.err.MySQLError) else error
        raise SwapFailedError(
            f"Swapping the restored copy in for database {journal.place} failed ({reason}) "
            f"and undoing it failed too ({detail}): nothing was dropped; the old tables are "
            f"in {journal.place} or {journal.old}, the restored ones in {journal.place} or "
            f"{journal.scratch}, and the journal {journal.path} holds the rest.",
            "Once the cause is fixed, run drkit restore --recover-swap: it finishes or "
            "undoes the swap from the journal. Do not drop those databases by hand.") from None
    assert journal.path is not None
    remove_journal(journal.path)
    if outcome == "finished":
        log_event("restore.swapped", f"The restored copy is now {journal.place} ({sentence})",
                  database=journal.place)
        return
    raise SwapFailedError(
        f"Swapping the restored copy in for database {journal.place} failed ({reason}); it "
        f"was undone and {journal.place} is as it was before the restore.",
        "Fix the cause and restore again.") from None


def _probe_locks(connection: pymysql.Connection, plan: SwapPlan) -> None:
    """Take and release every table's write lock once, so that a long transaction of
    another session stops the swap before anything was dropped, not halfway."""
    tables = [f"{_q(db)}.{_q(t)} WRITE" for db, database in ((plan.place, plan.current),
                                                               (plan.scratch, plan.restored))
              for t in database.tables]
    if not tables:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLES " + ", ".join(tables))
            cursor.execute("UNLOCK TABLES")
    except pymysql.err.MySQLError as exc:
        raise SwapFailedError(
            f"Swapping the restored copy in for database {plan.place} could not lock its "
            f"tables ({exc.args[-1]}); nothing was changed and {plan.place} is as it was.",
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


def _read(server: Server, connection: pymysql.Connection, database: str) -> _Database:
    return _Database(database, steps.base_tables(connection, database),
                     list(steps.object_statements(server, database)))


def drop_scratch(server: Server, databases: list[str]) -> bool:
    """Drop scratch databases of a restore that did not get to its swap; whether it worked."""
    try:
        with contextlib.closing(connect(server)) as connection:
            for database in databases:
                steps.drop_database(connection, database)
    except (pymysql.err.MySQLError, DrkitError):
        return False
    return True

