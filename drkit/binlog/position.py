"""Where a standby stands in the binlog archive: ``drkit_standby.position`` on the target.

One row: the archived file and the offset where the next event to apply begins, the source
time of the last transaction applied and its newest heartbeat, the base backup the standby
grew from, and the databases it keeps (the source's name -> the target's). The row is
updated by the same transaction as the changes it accounts for (the replay's ``mark``,
:class:`drkit.binlog.txgroup.TransactionGroup`): whatever instant the follower is killed at,
the target holds the changes up to the row's offset and none after it.

DDL commits by itself: its position cannot share its commit. Before it runs, the row notes
it as pending (``ddl_pending``: the position after it, and a digest of the standby's
definitions then), in a commit of its own; its position, after it, clears the note. A
follower killed in between leaves the note, and the next run settles it before anything
else (:func:`settle_ddl`): definitions no longer as the digest says mean the DDL took
effect (the position moves past it), the same ones that it did not, or changed nothing (it
runs again). Never once more after it took effect: ``ALTER TABLE ... ADD COLUMN`` run twice
would stop the follow; a rename run twice would change what it names.

Beside it, ``drkit_standby.triggers_aside``: the standby's triggers as a catch-up found them
before the replay set them aside (dropped them, :mod:`drkit.binlog.triggers`), until it put
them back; a follower killed outright leaves them there for the next run to create again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pymysql
from pymysql.converters import escape_string
from pymysql.cursors import Cursor

from drkit.binlog.triggers import SavedTrigger
from drkit.failpoints import failpoint
from drkit.stream.statement import quote_name, without_definer

SCHEMA = "drkit_standby"
TABLE = f"{SCHEMA}.position"
TRIGGERS = f"{SCHEMA}.triggers_aside"
# The standby an init is making, noted before its restore and dropped once its position is
# written: a rerun after a kill in between finishes it (drkit.ops.standby.init_standby).
INIT = f"{SCHEMA}.init_under_way"

_CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  id TINYINT UNSIGNED PRIMARY KEY,
  databases_json TEXT NOT NULL,
  base_backup VARCHAR(255) NOT NULL,
  file VARCHAR(255) NOT NULL,
  file_offset BIGINT UNSIGNED NOT NULL,
  last_event_at DATETIME NULL,
  heartbeat DATETIME(6) NULL,
  updated_at DATETIME(6) NOT NULL,
  caught_up_at DATETIME(6) NULL,
  last_catch_up TEXT NULL,
  diverged TEXT NULL,
  promoted TEXT NULL,
  ddl_pending TEXT NULL)"""
_CREATE_TRIGGERS = f"""CREATE TABLE IF NOT EXISTS {TRIGGERS} (
  seq INT UNSIGNED PRIMARY KEY,
  database_name VARCHAR(64) NOT NULL,
  trigger_name VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  sql_mode TEXT NOT NULL,
  statement LONGBLOB NOT NULL)"""


@dataclass
class Position:
    databases: dict[str, str]  # the source's name -> the target's
    base_backup: str
    file: str
    offset: int  # where the next event to apply begins in ``file``
    last_event_at: datetime | None = None  # source time of the last transaction applied
    heartbeat: datetime | None = None  # the newest drkit_heartbeat beat applied
    updated_at: datetime | None = None
    caught_up_at: datetime | None = None  # the end of the last catch-up
    last_catch_up: dict | None = None  # what it applied and how long it took
    diverged: str | None = None  # why it no longer equals the source: never followed again
    promoted: str | None = None  # by which failover: the primary now, never followed again


def to_record(at: Position) -> dict[str, Any]:
    """The position as JSON can hold it (times in ISO 8601)."""
    return {name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(at).items()}


def from_record(record: dict[str, Any]) -> Position:
    times = ("last_event_at", "heartbeat", "updated_at", "caught_up_at")
    return Position(**{name: datetime.fromisoformat(value) if name in times and value
                       else value for name, value in record.items()})


def begin_init(cursor: Cursor, position: Position) -> None:
    """Notes the standby an init is about to restore (committed, before the restore)."""
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {INIT} (id TINYINT UNSIGNED PRIMARY KEY, "
                   "position_json TEXT NOT NULL)")
    cursor.execute(f"REPLACE INTO {INIT} VALUES (1, %s)", (json.dumps(to_record(position)),))
    cursor.connection.commit()


def unfinished_init(cursor: Cursor) -> Position | None:
    """The standby an init noted and did not finish (it was stopped), if any."""
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                   "AND TABLE_NAME = 'init_under_way'", (SCHEMA,))
    if not cursor.fetchone()[0]:
        return None
    cursor.execute(f"SELECT position_json FROM {INIT} WHERE id = 1")
    row = cursor.fetchone()
    return from_record(json.loads(row[0])) if row else None


def forget_init(cursor: Cursor) -> None:
    """The init's note goes: its restore failed, nothing of it is in place (said on the
    way out of a failure: one of the target's own is not to hide it)."""
    with contextlib.suppress(pymysql.err.MySQLError):
        cursor.execute(f"DROP TABLE IF EXISTS {INIT}")


def create(cursor: Cursor, position: Position) -> None:
    """Makes the schema and its one row (the standby must not have one yet), committed; the
    init's note goes after it. Each step may be done again after a kill: the row is last."""
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    cursor.execute(_CREATE)
    cursor.execute(_CREATE_TRIGGERS)
    cursor.execute(
        f"INSERT INTO {TABLE} (id, databases_json, base_backup, file, file_offset, "
        "last_event_at, updated_at) VALUES (1, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (json.dumps(position.databases), position.base_backup, position.file,
         position.offset, _naive(position.last_event_at)))
    cursor.connection.commit()
    cursor.execute(f"DROP TABLE IF EXISTS {INIT}")


def exists(cursor: Cursor) -> bool:
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                   "AND TABLE_NAME = 'position'", (SCHEMA,))
    return cursor.fetchone()[0] > 0


def read(cursor: Cursor) -> Position | None:
    """The standby's position, or None when the target has none."""
    if not exists(cursor):
        return None
    cursor.execute(f"SELECT databases_json, base_backup, file, file_offset, last_event_at, "
                   "heartbeat, updated_at, caught_up_at, last_catch_up, diverged, promoted "
                   f"FROM {TABLE} WHERE id = 1")
    row = cursor.fetchone()
    if row is None:
        return None
    databases, base, file, offset, event_at, beat, updated, caught_up, last, diverged, \
        promoted = row
    return Position(json.loads(databases), base, file, int(offset), _utc(event_at),
                    _utc(beat), _utc(updated), _utc(caught_up),
                    json.loads(last) if last else None, diverged, promoted)


def advance(file: str, offset: int, event_at: int, heartbeat: str | None) -> bytes:
    """The statement that moves the position past a transaction ending at ``offset`` of
    ``file`` (``event_at``: its source time, epoch seconds). Literals only: it runs in the
    replay's session (time zone UTC), among its statements."""
    moment = datetime.fromtimestamp(event_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    beat = "heartbeat" if heartbeat is None else f"'{escape_string(heartbeat)}'"
    # The newest beat stays when this transaction holds none (GREATEST of NULL is NULL).
    beat_value = f"COALESCE(GREATEST(heartbeat, {beat}), {beat})"
    return (f"UPDATE {TABLE} SET file = '{escape_string(file)}', file_offset = {int(offset)}, "
            f"last_event_at = '{moment}', heartbeat = {beat_value}, "
            "updated_at = UTC_TIMESTAMP(6), ddl_pending = NULL WHERE id = 1").encode()


def ddl_ahead(file: str, offset: int, event_at: int, heartbeat: str | None,
              databases: list[str]) -> Callable[[Cursor], None]:
    """Work for the replay's session before a DDL statement ending at ``offset`` of
    ``file`` runs: what was applied before it committed, then the DDL noted as pending
    with the digest of ``databases``' definitions, committed."""
    def note(cursor: Cursor) -> None:
        cursor.connection.commit()  # the transactions before it, as the DDL would
        pending = {"file": file, "offset": offset, "event_at": event_at,
                   "heartbeat": heartbeat, "definitions": definitions_digest(cursor, databases)}
        cursor.execute(f"UPDATE {TABLE} SET ddl_pending = %s WHERE id = 1",
                       (json.dumps(pending),))
        cursor.connection.commit()
        failpoint("standby.ddl_pending")  # noted, not yet run
    return note


def add_ddl_pending(cursor: Cursor) -> None:
    """A standby made before ``ddl_pending`` existed gains it (MySQL 8 has no ADD COLUMN IF
    NOT EXISTS: looked up first)."""
    cursor.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                   "AND TABLE_NAME = 'position' AND COLUMN_NAME = 'ddl_pending'", (SCHEMA,))
    if not cursor.fetchone()[0]:
        cursor.execute(f"ALTER TABLE {TABLE} ADD COLUMN ddl_pending TEXT NULL")


def settle_ddl(cursor: Cursor, databases: list[str]) -> bool | None:
    """The DDL a killed follower left pending, settled (see the module's text): True when
    it took effect (the position moved past it), False when it runs again, None when none
    was pending."""
    cursor.execute(f"SELECT ddl_pending FROM {TABLE} WHERE id = 1")
    row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    pending = json.loads(row[0])
    took_effect = definitions_digest(cursor, databases) != pending["definitions"]
    cursor.execute(advance(pending["file"], pending["offset"], pending["event_at"],
                           pending["heartbeat"]) if took_effect else
                   f"UPDATE {TABLE} SET ddl_pending = NULL WHERE id = 1")
    cursor.connection.commit()
    return took_effect


# What DDL changes, per kind of object: definitions only, never what the data moves
# (row counts, AUTO_INCREMENT, cardinality), nor times (read in the session's time zone).
_DEFINITIONS = (
    "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
    "information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({})",
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, CREATE_OPTIONS, "
    "TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
    "COLUMN_DEFAULT, EXTRA, COLLATION_NAME, COLUMN_COMMENT, GENERATION_EXPRESSION FROM "
    "information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({})",
    "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, "
    "SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({})",
    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM "
    "information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({})",
    "SELECT CONSTRAINT_SCHEMA, CONSTRAINT_NAME, CHECK_CLAUSE FROM "
    "information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({})",
    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, "
    "UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
    "CONSTRAINT_SCHEMA IN ({})",
    "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE "
    "TABLE_SCHEMA IN ({})",
    "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, SQL_MODE, "
    "ROUTINE_COMMENT FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({})",
    "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, "
    "EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE "
    "TRIGGER_SCHEMA IN ({})",
    "SELECT EVENT_SCHEMA, EVENT_NAME, EVENT_DEFINITION, INTERVAL_VALUE, INTERVAL_FIELD, "
    "STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN ({})",
)


def definitions_digest(cursor: Cursor, databases: list[str]) -> str:
    """sha256 of the definitions of ``databases`` and everything in them (order-free)."""
    digest = hashlib.sha256()
    for query in _DEFINITIONS:
        cursor.execute(query.format(", ".join(["%s"] * len(databases))), databases)
        for row in sorted(repr(row) for row in cursor.fetchall()):
            digest.update(row.encode() + b"\n")
        digest.update(b"--\n")
    return digest.hexdigest()


def record_catch_up(cursor: Cursor, summary: dict,
                    idle_at: tuple[str, int] | None = None) -> None:
    """Notes the end of a catch-up and what it did (its own transaction, after it); with
    ``idle_at``, moves the position there: past events between transactions, which change
    nothing on the target."""
    moved = ", file = %s, file_offset = %s" if idle_at else ""
    cursor.execute(f"UPDATE {TABLE} SET caught_up_at = UTC_TIMESTAMP(6), last_catch_up = %s"
                   f"{moved} WHERE id = 1", (json.dumps(summary), *(idle_at or ())))
    cursor.connection.commit()


def record_divergence(cursor: Cursor, why: str) -> None:
    """The standby no longer equals the source: said once, kept for every later run."""
    cursor.execute(f"UPDATE {TABLE} SET diverged = %s WHERE id = 1", (why,))
    cursor.connection.commit()


def record_promotion(cursor: Cursor, by: str) -> None:
    """The standby is the primary now (``by``: which failover): no follower applies the
    archive to it again."""
    cursor.execute(f"UPDATE {TABLE} SET promoted = %s WHERE id = 1", (by,))
    cursor.connection.commit()


def drop(cursor: Cursor) -> None:
    """The standby is no more (its databases were replaced): its position goes with it."""
    cursor.execute(f"DROP DATABASE IF EXISTS {SCHEMA}")


def keep_triggers(cursor: Cursor, databases: list[str]) -> None:
    """Commits the definitions of the triggers ``databases`` have now, in their order."""
    cursor.execute(f"DELETE FROM {TRIGGERS}")
    cursor.execute(
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema."
        "TRIGGERS WHERE TRIGGER_SCHEMA IN (" + ", ".join(["%s"] * len(databases)) + ") ORDER "
        "BY TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
        "ACTION_ORDER", databases)
    for seq, (database, name, table) in enumerate(cursor.fetchall()):
        cursor.execute(f"SHOW CREATE TRIGGER {quote_name(database)}.{quote_name(name)}")
        _, sql_mode, statement, *_ = cursor.fetchone()
        cursor.execute(f"INSERT INTO {TRIGGERS} VALUES (%s, %s, %s, %s, %s, %s)",
                       (seq, database, name, table, sql_mode,
                        without_definer(statement.encode())))
    cursor.connection.commit()


def triggers_left_aside(cursor: Cursor) -> list[SavedTrigger]:
    """The triggers a catch-up set aside and did not put back (it was killed), that the
    standby lacks and whose table it has, in their order."""
    cursor.execute(f"SELECT database_name, trigger_name, table_name, sql_mode, statement FROM "
                   f"{TRIGGERS} t WHERE NOT EXISTS (SELECT 1 FROM information_schema.TRIGGERS "
                   "WHERE TRIGGER_SCHEMA = t.database_name AND TRIGGER_NAME = t.trigger_name) "
                   "AND EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                   "t.database_name AND TABLE_NAME = t.table_name) ORDER BY seq")
    return [SavedTrigger(database, name, table, sql_mode, bytes(statement))
            for database, name, table, sql_mode, statement in cursor.fetchall()]


def forget_triggers(cursor: Cursor) -> None:
    """The catch-up put its triggers back."""
    cursor.execute(f"DELETE FROM {TRIGGERS}")
    cursor.connection.commit()


def _naive(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if moment else None


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value else None
