"""Row events of the binary log, decoded into values: what lets a point-in-time restore apply
them as plain SQL where ``BINLOG`` statements are not allowed.

Azure Database for MySQL Flexible Server's admin has neither SUPER nor BINLOG_ADMIN nor
REPLICATION_APPLIER (Microsoft's list of the admin's privileges), and MySQL 8 runs the
``BINLOG '...'`` statements ``mysqlbinlog`` writes for row events only with one of them
(MariaDB: BINLOG REPLAY). So drkit reads the row images itself, as a replica's applier does,
and writes INSERT/UPDATE/DELETE statements any user with rights on the tables may run.

The formats are MySQL's (libbinlogevents, ``log_event.cc``; MariaDB writes the same for these
events): a TABLE_MAP event names a table and its column types and metadata, and the
WRITE/UPDATE/DELETE_ROWS events after it carry row images under that table id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

HEADER = 19
TABLE_MAP = 19
WRITE_ROWS = {23, 30}  # v1 (MariaDB), v2 (MySQL 8)
UPDATE_ROWS = {24, 31}
DELETE_ROWS = {25, 32}
ROWS_V2 = {30, 31, 32}

# Column types (enum_field_types).
DECIMAL_OLD, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = range(10, 20)
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(249, 256)

_META_BYTES = {VARCHAR: 2, BIT: 2, NEWDECIMAL: 2, VAR_STRING: 2, STRING: 2, ENUM: 2, SET: 2,
               BLOB: 1, TINY_BLOB: 1, MEDIUM_BLOB: 1, LONG_BLOB: 1, DOUBLE: 1, FLOAT: 1,
               GEOMETRY: 1, JSON: 1, TIME2: 1, DATETIME2: 1, TIMESTAMP2: 1}
INT_SIZES = {TINY: 1, SHORT: 2, INT24: 3, LONG: 4, LONGLONG: 8}
_DIG2BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]


class UnsupportedColumn(Exception):
    """A column type drkit cannot turn into a value (its name is the message)."""


@dataclass(frozen=True)
class TableMap:
    database: str
    table: str
    types: tuple[int, ...]
    meta: tuple[int, ...]


@dataclass(frozen=True)
class RowsEvent:
    kind: str  # "insert", "update" or "delete"
    table_id: int
    present: tuple[int, ...]  # column indexes in the images
    rows: list[tuple[tuple[Any, ...], tuple[Any, ...] | None]]  # (image, after image)


def _packed_int(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    if first < 251:
        return first, offset + 1
    size = {252: 2, 253: 3, 254: 8}[first]
    return int.from_bytes(data[offset + 1:offset + 1 + size], "little"), offset + 1 + size


def table_map(body: bytes) -> tuple[int, TableMap]:
    """(table id, map) from a TABLE_MAP event's bytes after the common header."""
    table_id = int.from_bytes(body[:6], "little")
    offset = 8
    length = body[offset]
    database = body[offset + 1:offset + 1 + length].decode()
    offset += length + 2
    length = body[offset]
    table = body[offset + 1:offset + 1 + length].decode()
    offset += length + 2
    count, offset = _packed_int(body, offset)
    types = tuple(body[offset:offset + count])
    offset += count
    _, offset = _packed_int(body, offset)
    meta = []
    for kind in types:
        size = _META_BYTES.get(kind, 0)
        if kind in (STRING, ENUM, SET, NEWDECIMAL, BIT):
            value = body[offset] << 8 | body[offset + 1] if size else 0  # big-endian pair
        else:
            value = int.from_bytes(body[offset:offset + size], "little")
        meta.append(value)
        offset += size
    return table_id, TableMap(database, table, types, tuple(meta))


def rows_event(kind: int, body: bytes, table: TableMap) -> RowsEvent:
    """The row images of a WRITE/UPDATE/DELETE_ROWS event's bytes after the header."""
    table_id = int.from_bytes(body[:6], "little")
    offset = 8
    if kind in ROWS_V2:
        offset += struct.unpack("<H", body[offset:offset + 2])[0]
    count, offset = _packed_int(body, offset)
    width = (count + 7) // 8
    present = _bits(body[offset:offset + width], count)
    offset += width
    after_present = present
    if kind in UPDATE_ROWS:
        after_present = _bits(body[offset:offset + width], count)
        offset += width
    rows = []
    while offset < len(body):
        image, offset = _image(body, offset, present, table)
        after = None
        if kind in UPDATE_ROWS:
            after, offset = _image(body, offset, after_present, table)
        rows.append((image, after))
    name = "insert" if kind in WRITE_ROWS else "update" if kind in UPDATE_ROWS else "delete"
    return RowsEvent(name, table_id, tuple(present), rows)


def _bits(data: bytes, count: int) -> list[int]:
    return [i for i in range(count) if data[i // 8] >> (i % 8) & 1]


def _image(body: bytes, offset: int, present: list[int],
           table: TableMap) -> tuple[tuple[Any, ...], int]:
    width = (len(present) + 7) // 8
    nulls = body[offset:offset + width]
    offset += width
    values = []
    for position, column in enumerate(present):
        if nulls[position // 8] >> (position % 8) & 1:
            values.append(None)
            continue
        value, offset = _value(body, offset, table.types[column], table.meta[column])
        values.append(value)
    return tuple(values), offset


def _value(data: bytes, offset: int, kind: int, meta: int) -> tuple[Any, int]:  # noqa: C901, PLR0911, PLR0912 - one branch per type, as the format has
    if kind in INT_SIZES:
        size = INT_SIZES[kind]
        return int.from_bytes(data[offset:offset + size], "little", signed=True), offset + size
    if kind == FLOAT:
        return struct.unpack("<f", data[offset:offset + 4])[0], offset + 4
    if kind == DOUBLE:
        return struct.unpack("<d", data[offset:offset + 8])[0], offset + 8
    if kind == NEWDECIMAL:
        return _decimal(data, offset, meta >> 8, meta & 0xFF)
    if kind in (VARCHAR, VAR_STRING):
        prefix = 1 if meta < 256 else 2
        length = int.from_bytes(data[offset:offset + prefix], "little")
        offset += prefix
        return data[offset:offset + length], offset + length
    if kind == STRING:
        real = meta >> 8
        if real in (ENUM, SET):
            size = meta & 0xFF
            return int.from_bytes(data[offset:offset + size], "little"), offset + size
        maximum = (((meta >> 4) & 0x300) ^ 0x300) + (meta & 0xFF)
        prefix = 1 if maximum < 256 else 2
        length = int.from_bytes(data[offset:offset + prefix], "little")
        offset += prefix
        return data[offset:offset + length], offset + length
    if kind in (BLOB, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, GEOMETRY):
        length = int.from_bytes(data[offset:offset + meta], "little")
        offset += meta
        return data[offset:offset + length], offset + length
    if kind == DATE:
        value = int.from_bytes(data[offset:offset + 3], "little")
        return f"{value >> 9:04d}-{(value >> 5) & 15:02d}-{value & 31:02d}", offset + 3
    if kind == DATETIME2:
        value = int.from_bytes(data[offset:offset + 5], "big") - 0x8000000000
        micro, offset = _fraction(data, offset + 5, meta)
        ymd, hms = value >> 17, value % (1 << 17)
        year_month = ymd >> 5
        return (f"{year_month // 13:04d}-{year_month % 13:02d}-{ymd % 32:02d} "
                f"{hms >> 12:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}.{micro:06d}"), offset
    if kind == TIMESTAMP2:
        seconds = int.from_bytes(data[offset:offset + 4], "big")
        micro, offset = _fraction(data, offset + 4, meta)
        if not seconds and not micro:
            return "0000-00-00 00:00:00", offset
        return datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%d %H:%M:%S") + f".{micro:06d}", offset
    if kind == TIME2:
        return _time2(data, offset, meta)
    if kind == YEAR:
        return (data[offset] + 1900 if data[offset] else 0), offset + 1
    if kind == BIT:
        size = (meta & 0xFF) + (1 if meta >> 8 else 0)
        return int.from_bytes(data[offset:offset + size], "big"), offset + size
    if kind == TIMESTAMP:
        seconds = int.from_bytes(data[offset:offset + 4], "little")
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S"), offset + 4
    if kind == DATETIME:
        value = int.from_bytes(data[offset:offset + 8], "little")
        date, time_ = divmod(value, 1000000)
        return (f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d} "
                f"{time_ // 10000:02d}:{time_ // 100 % 100:02d}:{time_ % 100:02d}"), offset + 8
    names = {JSON: "JSON (MySQL's binary JSON)", TIME: "TIME (the pre-5.6 format)",
             DECIMAL_OLD: "DECIMAL (the pre-5.0 format)"}
    raise UnsupportedColumn(names.get(kind, f"type {kind}"))


def _fraction(data: bytes, offset: int, fsp: int) -> tuple[int, int]:
    size = (fsp + 1) // 2
    value = int.from_bytes(data[offset:offset + size], "big") if size else 0
    return value * 10 ** (6 - 2 * size) if size else 0, offset + size


def _time2(data: bytes, offset: int, fsp: int) -> tuple[str, int]:
    size = (fsp + 1) // 2
    raw = int.from_bytes(data[offset:offset + 3 + size], "big")
    # Offset binary over the whole width: the sign is its top bit, the fraction its tail.
    value = raw - (1 << (8 * (3 + size) - 1))
    sign = "-" if value < 0 else ""
    value = abs(value)
    fraction = value % (1 << (8 * size)) if size else 0
    whole = value >> (8 * size)
    micro = fraction * 10 ** (6 - 2 * size) if size else 0
    hours, minutes, seconds = (whole >> 12) % (1 << 10), (whole >> 6) % 64, whole % 64
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{micro:06d}", offset + 3 + size


def _decimal(data: bytes, offset: int, precision: int, scale: int) -> tuple[Decimal, int]:
    """MySQL's binary DECIMAL: groups of 9 digits in 4 bytes, the sign in the top bit, a
    negative number stored with every bit inverted."""
    integer = precision - scale
    full_int, rest_int = divmod(integer, 9)
    full_frac, rest_frac = divmod(scale, 9)
    size = full_int * 4 + _DIG2BYTES[rest_int] + full_frac * 4 + _DIG2BYTES[rest_frac]
    raw = bytearray(data[offset:offset + size])
    negative = not raw[0] & 0x80
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    digits, position = [], 0
    for width, count in ((_DIG2BYTES[rest_int], rest_int), *([(4, 9)] * full_int)):
        if width:
            digits.append(f"{int.from_bytes(raw[position:position + width], 'big'):0{count}d}")
            position += width
    fraction = []
    for width, count in (*([(4, 9)] * full_frac), (_DIG2BYTES[rest_frac], rest_frac)):
        if width:
            fraction.append(f"{int.from_bytes(raw[position:position + width], 'big'):0{count}d}")
            position += width
    text = ("-" if negative else "") + ("".join(digits).lstrip("0") or "0")
    if scale:
        text += "." + "".join(fraction)
    return Decimal(text), offset + size
