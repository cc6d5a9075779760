"""Recovering a swap a killed (or failed) run left: finished or undone, from its journal.

What to do is read from the server, not from how far the journal says the swap got: where
the marker table is tells whether the tables moved (one RENAME TABLE moved them all, with
it) and whether the swap committed (the marker dropped once the place was checked whole).
Every step is safe to repeat, so a kill during a recovery is recovered by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pymysql

from drkit.console import log_event
from drkit.errors import SwapFailedError
from drkit.failpoints import failpoint
from drkit.mysql import swapsteps as steps
from drkit.mysql.connection import Server, connect
from drkit.mysql.swapjournal import (
    MARKER,
    RECOVER_FIX,
    SwapJournal,
    claimed,
    journal_files,
    remove_journal,
)


def recover_swaps(server: Server, journal_dir: Path, lock_wait_seconds: int = 60) -> list[str]:
    """Finish or undo every swap on ``server`` that a killed or failed run left, as its
    journal under ``journal_dir`` says; what was done, one sentence each. A swap still
    running (its journal locked) is left alone."""
    done: list[str] = []
    connection: pymysql.Connection | None = None
    try:
        for path in journal_files(journal_dir):
            with claimed(path) as data:
                if data is None:
                    continue
                try:
                    journal = SwapJournal.from_json(data, path)
                except ValueError:
                    # A swap it describes may be half done: never passed over in silence.
                    raise SwapFailedError(
                        f"{path} is not a swap journal this drkit can replay (damaged, or an "
                        "earlier drkit's); the swap it stands for may be half done, so "
                        "nothing was restored.",
                        "Compare the databases it names (drkit doctor lists the drkit_* ones) "
                        f"with what they should hold, then move the file out of "
                        f"{journal_dir}.") from None
                if journal.target != server.address:
                    continue
                if connection is None:
                    connection = connect(server)
                    steps.set_lock_wait(connection, lock_wait_seconds)
                try:
                    _, sentence = settle(connection, journal, "recover")
                except pymysql.err.MySQLError as exc:
                    raise SwapFailedError(
                        f"Recovering the interrupted swap of database {journal.place} on "
                        f"{journal.target} failed ({exc.args[-1]}); what it did so far is "
                        f"safe, and the journal {path} stays.",
                        "Fix the cause and run drkit restore --recover-swap again.") from None
                failpoint("recover", "journal")
                remove_journal(path)
                log_event("restore.recovered", sentence, database=journal.place,
                          journal=str(path))
                done.append(sentence)
    finally:
        if connection is not None:
            connection.close()
    return done


@dataclass
class _Seen:
    """What the server holds of a swap's three databases now."""

    exists: dict[str, bool]
    tables: dict[str, set[str]]


def _observe(connection: pymysql.Connection, journal: SwapJournal) -> _Seen:
    names = (journal.place, journal.scratch, journal.old)
    return _Seen({n: steps.exists(connection, n) for n in names},
                 {n: set(steps.base_tables(connection, n)) for n in names})


def settle(connection: pymysql.Connection, journal: SwapJournal,
            point: str) -> tuple[str, str]:
    """Put the swap whole from what the server holds: ("finished" | "undone" | "ended",
    a sentence). Raises SwapFailedError, changing nothing, for a state no step leaves.

    The marker says where the swap was: in the scratch, the tables had not moved; in the
    dated database, they had (one RENAME moved them all) but the place was not yet checked
    whole; dropped there once it was (the commit). The helpers go only after that, or once
    an undo made the place whole again."""
    place, scratch, old = journal.place, journal.scratch, journal.old
    seen = _observe(connection, journal)
    in_scratch, in_old = MARKER in seen.tables[scratch], MARKER in seen.tables[old]
    if in_scratch and in_old:
        _unexpected(journal, f"both {scratch} and {old} hold the marker table")
    if in_old:  # moved, not yet checked: a name check cannot tell mysqldump's stand-in
        # views from the real ones, so what the swap did not check is undone
        if not set(journal.old_tables) <= seen.tables[old]:
            _unexpected(journal, f"{old} lacks some of the old tables")
        _move_back(connection, journal, seen, point)
        seen = _observe(connection, journal)
        in_scratch = True
    if in_scratch:  # the tables are where they were
        return "undone", _undo(connection, journal, seen, point)
    if seen.exists[old]:  # committed: the place was checked whole with the restored copy
        if not set(journal.new_tables) <= seen.tables[place]:
            _unexpected(journal, f"{place} lacks some of the restored tables")
        steps.finish_swap(connection, journal, point)
        return "finished", (
            f"Finished the interrupted swap of database {place} on {journal.target}: it "
            f"holds the restored copy (proven, and checked in place); dropped {scratch} and "
            f"the old tables in {old}.")
    # No marker and no dated database: nothing had changed yet, or a finish or an undo had
    # done its drops; either way the place is whole.
    if journal.place_existed and not seen.exists[place]:
        _unexpected(journal, f"{place} does not exist")
    if seen.exists[scratch]:  # with the restored tables: the swap had not begun
        steps.drop_database(connection, scratch, point)
        return "ended", (f"The interrupted swap of database {place} on {journal.target} "
                         f"had changed nothing: {place} is as it was; dropped the restored "
                         f"copy {scratch}.")
    return "ended", (f"The interrupted swap of database {place} on {journal.target} had "
                     f"ended ({place} is whole); removed its journal.")


def _move_back(connection: pymysql.Connection, journal: SwapJournal, seen: _Seen,
               point: str) -> None:
    """From the moved state back to the one before the RENAME: the place's restored objects
    go (only those the journal made), then one RENAME puts every table back."""
    # A failed swap's own undo may meet old objects not yet dropped: those go too, and are
    # created again from the journal with the rest.
    made = steps.object_keys(journal.new_objects) | steps.object_keys(journal.old_objects)
    # RENAME TABLE moves no table with a trigger to another database: every trigger of the
    # place goes, whatever name the journal knew it by.
    triggers = {key for key in steps.present_objects(connection, journal.place)
                if key[0] == "trigger"}
    steps.drop_objects(connection, journal.place, made | triggers, point)
    if not seen.exists[journal.scratch]:
        steps.create_like(connection, journal.scratch, journal.place, point)
    steps.rename_tables(connection, point,
                        [(journal.place, journal.scratch, journal.new_tables),
                         (journal.old, journal.place, journal.old_tables),
                         (journal.old, journal.scratch, [MARKER])])


def _undo(connection: pymysql.Connection, journal: SwapJournal, seen: _Seen,
          point: str) -> str:
    """The tables are where they were: the place's old objects created again (those
    missing), then the helpers dropped; a place the swap created goes too."""
    place, scratch, old = journal.place, journal.scratch, journal.old
    if journal.place_existed:
        if not seen.exists[place] or not set(journal.old_tables) <= seen.tables[place]:
            _unexpected(journal, f"{place} lacks some of its old tables")
        steps.create_objects(connection, journal.old_objects, place, place, point)
        present = set(steps.present_objects(connection, place))
        if missing := sorted(steps.object_keys(journal.old_objects) - present):
            raise SwapFailedError(
                f"Undoing the swap of database {place} on {journal.target} could not create "
                f"again {', '.join(f'{k} {n}' for k, n in missing)}; nothing was dropped "
                f"and the journal {journal.path} stays.", RECOVER_FIX)
    elif seen.exists[place]:
        if seen.tables[place]:
            _unexpected(journal, f"{place}, which did not exist before the swap, holds tables")
        steps.drop_database(connection, place, point)
    if seen.tables[old] - {MARKER}:
        _unexpected(journal, f"{old} still holds tables")
    for database in (old, scratch):  # the scratch, with the marker, last
        if seen.exists[database]:
            steps.drop_database(connection, database, point)
    if journal.place_existed:
        return (f"Undid the interrupted swap of database {place} on {journal.target}: it is "
                f"as it was before the restore; dropped the restored copy {scratch} and "
                f"{old}.")
    return (f"Undid the interrupted restore of database {place} on {journal.target}: no "
            f"database {place} is left (there was none before); dropped the restored copy "
            f"{scratch}.")


def _unexpected(journal: SwapJournal, what: str) -> NoReturn:
    raise SwapFailedError(
        f"The interrupted swap of database {journal.place} on {journal.target} cannot be "
        f"finished or undone as it is: {what}; nothing was changed.",
        f"Compare {journal.place}, {journal.old} and {journal.scratch} with the table lists "
        f"in the journal {journal.path}, put the tables where they belong (RENAME TABLE), "
        "then run drkit restore --recover-swap again.")

