"""Triggers of the restored databases, set aside while the binlog is replayed and put back
after it: a row event already holds what a trigger did on the source, so firing it again on
the target would do it twice. A replica never fires triggers for row events either.

They are saved as ``SHOW CREATE TRIGGER`` gives them, in their order per table and event,
and dropped. DDL replayed later may create one: it is set aside in turn. A ``DROP TRIGGER``
in the binlog forgets the saved one. Putting them back uses each trigger's own sql_mode; one
whose table is gone by then went with it, as on the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymysql.cursors import Cursor

from drkit.mysql.qualifiers import quote_name
from drkit.stream.statement import without_definer

_DROP_TRIGGER = re.compile(
    rb"^\s*DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(?:(`(?:[^`]|``)+`|[\w$]+)\s*\.\s*)?"
    rb"(`(?:[^`]|``)+`|[\w$]+)", re.IGNORECASE)


@dataclass(frozen=True)
class SavedTrigger:
    database: str
    name: str
    table: str
    sql_mode: str
    statement: bytes  # CREATE TRIGGER ..., its DEFINER left out (the admin creates it)


@dataclass
class TriggersAside:
    databases: list[str]
    saved: dict[tuple[str, str], SavedTrigger] = field(default_factory=dict)

    def set_aside(self, cursor: Cursor) -> None:
        """Saves and drops every trigger the databases have now."""
        cursor.execute(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM "
            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (" +
            ", ".join(["%s"] * len(self.databases)) + ") ORDER BY TRIGGER_SCHEMA, "
            "EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            self.databases)
        for database, name, table in cursor.fetchall():
            cursor.execute(f"SHOW CREATE TRIGGER {quote_name(database)}.{quote_name(name)}")
            _, sql_mode, statement, *_ = cursor.fetchone()
            self.saved[(database.lower(), name.lower())] = SavedTrigger(
                database, name, table, sql_mode, without_definer(statement.encode()))
            cursor.execute(f"DROP TRIGGER {quote_name(database)}.{quote_name(name)}")

    def dropped(self, sql: bytes, database: str | None) -> bool:
        """Whether ``sql`` drops a trigger set aside (it is then forgotten, not run: the
        target no longer has it)."""
        match = _DROP_TRIGGER.match(sql)
        if match is None:
            return False
        schema = _name(match.group(1)) if match.group(1) else database
        key = ((schema or "").lower(), _name(match.group(2)).lower())
        return self.saved.pop(key, None) is not None

    def put_back(self, cursor: Cursor) -> list[str]:
        """Creates the saved triggers again; returns those whose table is gone."""
        gone = []
        for trigger in self.saved.values():
            cursor.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                           "AND TABLE_NAME = %s", (trigger.database, trigger.table))
            if not cursor.fetchall():
                gone.append(f"{trigger.database}.{trigger.name}")
                continue
            cursor.execute("SET sql_mode = %s", (trigger.sql_mode,))
            cursor.execute(f"USE {quote_name(trigger.database)}")
            cursor.execute(trigger.statement)
        self.saved.clear()
        return gone


def _name(written: bytes) -> str:
    if written.startswith(b"`"):
        return written[1:-1].replace(b"``", b"`").decode()
    return written.decode()
