"""The schema a dump creates, as text a proof can compare: every table's CREATE TABLE and
every view, routine, trigger and event's CREATE, read from the dump stream itself.

Normalised only where a faithful restore may differ: the DEFINER clause of the header (the
target's admin owns the objects), the AUTO_INCREMENT table option (the next value, which
InnoDB recomputes from the rows), and the database's own name (``--as`` restores under
another). Columns, types, defaults, generated expressions, invisibility, keys, foreign keys,
partitioning and bodies stay, so any difference in them is a difference of the proof.
"""

from __future__ import annotations

import re

from drkit.stream.qualifier_reader import database_qualifiers, trigger_body_start
from drkit.stream.statement import Statement, quote

PLACEHOLDER = "`<database>`"
_AUTO_INCREMENT = re.compile(rb"^(\).*?) AUTO_INCREMENT=\d+", re.M)


def schema_entry(statement: Statement) -> tuple[str, str] | None:
    """``("table db.t", text)`` for a CREATE TABLE, ``("view db.v", text)`` and so on for
    the other objects; None for any other statement."""
    if statement.kind == "create_table" and statement.table is not None:
        kind, name = "table", statement.table
    elif statement.kind == "create_object" and statement.name is not None:
        kind, name = statement.object_kind, statement.name
    else:
        return None
    sql = statement.sql
    if statement.definer is not None:
        start, end = statement.definer
        sql = sql[:start] + sql[end:].lstrip(b" ")
    sql = _AUTO_INCREMENT.sub(rb"\1", sql)
    text = sql.decode("utf-8", "surrogateescape")
    return f"{kind} {statement.database}.{name}", as_placeholder(text, statement.database)


def as_placeholder(text: str, database: str) -> str:
    """``text`` with ``database`` as a qualifier (quoted, or bare as a trigger may keep it)
    replaced by the placeholder: a copy under another name has the same definition."""
    text = text.replace(quote(database).decode("utf-8", "surrogateescape"), PLACEHOLDER)
    return re.sub(rf"(?<![\w$`]){re.escape(database)}(?=\.)", PLACEHOLDER, text)


def names_own_database(kind: str, text: str) -> bool:
    """Whether an object's body (a trigger's after FOR EACH ROW) names its own database:
    restored under another name, it would still act on the original one. Only where SQL's
    grammar makes the placeholder a database: ``<database>.emp_no`` after ``FROM
    <database>`` is a table named like its database, and the placeholder has erased which
    bare names were the database's, so ``x.col`` with an unknown ``x`` counts as no database."""
    sql = text.encode("utf-8", "surrogateescape")
    start = trigger_body_start(sql) if kind == "trigger" else 0
    return any(qualifier.certain and qualifier.name == PLACEHOLDER[1:-1]
               and qualifier.start >= start for qualifier in database_qualifiers(sql))
