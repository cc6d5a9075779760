"""One lexer for dump streams: statements cut and named the way the ``mysql`` client cuts them.

The scanner (manifest, verify, proof), the restore and ``restore --check`` all read a dump
through :class:`SqlLexer`, so what the manifest counts is what a restore loads.

Like the ``mysql`` client (``add_line`` in client/mysql.cc), a statement ends at the current
delimiter outside quotes (``'...'``, ``"..."`` with backslash escapes, `````...````` with
doubled backticks) and outside comments (``-- ``, ``#`` and ``/* */``). The content of a
conditional comment (``/*!50003 ... */``, MariaDB's ``/*M!...*/``) is SQL: a delimiter there
ends the statement. ``DELIMITER x`` at a statement's start changes the delimiter.

Row data is never parsed. mysqldump escapes every newline inside a value (``\\n``), so an
``INSERT`` it wrote ends at the first ``;`` followed by a newline: one ``find`` over the rows
instead of a walk through their quotes. The INSERT's header (table, column list) is read
exactly. A statement the lexer does not recognise is passed on unchanged as ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import ClassVar

from drkit.stream.statement import Statement, name_statement, unquote

_IDENT = rb"`((?:[^`]|``)+)`"
_INSERT_START = b"INSERT INTO `"
# mysqldump's INSERT header: the table, an optional column list (generated or invisible
# columns; MySQL writes ``(`a`, `b`)``, MariaDB ``(`a`,`b`)``), then VALUES.
_INSERT_HEADER = re.compile(
    rb"INSERT INTO " + _IDENT + rb"(?: ?\(((?:\s*`(?:[^`]|``)*`\s*,?)*)\))? VALUES(?=[ \n(])")
_COLUMN = re.compile(_IDENT)
_BLANK = re.compile(rb"[ \t\r\n]*")
_DELIMITER_COMMAND = re.compile(rb"(?i)delimiter[ \t]+(\S+)[^\n]*(?:\n|$)")
# MariaDB 11's dump starts with a command for its own client; it is not SQL.
_SANDBOX_LINE = b"/*M!999999\\- enable the sandbox mode */"
_HAND_OVER = 4 * 1024 * 1024  # statements longer than this take the buffer with them
_EXECUTABLE_COMMENT = (b"!", b"M", b"+")  # what follows "/*" in a comment the server runs


class LexError(ValueError):
    """The stream cannot be cut into statements (an unterminated string or comment)."""

    def __init__(self, message: str, offset: int, line: int) -> None:
        super().__init__(f"{message} (line {line}, byte {offset})")
        self.offset = offset
        self.line = line


class SqlLexer:
    """Feed chunks of any size; get complete statements in order. ``close`` at the end."""

    def __init__(self) -> None:
        self.database = ""
        self.delimiter = b";"
        self._buffer = bytearray()
        self._offset = 0  # stream offset of _buffer[0]
        self._line = 1  # line number of _buffer[0]
        self._resume = 0  # how far the current statement was lexed without finding its end
        self._statement_at = (0, 1)  # offset and line of the statement being named
        self._newlines = 0  # newlines within it

    def feed(self, chunk: bytes) -> Iterator[Statement]:
        self._buffer += chunk
        yield from self._statements(final=False)

    def close(self) -> Iterator[Statement]:
        """The last statement (the ``mysql`` client runs one without a delimiter too)."""
        yield from self._statements(final=True)

    # -- cutting ---------------------------------------------------------------------------
    def _statements(self, final: bool) -> Iterator[Statement]:
        while True:
            try:
                start = self._skip_blank(final)
                if start > 0:
                    self._consume(start)
                if start < 0 or not self._buffer:
                    return
                end = self._end(final)
            except _Unterminated as unterminated:
                raise self._error(*unterminated.args) from None
            if end < 0:
                return
            yield self._classify(self._take(end))

    def _take(self, end: int) -> bytes | bytearray:
        """The statement ending at ``end``, cut from the buffer with its delimiter."""
        start_offset, start_line = self._offset, self._line
        stop = min(end + len(self.delimiter), len(self._buffer))
        # Counted once: the line numbers, and the scanner's rows of an INSERT with a row
        # per line (a raw newline never occurs inside a dumped value).
        # (find runs at memchr speed, count does not: most single-line INSERTs have none)
        has_newline = self._buffer.find(b"\n", 0, end) >= 0
        self._newlines = self._buffer.count(b"\n", 0, end) if has_newline else 0
        self._line += self._newlines + self._buffer.count(b"\n", end, stop)
        self._offset += stop
        self._resume = 0
        if end <= _HAND_OVER:
            sql: bytes | bytearray = bytes(memoryview(self._buffer)[:end])
            del self._buffer[:stop]
        else:
            # A big statement (a row of 80 MB): hand the buffer itself over as the
            # statement instead of copying it; what follows starts a new, small buffer.
            sql, self._buffer = self._buffer, bytearray(memoryview(self._buffer)[stop:])
            del sql[end:]
        if sql[-1:].isspace():
            self._newlines -= sql.count(b"\n", len(sql.rstrip()))
            sql = sql.rstrip()
        self._statement_at = (start_offset, start_line)
        return sql

    def _consume(self, count: int) -> None:
        self._line += self._buffer.count(b"\n", 0, count)
        self._offset += count
        del self._buffer[:count]
        self._resume = 0

    def _skip_blank(self, final: bool) -> int:
        """Skip blanks, comments and DELIMITER commands before a statement; return where it
        starts, or -1 while the buffer cannot tell yet."""
        buffer, pos = self._buffer, 0
        while True:
            pos = _BLANK.match(buffer, pos).end()
            if pos == len(buffer):
                return pos
            skip = self._SKIPS.get(buffer[pos])
            after = skip(self, pos, final) if skip is not None else pos
            if after <= pos:  # a statement starts at pos, or -1
                return after
            pos = after

    # What may stand before a statement, by its first byte. Each returns where the skipped
    # text ends, ``pos`` itself where a statement starts there, or -1 while it cannot tell.
    def _skip_dashes(self, pos: int, final: bool) -> int:
        if not self._buffer.startswith(b"--", pos):
            return pos
        comment = _dash_comment(self._buffer, pos, final)
        if not comment:
            return pos if comment is False else -1  # "--x" is an expression
        return _line_end(self._buffer, pos, final)

    def _skip_hash_comment(self, pos: int, final: bool) -> int:
        return _line_end(self._buffer, pos, final)

    def _skip_comment(self, pos: int, final: bool) -> int:
        buffer = self._buffer
        if not buffer.startswith(b"/*", pos):
            return pos
        if len(buffer) - pos < len(_SANDBOX_LINE) and not final:
            return -1
        if buffer.startswith(_SANDBOX_LINE, pos):
            return pos + len(_SANDBOX_LINE)
        if buffer[pos + 2:pos + 3] in _EXECUTABLE_COMMENT:
            return pos  # its content is SQL: a statement starts here
        return _comment_end(buffer, pos, final)

    def _skip_delimiter_command(self, pos: int, final: bool) -> int:
        buffer = self._buffer
        if len(buffer) - pos < len(b"delimiter x") and not final:
            return -1
        match = _DELIMITER_COMMAND.match(buffer, pos)
        if not match:
            return pos
        if not match.group(0).endswith(b"\n") and not final:
            return -1
        self.delimiter = bytes(match.group(1))
        return match.end()

    _SKIPS: ClassVar[dict[int, Callable[[SqlLexer, int, bool], int]]] = {
        ord("-"): _skip_dashes, ord("#"): _skip_hash_comment, ord("/"): _skip_comment,
        ord("d"): _skip_delimiter_command, ord("D"): _skip_delimiter_command}

    def _end(self, final: bool) -> int:
        """Where the statement at the buffer's start ends (its delimiter), or -1 for now."""
        buffer = self._buffer
        if self.delimiter == b";" and buffer.startswith(_INSERT_START):
            end = _insert_end(buffer, self._resume)
            if end >= 0:
                return end
            if final:
                return len(buffer)
            self._resume = max(0, len(buffer) - 1)
            return -1
        return self._general_end(final)

    def _general_end(self, final: bool) -> int:
        """The first delimiter outside quotes and comments, from where the last call stopped."""
        buffer, delimiter = self._buffer, self.delimiter
        special = _special(delimiter)
        pos = self._resume
        while (match := special.search(buffer, pos)) is not None:
            token, at = match.group(), match.start()
            if token == delimiter:
                return at
            pos = _PAST[token](buffer, at, final)
            if pos < 0:  # the quote or comment at `at` goes on beyond the buffer
                self._resume = at
                return -1
        if final:
            return len(buffer)
        self._resume = max(pos, len(buffer) - len(delimiter) - 3)
        return -1

    def _error(self, message: str, at: int) -> LexError:
        line = self._line + self._buffer.count(b"\n", 0, at)
        return LexError(message, self._offset + at, line)

    # -- naming ----------------------------------------------------------------------------
    def _classify(self, sql: bytes | bytearray) -> Statement:
        offset, line = self._statement_at
        statement = Statement(sql, "other", self.database, offset=offset, line=line,
                              newlines=self._newlines)
        if sql.startswith(_INSERT_START):
            header = _INSERT_HEADER.match(sql)
            if header is None:  # not mysqldump's shape (INSERT ... SELECT): passed on as is
                return statement
            statement.kind, statement.table = "insert", unquote(header.group(1))
            statement.values = header.end()
            if header.group(2) is not None:
                statement.columns = tuple(unquote(c) for c in _COLUMN.findall(header.group(2)))
            return statement
        name_statement(statement)
        if statement.kind in ("use", "create_database"):
            self.database = statement.database = statement.name or self.database
        return statement


class _Unterminated(Exception):
    """A quote or comment the dump ends inside: args are the message and where it opens."""


def _line_end(buffer: bytearray, at: int, final: bool) -> int:
    """Past the newline ending the line at ``at``: the end of a ``#`` or ``-- `` comment."""
    newline = buffer.find(b"\n", at)
    if newline >= 0:
        return newline + 1
    return len(buffer) if final else -1


def _dash_comment(buffer: bytearray, at: int, final: bool) -> bool | None:
    """Whether the ``--`` at ``at`` opens a comment (a blank or control character, or the
    dump's end, follows; ``--x`` is a minus sign twice); None while the next byte is unread."""
    if at + 2 < len(buffer):
        return buffer[at + 2] <= 32
    return True if final else None


def _comment_end(buffer: bytearray, at: int, final: bool) -> int:
    """Past the ``*/`` closing the comment opened at ``at``."""
    close = buffer.find(b"*/", at + 2)
    if close >= 0:
        return close + 2
    if final:
        raise _Unterminated("the dump ends inside a comment", at)
    return -1


# How the statement goes on after a quote or comment mark at ``at``: where to look for the
# delimiter next, or -1 while the buffer cannot tell yet.
def _past_quoted(buffer: bytearray, at: int, final: bool) -> int:
    close = _string_end(buffer, at, buffer[at], final)
    if close >= 0:
        return close + 1
    if final:
        raise _Unterminated("the dump ends inside a quoted string", at)
    return -1


def _past_dashes(buffer: bytearray, at: int, final: bool) -> int:
    comment = _dash_comment(buffer, at, final)
    if comment is None:
        return -1
    return _line_end(buffer, at, final) if comment else at + 2


def _past_comment_start(buffer: bytearray, at: int, final: bool) -> int:
    if at + 3 > len(buffer) and not final:
        return -1
    if buffer[at + 2:at + 3] in _EXECUTABLE_COMMENT:
        return at + 2  # its content is SQL
    return _comment_end(buffer, at, final)


def _past_comment_close(buffer: bytearray, at: int, final: bool) -> int:
    return at + 2  # closing a conditional comment


_PAST: dict[bytes, Callable[[bytearray, int, bool], int]] = {
    b"'": _past_quoted, b'"': _past_quoted, b"`": _past_quoted, b"#": _line_end,
    b"--": _past_dashes, b"/*": _past_comment_start, b"*/": _past_comment_close}


def _insert_end(buffer: bytearray, start: int) -> int:
    """Index of the ``;`` followed by a newline that ends an INSERT, or -1.

    MySQL writes the whole INSERT on one line, so the first newline ends it. MariaDB puts a
    row per line: a search for the single byte ``;`` runs at memory speed; semicolons inside
    the rows each cost a step in Python, so after a few the search for the pair takes over.
    """
    newline = buffer.find(b"\n", start)
    if newline > 0 and buffer[newline - 1] == 59:
        return newline - 1
    end = buffer.find(b";", start)
    for _ in range(16):
        if end < 0 or end + 1 >= len(buffer):
            return -1
        if buffer[end + 1] == 10:
            return end
        end = buffer.find(b";", end + 1)
    return buffer.find(b";\n", end) if end >= 0 else -1


def _string_end(buffer: bytearray, start: int, quote_byte: int, final: bool) -> int:
    """Index of the quote closing the string opened at ``start``, or -1 if not yet read."""
    pos = start + 1
    while True:
        close = buffer.find(bytes((quote_byte,)), pos)
        if close < 0:
            return -1
        if quote_byte != ord("`"):
            backslashes = 0
            while close - backslashes - 1 > start and buffer[close - backslashes - 1] == 92:
                backslashes += 1
            if backslashes % 2:
                pos = close + 1
                continue
        if close + 1 < len(buffer) and buffer[close + 1] == quote_byte:
            pos = close + 2  # a doubled quote stands for itself
            continue
        if close + 1 == len(buffer) and not final:
            return -1  # the next byte may double it
        return close


_SPECIALS: dict[bytes, re.Pattern[bytes]] = {}


def _special(delimiter: bytes) -> re.Pattern[bytes]:
    """What can change the lexer's state, the delimiter first (``;;`` before ``;``)."""
    if delimiter not in _SPECIALS:
        _SPECIALS[delimiter] = re.compile(re.escape(delimiter) + rb"|['\"`#]|--|/\*|\*/")
    return _SPECIALS[delimiter]


def statements(data: bytes) -> list[Statement]:
    """All statements of a whole dump held in memory (tests, small fixtures)."""
    lexer = SqlLexer()
    return [*lexer.feed(data), *lexer.close()]
