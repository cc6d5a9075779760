"""Which names of SQL text are databases by SQL's grammar (:func:`database_qualifiers`).

``x.y`` is ``db.tbl`` where a table is named (after FROM, JOIN, INTO, UPDATE, TABLE, ...)
and ``tbl.col`` in an expression; ``x.y.z`` is ``db.tbl.col``; ``x.f(`` is a routine of
database ``x``. A table named like its database, or an alias, is therefore no database.
Not a parser: a tokenizer (strings, comments, quoted names, the code of ``/*!...*/``) and
the last few words are enough to tell the positions apart. The schema proof
(:mod:`drkit.stream.schema`) and the binlog replay's renaming
(:mod:`drkit.binlog.qualifiers`) read SQL text through it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Qualifier:
    """A name read as a database at ``sql[start:end]`` (its quotes included). ``certain`` is
    False for ``x.col`` where the statement names no table or alias ``x``: only a guess."""

    start: int
    end: int
    name: str
    certain: bool = True


def database_qualifiers(sql: bytes, *, ansi_quotes: bool = False,
                        backslash_escapes: bool = True) -> list[Qualifier]:
    """The database qualifiers of ``sql``, in order; strings and comments hold none, the
    code of ``/*!...*/`` counts (the server runs it). ``ansi_quotes`` and
    ``backslash_escapes`` are the statement's sql_mode (ANSI_QUOTES; not
    NO_BACKSLASH_ESCAPES)."""
    reader = _Reader(_items(_tokens(sql, ansi_quotes, backslash_escapes)))
    reader.read()
    return reader.qualifiers()


def trigger_body_start(sql: bytes) -> int:
    """Where a trigger's body starts: after the words FOR EACH ROW (not in a name or a
    string); 0 if they are not there."""
    words = _tokens(sql, False, True)
    for three in zip(words, words[1:], words[2:], strict=False):
        if [word.name.upper() if word.bare else "" for word in three] == ["FOR", "EACH", "ROW"]:
            return three[2].end
    return 0


@dataclass(slots=True)
class _Token:
    kind: str  # "name", "other" (string, number, variable) or the punctuation itself
    start: int
    end: int
    name: str = ""
    bare: bool = False


@dataclass(slots=True)
class _Chain:
    """``a``, ``a.b``, ``a.b.c``, ``a.*``: names joined by dots."""

    parts: list[_Token]
    star: bool = False
    call: bool = False  # followed by "(": a routine call
    table: bool = False  # read where a table is named
    grant: bool = False  # in GRANT/REVOKE, where ``db.*`` is a database


@functools.cache
def _token_pattern(ansi_quotes: bool, backslash_escapes: bool) -> re.Pattern[bytes]:
    """One token of SQL text under the sql_mode. Skipped: whitespace, comments and the
    ``/*!50100``, ``*/`` around code the server runs. A quote never closed stops the text."""
    string = rb"'(?:[^'\\]|\\.)*(?:'|\Z)" if backslash_escapes else rb"'[^']*(?:'|\Z)"
    if not ansi_quotes:
        string += b"|" + string.replace(b"'", b'"')
    names = rb"`(?P<q>(?:[^`]|``)*)`" + (rb'|"(?P<d>(?:[^"]|"")*)"' if ansi_quotes else b"")
    return re.compile(
        rb"(?P<skip>\s+|/\*M?!\d*|\*/|/\*.*?(?:\*/|\Z)|(?:--(?=\s|\Z)|\#)[^\n]*)"
        rb"|(?P<other>" + string + rb"|@@?(?:`(?:[^`]|``)*`|'[^']*'|\"[^\"]*\"|[\w$.\x80-\xff]*)"
        rb"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![\w$\x80-\xff]))"  # 1.5 (t.1c: a name)
        rb"|" + names + rb"|(?P<bare>[\w$\x80-\xff]+)|(?P<open>[`\"])|(?P<mark>.)", re.S)


def _tokens(sql: bytes, ansi_quotes: bool, backslash_escapes: bool) -> list[_Token]:
    tokens = []
    for match in _token_pattern(ansi_quotes, backslash_escapes).finditer(sql):
        kind, start, end = match.lastgroup, match.start(), match.end()
        if kind == "open":  # a name never closed: nothing after it is a name
            break
        if kind in ("q", "d"):
            quote_char = b"`" if kind == "q" else b'"'
            name = match.group(kind).replace(quote_char * 2, quote_char)
            tokens.append(_Token("name", start, end, name.decode(errors="replace")))
        elif kind == "bare":
            tokens.append(_Token("name", start, end, match.group().decode(errors="replace"),
                                 bare=True))
        elif kind != "skip":
            tokens.append(_Token("other" if kind == "other" else match.group().decode(
                "latin-1"), start, end))
    return tokens


def _items(tokens: list[_Token]) -> list[_Chain | _Token]:
    """The tokens with each name and the names dotted onto it joined into one chain."""
    items: list[_Chain | _Token] = []
    at = 0
    while at < len(tokens):
        if tokens[at].kind != "name":
            items.append(tokens[at])
            at += 1
            continue
        chain = _Chain([tokens[at]])
        at += 1
        while at + 1 < len(tokens) and tokens[at].kind == "." and not chain.star:
            following = tokens[at + 1]
            if following.kind == "*":
                chain.star = True
            elif following.kind != "name":
                break
            else:
                chain.parts.append(following)
            at += 2
        chain.call = at < len(tokens) and tokens[at].kind == "("
        items.append(chain)
    return items


def _word(item: _Chain | _Token | None) -> str:
    """A bare single name upper-cased (a keyword, maybe), punctuation as itself, else ""."""
    if isinstance(item, _Chain):
        bare = len(item.parts) == 1 and not item.star and item.parts[0].bare
        return item.parts[0].name.upper() if bare else ""
    return item.kind if item is not None and item.kind != "other" else ""


# Words after which a table (or view, routine, trigger...) is named; after the first ones a
# comma names another (FROM a, b; DROP TABLE a, b; RENAME TABLE a TO b, c TO d).
_LIST_NAMING = frozenset({"FROM", "TABLE", "TABLES", "UPDATE", "DELETE", "TO", "USING",
                          "INTO"})
_NAMING = _LIST_NAMING | {"JOIN", "STRAIGHT_JOIN", "REFERENCES", "CALL", "TRUNCATE",
                          "RENAME", "HANDLER", "NEXTVAL", "LASTVAL", "SETVAL", "ON", "LIKE",
                          "OF", "FOR"}
# CREATE/ALTER/DROP ... <object>: the object's name follows (for these, maybe qualified).
_OBJECTS = frozenset({"TABLE", "VIEW", "PROCEDURE", "FUNCTION", "EVENT", "TRIGGER",
                      "SEQUENCE", "PACKAGE", "INDEX", "DATABASE", "SCHEMA", "USER", "ROLE",
                      "SERVER", "TABLESPACE", "LOGFILE"})
_QUALIFIED_OBJECTS = frozenset({"TABLE", "VIEW", "PROCEDURE", "FUNCTION", "EVENT",
                                "TRIGGER", "SEQUENCE", "PACKAGE"})
_HEAD = frozenset({"OR", "REPLACE", "ALGORITHM", "UNDEFINED", "MERGE", "TEMPTABLE",
                   "DEFINER", "CURRENT_USER", "SQL", "SECURITY", "INVOKER", "AGGREGATE",
                   "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL", "ONLINE", "OFFLINE",
                   "IGNORE", "IF", "NOT", "EXISTS"})
# Between a naming word and the name: DROP TABLE IF EXISTS t, INSERT LOW_PRIORITY INTO t,
# GRANT ... ON PROCEDURE db.p, CREATE PACKAGE BODY p, JOIN LATERAL (...).
_MODIFIERS = frozenset({"IF", "NOT", "EXISTS", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY",
                        "QUICK", "IGNORE", "TEMPORARY", "LOCAL", "NO_WRITE_TO_BINLOG",
                        "LATERAL", "ONLY", "AS", "PROCEDURE", "FUNCTION", "BODY"})
# Words that end a table's name and alias: a clause or an expression follows.
_CLAUSES = frozenset({
    "SELECT", "WITH", "VALUES", "VALUE", "SET", "WHERE", "ON", "GROUP", "ORDER", "BY", "HAVING",
    "LIMIT", "WINDOW", "UNION", "EXCEPT", "INTERSECT", "RETURNING", "ADD", "DROP", "MODIFY",
    "CHANGE", "ALTER", "CREATE", "CHECK", "CONSTRAINT", "DEFAULT", "COLUMN", "AND", "OR", "NOT",
    "XOR", "IS", "IN", "BETWEEN", "LIKE", "CASE", "WHEN", "END", "RETURN", "RETURNS", "INSERT",
    "REPLACE", "UPDATE", "DELETE", "DUPLICATE", "LOCK", "FOR", "AFTER", "BEFORE", "FOLLOWS",
    "PRECEDES", "EACH", "COMMENT", "ENGINE", "PRIMARY", "FOREIGN", "DECLARE", "CALL", "GRANT",
    "REVOKE", "IF", "WHILE", "LEAVE", "ITERATE", "OPEN", "FETCH", "CLOSE", "SIGNAL", "RESIGNAL",
    "DISTINCT", "ALL", "EXISTS", "INTERVAL", "CAST", "CONVERT"})
_STATEMENT_STARTS = frozenset({"BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT"})
_NOT_UPDATING = frozenset({"ON", "BEFORE", "AFTER", "KEY", "FOR", ",", "GRANT",
                           "REVOKE"})  # ON UPDATE CASCADE, BEFORE UPDATE ON t, ...
_SELECT_OPTIONS = frozenset({"SELECT", "ALL", "DISTINCT", "DISTINCTROW", "HIGH_PRIORITY",
                             "SQL_SMALL_RESULT", "SQL_BIG_RESULT", "SQL_BUFFER_RESULT",
                             "SQL_CACHE", "SQL_NO_CACHE", "SQL_CALC_FOUND_ROWS"})
_FROM_FUNCTIONS = frozenset({"EXTRACT", "TRIM", "SUBSTRING", "SUBSTR", "MID"})


class _Reader:
    """Walks the items once, marking the chains that stand where a table is named and
    collecting the names a table goes by (tables, aliases, NEW/OLD in a trigger)."""

    def __init__(self, items: list[_Chain | _Token]) -> None:
        self.items = items
        self.at = 0
        self.depth = 0
        self.openers: list[tuple[str, str | None]] = []  # (word before "(", naming word)
        self.naming: str | None = None  # a table's name comes next (after this word)
        self.tail: tuple[int, str] | None = None  # after a table's name: (depth, word)
        self.kind: str | None = None  # the object a CREATE/ALTER/DROP works on
        self.head = False  # between CREATE/ALTER/DROP and the object's kind
        self.alias_next = False  # after AS, DECLARE, FOR: a name some table may go by
        self.trigger = False
        self.last_table = -1
        self.named: set[str] = set()
        self.chains: list[_Chain] = []

    def read(self) -> None:
        for at, item in enumerate(self.items):
            self.at = at
            if isinstance(item, _Token):
                self._punctuation(item.kind)
            elif not (word := _word(item)) or not self._keyword(word):
                self._chain(item)

    def qualifiers(self) -> list[Qualifier]:
        if self.trigger:
            self.named |= {"new", "old"}
        found = []
        for chain in self.chains:
            certain = _is_database(chain)
            if certain or self._maybe_database(chain):
                part = chain.parts[0]
                found.append(Qualifier(part.start, part.end, part.name, certain))
        return found

    def _maybe_database(self, chain: _Chain) -> bool:
        """``x.col`` (or ``x.*``) where nothing in the statement is called ``x``."""
        two = len(chain.parts) == 2 or (len(chain.parts) == 1 and chain.star)
        return not chain.table and two and chain.parts[0].name.casefold() not in self.named

    # -- words ----------------------------------------------------------------------------
    def _keyword(self, word: str) -> bool:
        """Whether ``word`` acted as a keyword here (else it is a name)."""
        if self.naming and word in _MODIFIERS:
            self.alias_next = word == "AS"
            return True
        if word in ("CREATE", "ALTER", "DROP", "GRANT", "REVOKE") and self.kind is None:
            grant = word in ("GRANT", "REVOKE")  # GRANT ... ON db.* / db.t TO ...
            self.head, self.kind = not grant, "GRANT" if grant else None
            return True
        if self.head and self._in_head(word):
            return True
        if not self.naming and (word in _STATEMENT_STARTS or (word == "ROW" and
                                                              self._before() == "EACH")):
            self._new_statement()
            return True
        if self._names_table(word):
            self._expect_table(word)
            return True
        if word not in _CLAUSES and word != "AS":
            return False
        if word in _CLAUSES:
            self.naming = self.tail = None
        self.alias_next = word in ("AS", "DECLARE", "FOR")  # AS x, DECLARE r, FOR r IN c
        return True

    def _in_head(self, word: str) -> bool:
        if word in _OBJECTS:
            self.head, self.kind = False, word
            self.trigger |= word == "TRIGGER"
            if word in _QUALIFIED_OBJECTS:
                self._expect_table(word)
            return True
        self.head = word in _HEAD
        return self.head

    def _names_table(self, word: str) -> bool:
        before = self._before()
        if word not in _NAMING:
            return False
        if word in ("UPDATE", "DELETE"):
            return before not in _NOT_UPDATING
        if word == "STRAIGHT_JOIN":
            return before not in _SELECT_OPTIONS
        if word == "FROM":  # EXTRACT(YEAR FROM t.d) is no table
            return not self.openers or self.openers[-1][0] not in _FROM_FUNCTIONS
        if word in ("NEXTVAL", "LASTVAL", "SETVAL"):  # MariaDB's sequences
            return self._word_at(self.at + 1) == "("
        if word == "ON":  # CREATE INDEX i ON t, CREATE TRIGGER ... ON t, GRANT ... ON t
            return self.kind in ("INDEX", "TRIGGER", "GRANT")
        if word == "LIKE":  # CREATE TABLE t LIKE u, CREATE TABLE t (LIKE u)
            return self.last_table == self.at - 1 or (
                before == "(" and self.last_table == self.at - 2)
        if word == "OF":  # FOR UPDATE OF t, DECLARE r ROW TYPE OF t
            return before in ("UPDATE", "SHARE") or (
                before == "TYPE" and self._word_at(self.at - 2) == "ROW")
        if word == "FOR":  # NEXT VALUE FOR seq
            return before == "VALUE"
        return True

    def _expect_table(self, word: str) -> None:
        self.naming, self.tail, self.alias_next = word, None, False

    def _new_statement(self) -> None:
        self.kind, self.head, self.naming, self.tail = None, False, None, None

    # -- names and punctuation ------------------------------------------------------------
    def _chain(self, chain: _Chain) -> None:
        self.chains.append(chain)
        single = len(chain.parts) == 1 and not chain.star
        if single and (self.alias_next or (self.tail and self.tail[0] == self.depth)):
            self.named.add(chain.parts[0].name.casefold())  # an alias, maybe
        self.alias_next = False
        if self.head and chain.parts[0].bare and self._before() != "=":
            self.head = False  # a name, not DEFINER=root@... : no CREATE ... <object> here
        if self.naming:
            chain.table, chain.grant = True, self.kind == "GRANT"
            self.named.add(chain.parts[-1].name.casefold())
            self.tail, self.naming, self.last_table = (self.depth, self.naming), None, self.at
        elif not single:
            self.tail = None

    def _punctuation(self, mark: str) -> None:
        self.alias_next = False
        if mark == "(":
            self.openers.append((self._before(), self.naming))
            self.depth += 1
            self.naming = self.naming and "FROM"  # JOIN (a, b): a list of tables, maybe
        elif mark == ")" and self.openers:
            naming = self.openers.pop()[1]
            self.depth -= 1
            self.naming = None
            if naming:  # FROM (SELECT ...) AS x, FROM (a JOIN b): an alias may follow
                self.tail = (self.depth, naming)
            elif self.tail and self.tail[0] > self.depth:
                self.tail = None
            if self.depth == 0 and self.kind in ("PROCEDURE", "FUNCTION"):
                self._new_statement()  # after the parameters: the body
        elif mark == "," and self.tail and self.tail[0] == self.depth:
            self.naming, self.tail = (self.tail[1] if self.tail[1] in _LIST_NAMING
                                      else None), None
        elif mark == ";":
            self._new_statement()
        else:
            self._other()

    def _other(self) -> None:
        """A string, number, variable or operator: no table's name or alias."""
        self.alias_next = False
        self.naming = None
        if self.tail and self.tail[0] == self.depth:
            self.tail = None

    def _before(self) -> str:
        return self._word_at(self.at - 1)

    def _word_at(self, at: int) -> str:
        return _word(self.items[at]) if 0 <= at < len(self.items) else ""


def _is_database(chain: _Chain) -> bool:
    """Whether the chain's first name is a database by its position alone."""
    names = len(chain.parts)
    if chain.table:  # db.t, db.t.* (and db.* in GRANT); DELETE t.* names a table
        return names >= 2 or (chain.star and chain.grant)
    return names >= 3 or (names == 2 and (chain.star or chain.call))  # db.t.c, db.f(...)
