"""Triggers of the restored databases, set aside while the binlog is replayed and put back
after it: a row event already holds what a trigger did on the source, so firing it again on
the target would do it twice. A replica never fires triggers for row events either.

They are saved as ``SHOW CREATE TRIGGER`` gives them, in their order per table and event,
and dropped. DDL replayed later may create one: it is set aside in turn (one created to
follow or precede a trigger set aside is created without saying so, and saved in that
place: the target has no such trigger to name). A ``DROP TRIGGER`` in the binlog forgets
the saved one, a ``DROP TABLE`` those of its table (as the server does); a rename of a
table with saved triggers is refused (their text names the old table). Putting them back
uses each trigger's own sql_mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymysql
from pymysql.cursors import Cursor

from drkit.errors import BinlogArchiveError
from drkit.stream.statement import quote_name, unquote_name, without_definer

_DROP_TABLE = re.compile(rb"^\s*DROP\s+(?:TEMPORARY\s+)?TABLES?\b", re.IGNORECASE)
# A name quoted (backticks, or double quotes under ANSI_QUOTES) or bare, UTF-8 included.
_NAME = rb'(?:`(?:[^`]|``)+`|"(?:[^"]|"")+"|(?:[\w$]|[\x80-\xff])+)'
_DROP_TRIGGER = re.compile(
    rb"^\s*DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(?:(" + _NAME + rb")\s*\.\s*)?(" + _NAME + rb")",
    re.IGNORECASE)
# CREATE TRIGGER's header up to its order clause (FOLLOWS/PRECEDES), if any: token by
# token, so that quoted names and comments between the words do not mislead it.
_GAP = rb"(?:\s|/\*(?:[^*]|\*(?!/))*\*/|(?:--(?=\s)|#)[^\n]*(?:\n|$))+"
_QUALIFIED = _NAME + rb"(?:\s*\.\s*" + _NAME + rb")?"
_ACCOUNT = rb"(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|[^\s@`'\"]+)"
_TRIGGER_HEADER = re.compile(
    rb"^\s*CREATE" + _GAP + rb"(?:OR" + _GAP + rb"REPLACE" + _GAP + rb")?"
    rb"(?:DEFINER\s*=\s*(?:CURRENT_USER(?:\s*\(\s*\))?|" + _ACCOUNT + rb"(?:\s*@\s*" +
    _ACCOUNT + rb")?)" + _GAP + rb")?TRIGGER" + _GAP +
    rb"(?:IF" + _GAP + rb"NOT" + _GAP + rb"EXISTS" + _GAP + rb")?" + _QUALIFIED + _GAP +
    rb"(?:BEFORE|AFTER)" + _GAP + rb"(?:INSERT|UPDATE|DELETE)" + _GAP + rb"ON" + _GAP +
    _QUALIFIED + _GAP + rb"FOR" + _GAP + rb"EACH" + _GAP + rb"ROW"
    rb"(" + _GAP + rb"(FOLLOWS|PRECEDES)" + _GAP + rb"(" + _NAME + rb"))?",
    re.IGNORECASE)


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
            # One made again (CREATE OR REPLACE) goes last, as its new ACTION_ORDER does.
            self.saved.pop((database.lower(), name.lower()), None)
            self.saved[(database.lower(), name.lower())] = SavedTrigger(
                database, name, table, sql_mode, without_definer(statement.encode()))
            cursor.execute(f"DROP TRIGGER {quote_name(database)}.{quote_name(name)}")

    def dropped(self, sql: bytes, database: str | None) -> bool:
        """Whether ``sql`` drops a trigger set aside (it is then forgotten, not run: the
        target no longer has it)."""
        match = _DROP_TRIGGER.match(sql)
        if match is None:
            return False
        schema = unquote_name(match.group(1)) if match.group(1) else database
        key = ((schema or "").lower(), unquote_name(match.group(2)).lower())
        return self.saved.pop(key, None) is not None

    def creatable(self, sql: bytes) -> bytes:
        """``sql`` as the target can run it: a CREATE TRIGGER without the FOLLOWS/PRECEDES
        that names a trigger set aside (``after_ddl`` saves the new one in that place)."""
        order = _order_clause(sql)
        if order is None or not any(t.name.lower() == unquote_name(order.group(3)).lower()
                                    for t in self.saved.values()):
            return sql
        return sql[:order.start(1)] + sql[order.end(1):]

    def after_ddl(self, cursor: Cursor, sql: bytes) -> None:
        """After a replayed DDL statement: sets aside a trigger it created (in the place
        its FOLLOWS/PRECEDES names); forgets those of a table it dropped (their server drops
        them with it); refuses to go on when it renamed such a table away (their text names
        the old table)."""
        before = dict(self.saved)
        self.set_aside(cursor)
        created = [key for key, trigger in self.saved.items() if before.get(key) is not trigger]
        if created and (order := _order_clause(sql)):
            self._place(created[0], order.group(2).upper() == b"FOLLOWS",
                        unquote_name(order.group(3)).lower())
        gone = [key for key, trigger in self.saved.items() if not _exists(cursor, trigger)]
        if gone and not _DROP_TABLE.match(sql):
            trigger = self.saved[gone[0]]
            raise BinlogArchiveError(
                f"A statement of the binlog renamed table {trigger.database}.{trigger.table}, "
                f"whose trigger {trigger.name} drkit set aside for the replay and could not "
                "put back on the new name; nothing after it was applied.",
                "Restore to a time before the rename.")
        for key in gone:
            del self.saved[key]

    def _place(self, key: tuple[str, str], follows: bool, anchor: str) -> None:
        """Moves saved trigger ``key`` right after (or before) ``anchor`` of its database:
        put back in this order, they fire in it."""
        if (key[0], anchor) not in self.saved:
            return
        moved = self.saved.pop(key)
        order: dict[tuple[str, str], SavedTrigger] = {}
        for other, trigger in self.saved.items():
            if other == (key[0], anchor) and not follows:
                order[key] = moved
            order[other] = trigger
            if other == (key[0], anchor) and follows:
                order[key] = moved
        self.saved = order

    def put_back(self, cursor: Cursor) -> None:
        """Creates the saved triggers again, each under its own sql_mode."""
        for trigger in self.saved.values():
            cursor.execute("SET sql_mode = %s", (trigger.sql_mode,))
            cursor.execute(f"USE {quote_name(trigger.database)}")
            try:
                cursor.execute(trigger.statement)
            except pymysql.err.MySQLError as exc:
                raise BinlogArchiveError(
                    f"Trigger {trigger.database}.{trigger.name}, set aside for the replay, "
                    f"could not be created again after it ({exc.args[0]}: "
                    f"{str(exc.args[-1])[:120]}), as it stood on the source.",
                    "Restore to a time before the change that broke it, or fix the trigger "
                    "on the source.") from None
        self.saved.clear()


def _order_clause(sql: bytes) -> re.Match[bytes] | None:
    """CREATE TRIGGER's header when it has an order clause (groups 2, 3: FOLLOWS or
    PRECEDES, the trigger named)."""
    header = _TRIGGER_HEADER.match(sql)
    return header if header and header.group(1) else None


def _exists(cursor: Cursor, trigger: SavedTrigger) -> bool:
    cursor.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                   "TABLE_NAME = %s", (trigger.database, trigger.table))
    return bool(cursor.fetchall())

