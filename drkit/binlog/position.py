"""Where a standby stands in the binlog archive: ``drkit_standby.position`` on the target.

One row: the archived file and the offset where the next event to apply begins, the source
time of the last transaction applied and its newest heartbeat, the base backup the standby
grew from, and the databases it keeps (the source's name -> the target's). The row is
updated by the same transaction as the changes it accounts for (the replay's ``mark``,
:class:`drkit.binlog.txgroup.TransactionGroup`): whatever instant the follower is killed at,
the target holds the changes up to the row's offset and none after it.

Beside it, ``drkit_standby.triggers_aside``: the standby's triggers as a catch-up found them
before the replay set them aside (dropped them, :mod:`drkit.binlog.triggers`), until it put
them back; a follower killed outright leaves them there for the next run to create again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pymysql.converters import escape_string
from pymysql.cursors import Cursor

from drkit.binlog.triggers import SavedTrigger
from drkit.stream.statement import quote_name, without_definer

SCHEMA = "drkit_standby"
TABLE = f"{SCHEMA}.position"
TRIGGERS = f"{SCHEMA}.triggers_aside"

_CREATE = f"""CREATE TABLE {TABLE} (
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
  promoted TEXT NULL)"""
_CREATE_TRIGGERS = f"""CREATE TABLE {TRIGGERS} (
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


def create(cursor: Cursor, position: Position) -> None:
    """Makes the schema and its one row (the standby must not have one yet)."""
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    cursor.execute(_CREATE)
    cursor.execute(_CREATE_TRIGGERS)
    cursor.execute(
        f"INSERT INTO {TABLE} (id, databases_json, base_backup, file, file_offset, "
        "last_event_at, updated_at) VALUES (1, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (json.dumps(position.databases), position.base_backup, position.file,
         position.offset, _naive(position.last_event_at)))


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
            "updated_at = UTC_TIMESTAMP(6) WHERE id = 1").encode()


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
