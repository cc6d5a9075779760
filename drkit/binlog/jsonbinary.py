"""MySQL 8's binary JSON (how a JSON column's value travels in a row image) as an SQL
expression that builds the same value on the target.

The format is MySQL's ``sql-common/json_binary.h``: a type byte, then the value; objects and
arrays hold a count, a size and entries whose small values are inlined and the rest found
at an offset from the container's start. An expression, not JSON text, because text would
lose what JSON text cannot say: a DECIMAL, DATE, DATETIME or TIME inside a document (MySQL
keeps them as typed "opaque" values), an unsigned integer, a double that looks whole. Each
keeps its type through ``JSON_OBJECT``/``JSON_ARRAY`` and a typed ``CAST``.
"""

from __future__ import annotations

import struct

from drkit.binlog.values import UnsupportedColumn, decimal_text

_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY, _LITERAL = range(5)
_INT16, _UINT16, _INT32, _UINT32, _INT64, _UINT64, _DOUBLE, _STRING = range(5, 13)
_OPAQUE = 0x0F
_LITERALS = {0: b"CAST('null' AS JSON)", 1: b"CAST('true' AS JSON)",
             2: b"CAST('false' AS JSON)"}
_SCALARS = {_INT16: "<h", _UINT16: "<H", _INT32: "<i", _UINT32: "<I", _INT64: "<q",
            _UINT64: "<Q", _DOUBLE: "<d"}
# Opaque values' field types (enum_field_types) drkit rebuilds.
_DATE, _TIME, _DATETIME, _NEWDECIMAL = 10, 11, 12, 246


def json_expression(document: bytes) -> bytes:
    """The SQL expression for one binary JSON document (a JSON column's value)."""
    if not document:
        # MySQL reads an empty value as the null literal (json_binary.cc's parse_binary):
        # what INSERT IGNORE or a non-strict sql_mode leaves for a NULL in a NOT NULL column.
        document = bytes([_LITERAL, 0])
    kind = document[0]
    value = _value(kind, document, 1)
    if kind in (_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY):
        return value
    # A scalar alone: a string given to a JSON column would be parsed as JSON text.
    return b"JSON_EXTRACT(JSON_ARRAY(" + value + b"), '$[0]')"


def _value(kind: int, data: bytes, offset: int) -> bytes:  # noqa: PLR0911 - one per type
    if kind in (_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY):
        return _container(kind, data, offset)
    if kind == _LITERAL:
        return _LITERALS[data[offset]]
    if kind == _STRING:
        length, offset = _varlen(data, offset)
        return _text(data[offset:offset + length])
    if kind == _OPAQUE:
        field_type = data[offset]
        length, offset = _varlen(data, offset + 1)
        return _opaque(field_type, data[offset:offset + length])
    if kind in _SCALARS:
        number = struct.unpack_from(_SCALARS[kind], data, offset)[0]
        if kind == _DOUBLE:
            text = repr(number)
            return (text if "e" in text else text + "e0").encode()  # a DOUBLE, not DECIMAL
        if kind in (_UINT16, _UINT32, _UINT64):
            return b"CAST(%d AS UNSIGNED)" % number
        return b"%d" % number
    raise UnsupportedColumn(f"JSON (a value of binary type {kind})")


def _container(kind: int, data: bytes, start: int) -> bytes:
    large = kind in (_LARGE_OBJECT, _LARGE_ARRAY)
    size = 4 if large else 2
    count = int.from_bytes(data[start:start + size], "little")
    position = start + 2 * size
    keys = []
    if kind in (_SMALL_OBJECT, _LARGE_OBJECT):
        for _ in range(count):
            key_offset = int.from_bytes(data[position:position + size], "little")
            key_length = int.from_bytes(data[position + size:position + size + 2], "little")
            keys.append(_text(data[start + key_offset:start + key_offset + key_length]))
            position += size + 2
    values = []
    for _ in range(count):
        value_kind = data[position]
        field = position + 1
        if value_kind == _LITERAL or value_kind in (_INT16, _UINT16) or \
                (large and value_kind in (_INT32, _UINT32)):  # inlined in the entry
            values.append(_value(value_kind, data, field))
        else:
            target = start + int.from_bytes(data[field:field + size], "little")
            values.append(_value(value_kind, data, target))
        position += 1 + size
    if keys:
        return b"JSON_OBJECT(" + b", ".join(
            item for pair in zip(keys, values, strict=True) for item in pair) + b")"
    return (b"JSON_OBJECT(" if kind in (_SMALL_OBJECT, _LARGE_OBJECT) else b"JSON_ARRAY(") + \
        b", ".join(values) + b")"


def _opaque(field_type: int, data: bytes) -> bytes:
    if field_type == _NEWDECIMAL:
        precision, scale = data[0], data[1]
        text = decimal_text(data, 2, precision, scale)
        return b"CAST('%s' AS DECIMAL(%d, %d))" % (text, precision, scale)
    if field_type in (_DATE, _DATETIME, _TIME):
        packed = int.from_bytes(data[:8], "little", signed=True)
        negative, packed = packed < 0, abs(packed)
        micro, whole = packed % (1 << 24), packed >> 24
        # A TIME's hours (up to 838) fill the whole part; a date sits above a DATETIME's
        # 17 bits of time (my_time.cc's TIME_to_longlong_time_packed / _datetime_packed).
        hms = whole if field_type == _TIME else whole % (1 << 17)
        clock = b"%02d:%02d:%02d.%06d" % (hms >> 12, (hms >> 6) % 64, hms % 64, micro)
        if field_type == _TIME:
            return b"CAST('%s%s' AS TIME(6))" % (b"-" if negative else b"", clock)
        ymd = whole >> 17
        day = b"%04d-%02d-%02d" % ((ymd >> 5) // 13, (ymd >> 5) % 13, ymd % 32)
        if field_type == _DATE:
            return b"CAST('%s' AS DATE)" % day
        return b"CAST('%s %s' AS DATETIME(6))" % (day, clock)
    raise UnsupportedColumn(f"JSON (holding a MySQL value of field type {field_type})")


def _varlen(data: bytes, offset: int) -> tuple[int, int]:
    """A length in 7-bit groups, lowest first; a set top bit means another byte follows."""
    length = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, offset
        shift += 7


def _text(value: bytes) -> bytes:
    return b"_utf8mb4'" + value.replace(b"'", b"''") + b"'"
