"""What a statement of a dump is: its kind, the table or object it names, its DEFINER.

Read from the statement's first words only (quoted names, strings, comments and
conditional-comment markers understood), never from its rows or body. Also: whether a table
has a row order a dump reproduces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["insert", "use", "create_database", "alter_database", "create_table",
               "create_object", "lock", "session", "other"]
ObjectKind = Literal["view", "procedure", "function", "trigger", "event"]

_IDENT = rb"`((?:[^`]|``)+)`"
_COLUMN = re.compile(_IDENT)
# Header tokens: a quoted name, a string, a word (MySQL's bare names take U+0080 and up, as
# UTF-8 bytes), an executable-comment opener, or one byte.
_TOKEN = re.compile(rb"`((?:[^`]|``)*)`|'((?:[^'\\]|\\.|'')*)'|\"((?:[^\"\\]|\\.|\"\")*)\""
                    rb"|(/\*M?![0-9]*|\*/)|(/\*.*?\*/|--[ \t][^\n]*|#[^\n]*)"
                    rb"|([A-Za-z_$\x80-\xff][A-Za-z0-9_$\x80-\xff]*|[0-9]+)|(\S)", re.S)
_OBJECT_KINDS: dict[bytes, ObjectKind] = {
    b"VIEW": "view", b"PROCEDURE": "procedure", b"FUNCTION": "function",
    b"TRIGGER": "trigger", b"EVENT": "event"}
_HEADER_TOKENS = 40  # enough for any CREATE ... header; statements are never lexed whole
_NAME_TOKENS = 8  # enough for the rest: a verb, IF NOT EXISTS, a name


@dataclass(slots=True)
class Statement:
    sql: bytes | bytearray  # without its delimiter; a huge one is the lexer's own buffer
    kind: Kind
    database: str = ""  # the database in use when the statement was read
    table: str | None = None  # the table an INSERT, CREATE/ALTER/DROP/LOCK or trigger names
    offset: int = 0  # where it starts in the SQL stream (bytes)
    line: int = 1
    newlines: int = 0  # newlines in ``sql``
    columns: tuple[str, ...] | None = None  # an INSERT's column list
    values: int = 0  # where an INSERT's rows start in ``sql``
    object_kind: ObjectKind | None = None  # what a create_object statement creates
    name: str | None = None  # the created object's or database's name
    definer: tuple[int, int] | None = None  # span of the header's DEFINER=user@host
    # database qualifiers in an object's header (``TRIGGER `db`.`t` ... ON `db`.`t```, as a
    # trigger keeps the text it was created with): span and name, for --as to rename
    qualifiers: tuple[tuple[int, int, str], ...] = ()

    @property
    def where(self) -> str:
        return f"line {self.line} (byte {self.offset})"


def unquote(quoted: bytes) -> str:
    return quoted.replace(b"``", b"`").decode("utf-8", "surrogateescape")


def quote(name: str) -> bytes:
    return b"`" + name.replace("`", "``").encode("utf-8", "surrogateescape") + b"`"


@dataclass(slots=True)
class _Word:
    text: bytes  # upper-cased keyword, or the unquoted name/string
    start: int
    end: int
    quoted: bool = False
    written: bytes = b""  # a plain word as written (names keep their case)

    @property
    def name(self) -> str:
        return (self.text if self.quoted else self.written).decode("utf-8", "surrogateescape")


def _header(sql: bytes, most: int = _HEADER_TOKENS) -> list[_Word]:
    """The first ``most`` words of a statement, comments and conditional-comment markers
    skipped."""
    words: list[_Word] = []
    for match in _TOKEN.finditer(sql):
        group = match.lastindex  # the one alternative that matched
        if group in (4, 5):
            continue
        if group == 1:
            words.append(_Word(match.group(1).replace(b"``", b"`"), *match.span(), True))
        elif group in (2, 3):
            words.append(_Word(match.group(group), *match.span(), True))
        else:
            written = match.group()
            words.append(_Word(written.upper(), *match.span(), written=written))
        if len(words) >= most:
            break
    return words


def _first_words(sql: bytes) -> list[_Word]:
    """As many first words as the statement's kind needs: a dump has tens of statements a
    table, and only an object's CREATE (its name after a DEFINER and more) needs more than
    a verb, IF NOT EXISTS and a name."""
    words = _header(sql, _NAME_TOKENS)
    if len(words) == _NAME_TOKENS and words[0].text == b"CREATE" and \
            words[1].text not in (b"TABLE", b"DATABASE"):
        return _header(sql)
    return words


def name_statement(statement: Statement) -> None:
    """Set kind, table, name and DEFINER span from the statement's first words."""
    words = _first_words(statement.sql)
    texts = [w.text if not w.quoted else None for w in words]
    first = texts[0] if texts else None
    if first in (b"USE", b"SET", b"LOCK", b"UNLOCK"):
        _name_session_statement(statement, words, texts)
    elif first in (b"CREATE", b"ALTER", b"DROP"):
        _name_definition(statement, words, texts)


def _name_session_statement(statement: Statement, words: list[_Word],
                            texts: list[bytes | None]) -> None:
    """USE db, SET ..., LOCK TABLES t ..., UNLOCK TABLES."""
    if texts[0] == b"USE":
        statement.kind, statement.name = "use", _name_after(words, texts, 1)
    elif texts[0] == b"SET":
        statement.kind = "session"
    else:
        statement.kind = "lock"
        statement.table = _name_after(words, texts, 2) if texts[0] == b"LOCK" else None


def _name_definition(statement: Statement, words: list[_Word],
                     texts: list[bytes | None]) -> None:
    """CREATE/ALTER/DROP TABLE t, CREATE/ALTER DATABASE db, CREATE <object> ..."""
    first, second = texts[0], texts[1] if len(texts) > 1 else None
    if second == b"TABLE":
        statement.table = _name_after(words, texts, 2)
        if first == b"CREATE":
            statement.kind = "create_table"
    elif second == b"DATABASE" and first != b"DROP":
        statement.kind = "create_database" if first == b"CREATE" else "alter_database"
        statement.name = _name_after(words, texts, 2)
    elif first == b"CREATE":
        _name_object(statement, words, texts)


def _name_after(words: list[_Word], texts: list[bytes | None], index: int) -> str | None:
    """The name at ``index``, after IF [NOT] EXISTS."""
    while index < len(words) and texts[index] in (b"IF", b"NOT", b"EXISTS"):
        index += 1
    return words[index].name if index < len(words) else None


def without_definer(sql: bytes) -> bytes:
    """A CREATE VIEW/TRIGGER/PROCEDURE/FUNCTION/EVENT statement without the DEFINER of its
    header, which only a user with SUPER or SET_USER_ID may give: its creator becomes the
    definer. Any other statement as it is."""
    statement = Statement(sql=sql, kind="other")
    name_statement(statement)
    if statement.definer is None:
        return sql
    start, end = statement.definer
    return sql[:start] + sql[end:].lstrip(b" ")


def _name_object(statement: Statement, words: list[_Word], texts: list[bytes | None]) -> None:
    index = next((i for i, t in enumerate(texts) if t in _OBJECT_KINDS), None)
    if index is None:
        return
    statement.kind, statement.object_kind = "create_object", _OBJECT_KINDS[texts[index]]
    qualifiers = []

    def qualified_name(at: int) -> str | None:
        """The name at ``at``, or after ``db.`` there (recorded as a qualifier)."""
        if at + 2 < len(words) and texts[at + 1] == b"." and not words[at + 1].quoted:
            qualifiers.append((words[at].start, words[at].end, words[at].name))
            at += 2
        return words[at].name if at < len(words) else None

    if index + 1 < len(words):
        statement.name = qualified_name(index + 1)
    definer = next((i for i in range(index) if texts[i] == b"DEFINER"), None)
    if definer is not None and definer + 2 < index and texts[definer + 1] == b"=":
        # DEFINER = user@host, or DEFINER = CURRENT_USER[()]
        last = definer + 2
        if last + 2 < index and (texts[last + 1] == b"@"
                                 or texts[last + 1:last + 3] == [b"(", b")"]):
            last += 2
        statement.definer = (words[definer].start, words[last].end)
    if statement.object_kind == "trigger":
        on = next((i for i in range(index + 2, len(words)) if texts[i] == b"ON"), None)
        if on is not None and on + 1 < len(words):
            statement.table = qualified_name(on + 1)
    statement.qualifiers = tuple(qualifiers)


_COLUMN_LINE = re.compile(rb"^\s*" + _IDENT + rb" (.*)$", re.M)
_UNIQUE_LINE = re.compile(rb"^\s*(PRIMARY KEY|UNIQUE KEY(?: " + _IDENT + rb")?) \((.*)\)", re.M)
_STRING = re.compile(rb"'(?:[^'\\]|\\.|'')*'")


def has_row_order_key(create_table: bytes) -> bool:
    """Whether a dump orders the table's rows reproducibly: a primary key, or a unique key
    over NOT NULL columns (what ``mysqldump --order-by-primary`` sorts by). Reads the
    ``SHOW CREATE TABLE`` text mysqldump writes, one column or key per line."""
    not_null = {unquote(m.group(1)) for m in _COLUMN_LINE.finditer(create_table)
                if b" NOT NULL" in _STRING.sub(b"''", m.group(2))}
    for key in _UNIQUE_LINE.finditer(create_table):
        if key.group(1) == b"PRIMARY KEY":
            return True
        if all(unquote(c) in not_null for c in _COLUMN.findall(key.group(3))):
            return True
    return False


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
