"""Database qualifiers (``shop.t``) in SQL text: what a statement replayed under another
database name must have renamed, found outside strings and comments where SQL's grammar
makes a name a database (:func:`drkit.stream.qualifier_reader.database_qualifiers`)."""

from __future__ import annotations

from drkit.stream.qualifier_reader import database_qualifiers
from drkit.stream.statement import quote


def rename_qualified(sql: bytes, renames: dict[str, str], seen: set[str] | None = None, *,
                     ansi_quotes: bool = False, backslash_escapes: bool = True) -> bytes:
    """``db.`` qualifiers renamed where ``db`` is renamed; strings and comments untouched,
    the code in ``/*!...*/`` read as code (the server runs it). A qualifier is a database
    only where the grammar puts one (``db.t`` where a table is named, ``db.t.c``,
    ``db.f(``): ``t.c`` in an expression, with ``t`` a table or alias of the statement (one
    named like its database too), stays. Every database so read is added to ``seen``.
    ``ansi_quotes`` and ``backslash_escapes`` are the statement's sql_mode (ANSI_QUOTES; not
    NO_BACKSLASH_ESCAPES)."""
    out, at = bytearray(), 0
    # An uncertain one (x.col, no table x in the statement) is renamed too: the source ran
    # the statement, so x stood somewhere this reader does not know as a table's place; a
    # wrong rename fails on the target, a missed one would act on the original database.
    for qualifier in database_qualifiers(sql, ansi_quotes=ansi_quotes,
                                         backslash_escapes=backslash_escapes):
        if seen is not None:
            seen.add(qualifier.name)
        if qualifier.name in renames:
            out += sql[at:qualifier.start] + quote(renames[qualifier.name])
            at = qualifier.end
    return bytes(out + sql[at:])
