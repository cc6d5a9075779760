"""Row events of the binary log, decoded into SQL literals: what lets a point-in-time restore
apply them as plain SQL where ``BINLOG`` statements are not allowed.

Azure Database for MySQL Flexible Server's admin has neither SUPER nor BINLOG_ADMIN nor
REPLICATION_APPLIER (Microsoft's list of the admin's privileges), and MySQL 8 runs the
``BINLOG '...'`` statements ``mysqlbinlog`` writes for row events only with one of them
(MariaDB: BINLOG REPLAY). So drkit reads the row images itself, as a replica's applier does,
and writes INSERT/UPDATE/DELETE statements any user with rights on the tables may run.

The formats are MySQL's (libbinlogevents, ``log_event.cc``; MariaDB writes the same for these
events): a TABLE_MAP event names a table and its column types and metadata, and the
WRITE/UPDATE/DELETE_ROWS events after it carry row images under that table id.

Each value becomes the literal that stands for it in a statement, straight from its bytes:
one reader per column, chosen once per table (:func:`column_readers`), so the per-row work is
what the format needs and no more. Strings are written as MySQL's own client escapes them
under ``NO_BACKSLASH_ESCAPES`` (only the quote is doubled), so the session that runs them
must have that mode: :data:`SQL_MODE_FOR_LITERALS`.

The same readers also write a value as a field of ``LOAD DATA`` text (``form="load"``,
:data:`LOAD_FIELDS`): strings raw but for the escape character, the field and the line
terminators, escaped; times unquoted; NULL as ``\\N``. A column whose value as a string
would mean something else than as a number (BIT, ENUM, SET, YEAR) is read into a variable
and given as a number (:func:`load_columns`); JSON (an expression, not a value) and
GEOMETRY have no field form.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from drkit.binlog.jsonbinary import json_expression
from drkit.binlog.values import UnsupportedColumn, decimal_size, decimal_text, packed_int

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


SQL_MODE_FOR_LITERALS = "NO_BACKSLASH_ESCAPES"
Form = Literal["sql", "load"]  # a value as a SQL literal, or as a field of LOAD DATA text
NULLS: dict[Form, bytes] = {"sql": b"NULL", "load": b"\\N"}
# The LOAD DATA text the "load" form writes: tab between fields, newline after each row,
# backslash escaping. In hexadecimal: the replay's session runs NO_BACKSLASH_ESCAPES, where
# '\t' would be two characters.
LOAD_FIELDS = (b"CHARACTER SET binary FIELDS TERMINATED BY X'09' ENCLOSED BY '' "
               b"ESCAPED BY X'5C' LINES TERMINATED BY X'0A' STARTING BY ''")
# Big-endian fields of the temporal types.
_BIG_40 = struct.Struct(">BI").unpack_from
_BIG_32 = struct.Struct(">I").unpack_from
_BIG_16 = struct.Struct(">H").unpack_from
_BIG_8 = struct.Struct(">B").unpack_from
_KEPT_LITERALS = 64  # of one DATETIME column, by their bytes
Reader = Callable[[bytes, int], tuple[bytes, int]]  # (bytes, offset) -> (literal, next offset)
Row = tuple[tuple[bytes, ...], tuple[bytes, ...] | None]  # (image, after image)
RowsReader = Callable[[bytes, int, int], list[Row]]  # (bytes, offset, end) -> rows


class ColumnReaders(tuple[Reader, ...]):
    """One reader per column of a table (:func:`column_readers`), and the code that reads
    an event's rows written out for them (:func:`_rows_reader`), once per images' columns
    and NULL: kept as long as the readers are (a replay's, until DDL), so a replay touching
    thousands of tables writes each table's out once, not again and again as a bounded
    cache would."""

    def __init__(self, readers: object) -> None:  # tuple's own __new__ takes the readers
        super().__init__()
        self.rows_readers: dict[tuple[tuple[int, ...], tuple[int, ...] | None, bytes],
                                RowsReader] = {}


@dataclass(frozen=True)
class TableMap:
    database: str
    table: str
    types: tuple[int, ...]
    meta: tuple[int, ...]


@dataclass(frozen=True)
class RowsEvent:
    kind: str  # "insert", "update" or "delete"
    present: tuple[int, ...]  # column indexes in the images
    after_present: tuple[int, ...]  # in the after images (an update's); else as present
    rows: list[Row]


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
    count, offset = packed_int(body, offset)
    types = tuple(body[offset:offset + count])
    offset += count
    _, offset = packed_int(body, offset)
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


def rows_event(kind: int, body: bytes, readers: ColumnReaders,
               null: bytes = NULLS["sql"]) -> RowsEvent:
    """The row images of a WRITE/UPDATE/DELETE_ROWS event's bytes after the header, as
    literals read by ``readers`` (one per column of the table, :func:`column_readers`);
    ``null`` stands for a NULL (:data:`NULLS` of the readers' form)."""
    offset = 8
    if kind in ROWS_V2:
        offset += struct.unpack("<H", body[offset:offset + 2])[0]
    count, offset = packed_int(body, offset)
    width = (count + 7) // 8
    present = _bits(body[offset:offset + width], count)
    offset += width
    after_present = present
    if kind in UPDATE_ROWS:
        after_present = _bits(body[offset:offset + width], count)
        offset += width
    shape = (tuple(present), tuple(after_present) if kind in UPDATE_ROWS else None, null)
    read_rows = readers.rows_readers.get(shape)
    if read_rows is None:  # a dict's get and set are whole under the GIL: see _datetime2
        read_rows = readers.rows_readers[shape] = _rows_reader(
            tuple(readers[column] for column in present),
            None if shape[1] is None else tuple(readers[column] for column in shape[1]), null)
    rows = read_rows(body, offset, len(body))
    name = "insert" if kind in WRITE_ROWS else "update" if kind in UPDATE_ROWS else "delete"
    return RowsEvent(name, tuple(present), tuple(after_present), rows)


def _bits(data: bytes, count: int) -> list[int]:
    return [i for i in range(count) if data[i // 8] >> (i % 8) & 1]


def _image_reader(readers: list[Reader],
                  null: bytes) -> Callable[[bytes, int], tuple[tuple[bytes, ...], int]]:
    """Reads one row image (its NULL bitmap, then each value ``readers`` reads) at an
    offset: (literals, offset after it). Made once per event: the per-row work is the
    values' alone."""
    width = (len(readers) + 7) // 8
    columns = (1 << len(readers)) - 1  # the bits past the last column's are set: not NULLs

    def read(body: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
        nulls = (body[offset] if width == 1 else
                 int.from_bytes(body[offset:offset + width], "little")) & columns
        offset += width
        values = []
        append = values.append
        if not nulls:  # the usual row: no test per column
            for read_value in readers:
                value, offset = read_value(body, offset)
                append(value)
            return tuple(values), offset
        for position, read_value in enumerate(readers):
            if nulls >> position & 1:
                append(null)
            else:
                value, offset = read_value(body, offset)
                append(value)
        return tuple(values), offset
    return read


def _rows_reader(image: tuple[Reader, ...], after: tuple[Reader, ...] | None,
                 null: bytes) -> RowsReader:
    """Reads the rows of an event from an offset to the end: (image, after image or None)
    each. Made once per table's readers and images' columns (:class:`ColumnReaders`), as
    Python code with the
    readers' work written out where they give it (:func:`_inline`): the same values as
    :func:`_image_reader`'s, which it calls for a row holding a NULL, at about two thirds
    of the time (a call per value is most of a row's cost)."""
    names: dict[str, object] = {"from_bytes": int.from_bytes, **_ESCAPES}
    lines = ["def read_rows(data, at, end):", "    rows = []", "    append = rows.append",
             "    while at < end:"]
    lines += _image_lines("image", image, null, names)
    if after is not None:
        lines += _image_lines("after", after, null, names)
    lines += [f"        append((image, {'after' if after is not None else 'None'}))",
              "    return rows"]
    exec(compile("\n".join(lines), f"<rows of {len(image)} columns>", "exec"), names)
    return names["read_rows"]  # type: ignore[return-value]


def _image_lines(image: str, readers: tuple[Reader, ...], null: bytes,
                 names: dict[str, object]) -> list[str]:
    """The code that reads one row image into ``image`` (a tuple) and moves ``at`` on."""
    width = (len(readers) + 7) // 8
    names[f"{image}_with_nulls"] = _image_reader(list(readers), null)
    # The server sets the bitmap's bits past the last column's (MySQL's and MariaDB's
    # pack_row): only the columns' own say NULL.
    columns = (1 << len(readers)) - 1
    nulls = "data[at]" if width == 1 else f"from_bytes(data[at:at + {width}], 'little')"
    lines = [f"if {nulls} & {columns}:", f"    {image}, at = {image}_with_nulls(data, at)", "else:",
             f"    at += {width}"]
    for column, reader in enumerate(readers):
        code, helpers = _INLINE.get(reader, (["{value}, at = {reader}(data, at)"],
                                             {"reader": reader}))
        bound = {key: f"{image}_{column}_{key}" for key in helpers}
        names.update({bound[key]: helper for key, helper in helpers.items()})
        lines += ["    " + line.format(value=f"{image}_{column}", **bound) for line in code]
    values = "".join(f"{image}_{column}, " for column in range(len(readers)))
    lines.append(f"    {image} = ({values})")
    return ["        " + line for line in lines]


def _inline(reader: Reader, code: list[str], **helpers: object) -> Reader:
    """``reader``, with its work as lines of code (setting ``{value}`` from ``data`` at
    ``at`` and moving ``at`` past it; ``start`` is theirs to use) that name ``helpers`` by
    their keys, for :func:`_rows_reader` to write out. No helper may be ``reader`` itself
    (or hold it): the entry would keep its own weak key alive."""
    _INLINE[reader] = (code, helpers)
    return reader


# Readers whose work _rows_reader writes out, by reader (they live as long as their table's
# readers; a table's new readers after DDL leave the old ones to be collected).
_INLINE: weakref.WeakKeyDictionary[Reader, tuple[list[str], dict[str, object]]] = \
    weakref.WeakKeyDictionary()
# The escapes of a LOAD DATA field, as names the written-out code uses.
_ESCAPES = {"BACKSLASH": b"\\", "BACKSLASH_2": b"\\\\", "TAB": b"\t",
            "ESCAPED_TAB": b"\\t", "NEWLINE": b"\n", "ESCAPED_NEWLINE": b"\\n",
            "QUOTE": b"'", "QUOTE_2": b"''"}


def column_readers(table: TableMap, unsigned: tuple[bool, ...],
                   binary: tuple[int, ...] | None = None,
                   form: Form = "sql") -> ColumnReaders:
    """One reader per column of ``table``; ``unsigned`` says which integer columns are
    (the binlog's MariaDB tables do not, the target does), ``binary`` the length of each
    BINARY(n) column (0: another type); ``form``: literals or LOAD DATA fields (only for a
    table :func:`load_columns` accepts). Raises UnsupportedColumn."""
    readers = []
    for kind, meta, is_unsigned, length in zip(table.types, table.meta, unsigned,
                                               binary or (0,) * len(table.types), strict=True):
        if kind == STRING and meta >> 8 in (ENUM, SET):  # stored as their number
            readers.append(_number(meta & 0xFF, "little", False))
        elif kind == STRING and length:  # the image leaves out its trailing zero bytes
            readers.append(_string(1 if length < 256 else 2, form, pad_to=length))
        elif kind in _READERS:
            readers.append(_READERS[kind](meta, is_unsigned, form))
        else:
            names = {TIME: "TIME (the pre-5.6 format)", DECIMAL_OLD: "DECIMAL (the pre-5.0 format)"}
            raise UnsupportedColumn(names.get(kind, f"type {kind}"))
    return ColumnReaders(readers)


def load_columns(table: TableMap) -> tuple[bool, ...] | None:
    """For each column of ``table``, whether LOAD DATA must take its field as a number
    (through a variable: BIT, ENUM, SET and YEAR, whose string means another value); None
    where a column has no field form (JSON, GEOMETRY) or no reader."""
    numbers = []
    for kind, meta in zip(table.types, table.meta, strict=True):
        if kind not in _READERS or kind in (JSON, GEOMETRY):
            return None
        numbers.append(kind in (BIT, YEAR) or (kind == STRING and meta >> 8 in (ENUM, SET)))
    return tuple(numbers)


def _integer(size: int, unsigned: bool) -> Reader:
    if size == 3:
        return _number(3, "little", not unsigned)
    code = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
    unpack = struct.Struct("<" + (code.upper() if unsigned else code)).unpack_from

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        return b"%d" % unpack(data, offset)[0], offset + size
    return _inline(read, ["{value} = b'%d' % {unpack}(data, at)[0]", f"at += {size}"],
                   unpack=unpack)


def _number(size: int, order: str, signed: bool) -> Reader:
    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        end = offset + size
        return b"%d" % int.from_bytes(data[offset:end], order, signed=signed), end
    return read


def _float(fmt: str) -> Reader:
    unpack, size = struct.Struct(fmt).unpack_from, struct.calcsize(fmt)

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        return b"%r" % unpack(data, offset)[0], offset + size
    return read


def _string(prefix: int, form: Form, pad_to: int = 0) -> Reader:
    def literal(data: bytes, offset: int) -> tuple[bytes, int]:
        start = offset + prefix
        end = start + int.from_bytes(data[offset:start], "little")
        value = data[start:end].ljust(pad_to, b"\0") if pad_to else data[start:end]
        return b"_binary'%b'" % value.replace(b"'", b"''"), end

    def field(data: bytes, offset: int) -> tuple[bytes, int]:
        start = offset + prefix
        end = start + int.from_bytes(data[offset:start], "little")
        value = data[start:end].ljust(pad_to, b"\0") if pad_to else data[start:end]
        # The escape character first: the escapes after it add backslashes of their own.
        return value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n"), end
    length = {1: ["start = at + 1", "at = start + data[at]"],
              2: ["start = at + 2", "at = start + (data[at] | data[at + 1] << 8)"]}.get(
        prefix, [f"start = at + {prefix}", "at = start + from_bytes(data[at:start], 'little')"])
    value = f"data[start:at].ljust({pad_to}, {{zero}})" if pad_to else "data[start:at]"
    if form == "sql":
        return _inline(literal, [*length, f"{{value}} = {{quoted}} % {value}.replace(QUOTE, "
                                 "QUOTE_2)"], quoted=b"_binary'%b'", zero=b"\0")
    return _inline(field, [*length, f"{{value}} = {value}.replace(BACKSLASH, BACKSLASH_2)"
                           ".replace(TAB, ESCAPED_TAB).replace(NEWLINE, ESCAPED_NEWLINE)"],
                   zero=b"\0")


def _char(meta: int, form: Form) -> Reader:
    # CHAR's length prefix is one byte below 256 bytes; the top bits of the length hide in
    # the first meta byte (MySQL's Field_string::do_save_field_metadata).
    maximum = (((meta >> 4) & 0x300) ^ 0x300) + (meta & 0xFF)
    return _string(1 if maximum < 256 else 2, form)


def _quote(form: Form) -> bytes:
    """What encloses a time's text: a literal's quote; nothing in a LOAD DATA field."""
    return b"'" if form == "sql" else b""


def _quoted(size: int, text: Callable[[bytes, int], str], form: Form) -> Reader:
    quote = _quote(form)

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        return quote + text(data, offset).encode() + quote, offset + size
    return read


def _date(data: bytes, offset: int) -> str:
    value = int.from_bytes(data[offset:offset + 3], "little")
    return f"{value >> 9:04d}-{(value >> 5) & 15:02d}-{value & 31:02d}"


def _datetime2(fsp: int, form: Form) -> Reader:
    fraction, size = _fraction(fsp)
    width = 5 + size
    quote = _quote(form)
    # The rows of one statement often hold the same few times (NOW() of a bulk INSERT, an
    # UPDATE's before and after): their literals are kept by their bytes, a few at a time.
    # A load the target did not take reads its rows again on the statements' thread: each
    # get and set of the dict is whole under the GIL, and a literal is the same whoever
    # makes it.
    literals: dict[bytes, bytes] = {}

    def made(data: bytes, offset: int) -> tuple[bytes, int]:
        """A literal not kept: made, and kept."""
        high, low = _BIG_40(data, offset)  # 40 bits, offset binary
        value = (high << 32 | low) - 0x8000000000
        ymd, hms = value >> 17, value & 0x1FFFF
        year_month = ymd >> 5
        literal = b"%s%04d-%02d-%02d %02d:%02d:%02d.%06d%s" % (
            quote, year_month // 13, year_month % 13, ymd & 31, hms >> 12,
            (hms >> 6) & 63, hms & 63, fraction(data, offset + 5), quote)
        if len(literals) >= _KEPT_LITERALS:
            literals.clear()
        literals[data[offset:offset + width]] = literal
        return literal, offset + width

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        literal = literals.get(data[offset:offset + width])
        return (literal, offset + width) if literal is not None else made(data, offset)
    # The written-out code calls ``made``, not ``read``: _INLINE's entry must not hold its
    # own key, or the reader would outlive its table's readers.
    return _inline(read, [f"{{value}} = {{kept}}(data[at:at + {width}])", "if {value} is None:",
                          "    {value}, at = {made}(data, at)", "else:",
                          f"    at += {width}"], kept=literals.get, made=made)


def _timestamp2(fsp: int, form: Form) -> Reader:
    fraction, size = _fraction(fsp)
    quote = _quote(form)

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        seconds = _BIG_32(data, offset)[0]
        micro = fraction(data, offset + 4)
        if not seconds and not micro:
            return quote + b"0000-00-00 00:00:00" + quote, offset + 4 + size
        return quote + _utc(seconds).encode() + b".%06d" % micro + quote, offset + 4 + size
    return read


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fraction(fsp: int) -> tuple[Callable[[bytes, int], int], int]:
    """A reader of the fractional seconds of precision ``fsp`` (big-endian, (fsp + 1) // 2
    bytes) as microseconds, and its size."""
    size = (fsp + 1) // 2
    if not size:
        return (lambda data, offset: 0), 0
    unpack = {1: _BIG_8, 2: _BIG_16}.get(size)
    scale = 10 ** (6 - 2 * size)
    if unpack is None:  # 3 bytes
        return (lambda data, offset: int.from_bytes(data[offset:offset + 3], "big")), 3
    return (lambda data, offset: unpack(data, offset)[0] * scale), size


def _time2(fsp: int, form: Form) -> Reader:
    size = (fsp + 1) // 2
    width = 3 + size
    quote = _quote(form)

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        raw = int.from_bytes(data[offset:offset + width], "big")
        # Offset binary over the whole width: the sign is its top bit, the fraction its tail.
        value = raw - (1 << (8 * width - 1))
        sign = b"-" if value < 0 else b""
        value = abs(value)
        fraction = value % (1 << (8 * size)) if size else 0
        whole = value >> (8 * size)
        micro = fraction * 10 ** (6 - 2 * size) if size else 0
        return b"%s%s%02d:%02d:%02d.%06d%s" % (
            quote, sign, (whole >> 12) % (1 << 10), (whole >> 6) % 64, whole % 64, micro,
            quote), offset + width
    return read


def _bit(meta: int) -> Reader:
    return _number((meta & 0xFF) + (1 if meta >> 8 else 0), "big", False)


def _year(data: bytes, offset: int) -> tuple[bytes, int]:
    return b"%d" % (data[offset] + 1900 if data[offset] else 0), offset + 1


def _datetime(data: bytes, offset: int) -> str:
    date, time_ = divmod(int.from_bytes(data[offset:offset + 8], "little"), 1000000)
    return (f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d} "
            f"{time_ // 10000:02d}:{time_ // 100 % 100:02d}:{time_ % 100:02d}")


def _decimal(precision: int, scale: int) -> Reader:
    size = decimal_size(precision, scale)

    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        return decimal_text(data, offset, precision, scale), offset + size
    return read


def _json(meta: int) -> Reader:
    def read(data: bytes, offset: int) -> tuple[bytes, int]:
        start = offset + meta
        end = start + int.from_bytes(data[offset:start], "little")
        return json_expression(data[start:end]), end
    return read


# Each column type's reader, made from its metadata, signedness and form. Numbers read the
# same in both forms; JSON and GEOMETRY are read as literals only (load_columns).
_READERS: dict[int, Callable[[int, bool, Form], Reader]] = {
    **{kind: lambda meta, unsigned, form, size=size: _integer(size, unsigned)
       for kind, size in INT_SIZES.items()},
    FLOAT: lambda meta, unsigned, form: _float("<f"),
    DOUBLE: lambda meta, unsigned, form: _float("<d"),
    NEWDECIMAL: lambda meta, unsigned, form: _decimal(meta >> 8, meta & 0xFF),
    VARCHAR: lambda meta, unsigned, form: _string(1 if meta < 256 else 2, form),
    VAR_STRING: lambda meta, unsigned, form: _string(1 if meta < 256 else 2, form),
    STRING: lambda meta, unsigned, form: _char(meta, form),
    **{kind: lambda meta, unsigned, form: _string(meta, form)
       for kind in (BLOB, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB)},
    GEOMETRY: lambda meta, unsigned, form: _string(meta, "sql"),
    DATE: lambda meta, unsigned, form: _quoted(3, _date, form),
    DATETIME2: lambda meta, unsigned, form: _datetime2(meta, form),
    TIMESTAMP2: lambda meta, unsigned, form: _timestamp2(meta, form),
    TIME2: lambda meta, unsigned, form: _time2(meta, form),
    YEAR: lambda meta, unsigned, form: _year,
    BIT: lambda meta, unsigned, form: _bit(meta),
    TIMESTAMP: lambda meta, unsigned, form: _quoted(
        4, lambda data, offset: _utc(int.from_bytes(data[offset:offset + 4], "little")), form),
    DATETIME: lambda meta, unsigned, form: _quoted(8, _datetime, form),
    JSON: lambda meta, unsigned, form: _json(meta),
}
