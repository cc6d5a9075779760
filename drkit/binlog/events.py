"""What each binlog event is to the replay: the types it passes over and those it refuses,
and a QUERY event's statement with its database and the source's parsing sql_mode (event
numbers and layouts from MySQL's binlog_event.h / log_event.cc and MariaDB's log_event.h)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import zstandard

from drkit.binlog.values import packed_int

FORMAT_DESCRIPTION, QUERY, XID = 15, 2, 16
# Each begins a transaction: MySQL's GTID, its anonymous GTID (every transaction when gtid_mode
# is OFF, a DDL with no BEGIN after it) and its tagged GTID (8.3+), and MariaDB's GTID.
GTID_EVENTS = {33, 34, 42, 162}
# Events that change no data: rotation, heartbeats, GTIDs and their lists, the text of a row
# event's statement, checkpoints (MySQL's binlog_event.h and MariaDB's log_event.h numbers).
PASSED_OVER = {3, 4, 27, 28, 29, 33, 34, 35, 36, 37, 41, 42, 160, 161, 162, 163}
IGNORABLE_FLAG = 0x80  # LOG_EVENT_IGNORABLE_F: a reader that does not know it may skip it
# Events that change data but not as rows drkit can read: refused, never passed over.
UNAPPLIABLE = {
    5: "statement-based changes (INTVAR: binlog_format was not ROW)",
    13: "statement-based changes (RAND: binlog_format was not ROW)",
    14: "statement-based changes (USER_VAR: binlog_format was not ROW)",
    26: "an INCIDENT event (the source lost changes it could not log)",
    38: "an XA transaction",
    39: "a partial JSON update (binlog_row_value_options=PARTIAL_JSON)",
    164: "encrypted events (encrypt_binlog=ON)",
    **dict.fromkeys(range(165, 172), "compressed events (log_bin_compress=ON)"),
}
# The source's sql_mode, by bit (MySQL's and MariaDB's share these values): replayed DDL runs
# under it, as on the source, so routines and triggers keep it. Names either server lacks
# (MySQL 8 dropped NO_AUTO_CREATE_USER and the old compatibility modes) are left out.
_SQL_MODES = dict(enumerate(
    ("REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", None,
     "ONLY_FULL_GROUP_BY", "NO_UNSIGNED_SUBTRACTION", "NO_DIR_IN_CREATE", None, None, None,
     None, None, None, None, None, None, None, None, "NO_AUTO_VALUE_ON_ZERO",
     "NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_IN_DATE",
     "NO_ZERO_DATE", "ALLOW_INVALID_DATES", "ERROR_FOR_DIVISION_BY_ZERO", None, None,
     "HIGH_NOT_PRECEDENCE", "NO_ENGINE_SUBSTITUTION", "PAD_CHAR_TO_FULL_LENGTH")))
_Q_FLAGS2, _Q_SQL_MODE = 0, 1  # a QUERY event's first status variables, in this order
# Accounts and server definitions (CREATE SERVER holds a password) are the server's.
ACCOUNTS = re.compile(rb"^\s*(?:(?:CREATE|ALTER|DROP|RENAME)\s+(?:USER|ROLE)|GRANT|REVOKE|"
                       rb"(?:CREATE|ALTER|DROP)\s+SERVER|"
                       rb"SET\s+(?:PASSWORD|DEFAULT\s+ROLE)|FLUSH)\b", re.IGNORECASE)
# Changes of rows a session logged as statements (binlog_format STATEMENT or MIXED for it).
STATEMENT_DML = re.compile(rb"^\s*(?:/\*.*?\*/\s*)*(INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA|"
                           rb"LOAD\s+XML|WITH)\b", re.IGNORECASE | re.DOTALL)
# ... but emptying a whole table is the same as text: the server logs it so for a MEMORY table
# (emptied by its restart) even in ROW format.
WHOLE_TABLE_DELETE = re.compile(
    rb"^\s*DELETE\s+FROM\s+(?:(?:`(?:[^`]|``)+`|[\w$]+)\s*\.\s*)?(?:`(?:[^`]|``)+`|[\w$]+)\s*$",
    re.IGNORECASE)
# A savepoint of the source transaction: set, released, or rolled back to. The server logs
# them where a rollback to it cannot be left out of the binlog (after a temporary table was
# made or written, say); a ROLLBACK likewise ends a transaction whose rows it undid.
SAVEPOINT_STATEMENT = re.compile(
    rb"^\s*(SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+(?:WORK\s+)?TO(?:\s+SAVEPOINT)?)\s+"
    rb"(`(?:[^`]|``)+`|[^\s`;]+)\s*;?\s*$", re.IGNORECASE)
ROLLBACK = re.compile(rb"^\s*ROLLBACK(?:\s+WORK)?\s*;?\s*$", re.IGNORECASE)
DATABASE_DDL = re.compile(rb"^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\b", re.IGNORECASE)


def parse_query(body: bytes) -> tuple[str, bytes, list[str] | None]:
    """A QUERY event's database, statement and the source's sql_mode (None: not logged),
    from its bytes after the common header."""
    database_length = body[8]
    variables = int.from_bytes(body[11:13], "little")
    start = 13 + variables
    database = body[start:start + database_length].decode()
    status, modes = body[13:start], None
    offset = 5 if status[:1] == bytes([_Q_FLAGS2]) else 0
    if status[offset:offset + 1] == bytes([_Q_SQL_MODE]):
        mode = int.from_bytes(status[offset + 1:offset + 9], "little")
        modes = [name for bit, name in _SQL_MODES.items() if name and mode >> bit & 1]
    return database, body[start + database_length + 1:], modes


def statement_kind(sql: bytes) -> str:
    """What a statement is, in two words (``ALTER TABLE``), for messages."""
    words = re.findall(rb"[A-Za-z]+", sql[:60])[:2]
    return b" ".join(words).decode().upper() or "statement"


TRANSACTION_PAYLOAD = 40
_PAYLOAD_END, _PAYLOAD_SIZE, _PAYLOAD_COMPRESSION, _PAYLOAD_UNCOMPRESSED_SIZE = 0, 1, 2, 3
_ZSTD, _UNCOMPRESSED = 0, 255


def payload_events(body: bytes) -> Iterator[bytes]:
    """The events inside a MySQL 8 TRANSACTION_PAYLOAD event (binlog_transaction_compression),
    from its bytes after the common header, one at a time: never the whole transaction in
    memory. The layout is libbinlogevents' ``codecs/binary.cpp``: fields of (type, length,
    value) as packed integers up to an end mark, then the payload, zstd-compressed or not;
    the events inside carry no checksum of their own."""
    offset, fields = 0, {}
    while True:
        field, offset = packed_int(body, offset)
        if field == _PAYLOAD_END:
            break
        length, offset = packed_int(body, offset)
        if field in (_PAYLOAD_SIZE, _PAYLOAD_COMPRESSION, _PAYLOAD_UNCOMPRESSED_SIZE):
            fields[field], offset = packed_int(body, offset)
        else:  # a field of a later server: skipped by its length, as MySQL's decoder does
            offset += length
    size = fields.get(_PAYLOAD_SIZE)
    compression = fields.get(_PAYLOAD_COMPRESSION, _UNCOMPRESSED)
    payload = body[offset:offset + size if size is not None else len(body)]
    if compression == _ZSTD:
        stream: io.RawIOBase | io.BytesIO = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(payload))
    elif compression == _UNCOMPRESSED:
        stream = io.BytesIO(payload)
    else:
        raise ValueError(f"compression type {compression}")
    while header := _read_exactly(stream, 19):
        rest = _read_exactly(stream, int.from_bytes(header[9:13], "little") - 19)
        yield header + rest


def _read_exactly(stream: io.RawIOBase | io.BytesIO, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := stream.read(size - len(data))):
        data += chunk
    if data and len(data) < size:
        raise ValueError("a compressed transaction ends inside an event")
    return data
