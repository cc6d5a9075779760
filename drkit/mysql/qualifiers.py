"""Database qualifiers (``shop.t``) in SQL text: what a statement replayed under another
database name must have renamed, found outside strings and comments."""

from __future__ import annotations

import re


def rename_qualified(sql: bytes, renames: dict[str, str],
                     seen: set[str] | None = None) -> bytes:
    """``db.`` qualifiers renamed where ``db`` is renamed; strings and comments untouched.
    Every name used as a qualifier is added to ``seen``."""
    out, i, size = bytearray(), 0, len(sql)
    while i < size:
        char = sql[i:i + 1]
        if char in (b"'", b'"'):  # a string literal, with its escapes
            end = i + 1
            while end < size and sql[end:end + 1] != char:
                end += 2 if sql[end:end + 1] == b"\\" else 1
            out += sql[i:end + 1]
            i = end + 1
        elif sql.startswith(b"/*", i) or sql.startswith(b"-- ", i) or char == b"#":
            end = sql.find(b"*/", i + 2) + 2 if char == b"/" else sql.find(b"\n", i)
            end = size if end < (2 if char == b"/" else 0) else end
            out += sql[i:end]
            i = end
        elif char == b"`" or _IDENTIFIER.match(char):
            match = _QUOTED.match(sql, i) if char == b"`" else _BARE.match(sql, i)
            name = match.group(1).replace(b"``", b"`").decode(errors="replace")
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
_DOT = re.compile(rb"\s*\.")



def quote_name(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
