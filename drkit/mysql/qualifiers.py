"""Database qualifiers (``shop.t``) in SQL text: what a statement replayed under another
database name must have renamed, found outside strings and comments."""

from __future__ import annotations

import re

from drkit.stream.statement import quote, unquote


def rename_qualified(sql: bytes, renames: dict[str, str], seen: set[str] | None = None, *,
                     ansi_quotes: bool = False, backslash_escapes: bool = True) -> bytes:
    """``db.`` qualifiers renamed where ``db`` is renamed; strings and comments untouched,
    the code in ``/*!...*/`` read as code (the server runs it). Every name used as a
    qualifier is added to ``seen``. ``ansi_quotes`` and ``backslash_escapes`` are the
    statement's sql_mode (ANSI_QUOTES; not NO_BACKSLASH_ESCAPES)."""
    out, i, size = bytearray(), 0, len(sql)
    strings = (b"'",) if ansi_quotes else (b"'", b'"')
    while i < size:
        char = sql[i:i + 1]
        if char in strings:  # a string literal, with its escapes
            end = i + 1
            while end < size and sql[end:end + 1] != char:
                end += 2 if backslash_escapes and sql[end:end + 1] == b"\\" else 1
            out += sql[i:end + 1]
            i = end + 1
        elif executable := _EXECUTABLE.match(sql, i):
            out += executable.group(0)
            i = executable.end()
        elif sql.startswith(b"/*", i) or sql.startswith(b"-- ", i) or char == b"#":
            end = sql.find(b"*/", i + 2) + 2 if char == b"/" else sql.find(b"\n", i)
            end = size if end < (2 if char == b"/" else 0) else end
            out += sql[i:end]
            i = end
        elif char == b"`" or (ansi_quotes and char == b'"') or _IDENTIFIER.match(char):
            quoted = char in (b"`", b'"')
            match = (_QUOTED if char == b"`" else _DOUBLE_QUOTED if quoted else _BARE).match(
                sql, i)
            if match is None:  # an identifier never closed: nothing after it is a name
                out += sql[i:]
                break
            raw = match.group(1)
            name = (raw.replace(char * 2, char) if quoted else raw).decode(errors="replace")
            after = _DOT.match(sql, match.end())
            if after and seen is not None and (i == 0 or not _IDENTIFIER.match(sql[i - 1:i])):
                seen.add(name)
            if after and name in renames and (i == 0 or not _IDENTIFIER.match(sql[i - 1:i])):
                out += quote_name(renames[name]).encode() + after.group(0)
                i = after.end()
            else:
                out += match.group(0)
                i = match.end()
        else:
            out += char
            i += 1
    return bytes(out)


_IDENTIFIER = re.compile(rb"[A-Za-z0-9_$\x80-\xff]")
_BARE = re.compile(rb"([A-Za-z0-9_$\x80-\xff]+)")
_QUOTED = re.compile(rb"`((?:[^`]|``)*)`")
_DOUBLE_QUOTED = re.compile(rb'"((?:[^"]|"")*)"')
_EXECUTABLE = re.compile(rb"/\*M?!\d*")  # /*!50100 ... */: its code runs
_DOT = re.compile(rb"\s*\.")



def quote_name(identifier: str) -> str:
    """An identifier quoted for SQL text."""
    return quote(identifier).decode("utf-8", "surrogateescape")


def unquote_name(written: bytes) -> str:
    """An identifier as SQL text wrote it: in backticks, in double quotes (ANSI_QUOTES) or
    bare."""
    if written[:1] in (b"`", b'"') and written.endswith(written[:1]) and len(written) > 1:
        quote_char = written[:1]
        return unquote(written[1:-1].replace(quote_char * 2, quote_char)
                       if quote_char == b'"' else written[1:-1])
    return unquote(written)
