"""The binlog decoders on MySQL 8 event bytes: the formats drkit reads that MariaDB does not
write (binary JSON, v2 rows events, TRANSACTION_PAYLOAD, MySQL's GTID events and status
variables), laid out by hand from mysql-server 8.0/8.4's sources. Each builder names the file
and function its layout comes from; the values asserted are those the bytes were made from.
"""

from __future__ import annotations

import calendar
import struct

import pytest
import zstandard

from drkit.binlog.events import (
    GTID_EVENTS,
    PASSED_OVER,
    TRANSACTION_PAYLOAD,
    UNAPPLIABLE,
    XID,
    parse_query,
    payload_events,
)
from drkit.binlog.jsonbinary import json_expression
from drkit.binlog.protocol import _gtid
from drkit.binlog.rowevents import (
    HEADER,
    TABLE_MAP,
    TableMap,
    UnsupportedColumn,
    column_readers,
    rows_event,
    table_map,
)

QUERY, WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 2, 30, 31, 32
GTID_LOG_EVENT, ANONYMOUS_GTID_LOG_EVENT, GTID_TAGGED_LOG_EVENT = 33, 34, 42
XA_PREPARE_LOG_EVENT, PARTIAL_UPDATE_ROWS_EVENT = 38, 39
# enum_field_types (include/field_types.h)
LONG, DOUBLE, TIMESTAMP2, YEAR, VARCHAR, BIT = 3, 5, 17, 13, 15, 16
JSON, NEWDECIMAL, ENUM, BLOB, STRING, GEOMETRY, TINY = 245, 246, 247, 252, 254, 255, 1
SERVER_ID = 1


def u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little", signed=value < 0)


def packed(value: int) -> bytes:
    # mysys/pack.cc: net_store_length
    if value < 251:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def event(kind: int, body: bytes, next_position: int = 0) -> bytes:
    # libbinlogevents binlog_event.h: Log_event_header (timestamp, type, server id, size,
    # next position, flags), then the body; inside a TRANSACTION_PAYLOAD no checksum.
    return struct.pack("<IBIIIH", 1764252189, kind, SERVER_ID, HEADER + len(body),
                       next_position, 0) + body


def json_value(kind: int, document: bytes) -> bytes:
    """A whole binary JSON document: its type byte, then the value (json_binary.h)."""
    return bytes([kind]) + document


def sql_json(expression: str) -> bytes:
    return expression.encode()


def scalar(expression: str) -> bytes:
    return b"JSON_EXTRACT(JSON_ARRAY(" + expression.encode() + b"), '$[0]')"


# -- binary JSON: containers ----------------------------------------------------------
# mysql-server 8.0 sql-common/json_binary.cc: serialize_json_object / serialize_json_array
# (count, size, key entries, value entries, keys, values; offsets from the container's
# start), attempt_inline_value (literals and int16 always inlined; int32 in the large format).

def test_a_small_object_with_an_inlined_int16_and_a_string_at_an_offset():
    document = json_value(0x00, (
        u16(2) + u16(24)                        # two members, 24 bytes
        + u16(18) + u16(1) + u16(19) + u16(2)   # keys "a" at 18, "bb" at 19
        + b"\x05" + u16(1)                      # INT16 1, inlined
        + b"\x0c" + u16(21)                     # STRING at 21
        + b"a" + b"bb" + b"\x02xy"))
    assert json_expression(document) == sql_json(
        "JSON_OBJECT(_utf8mb4'a', 1, _utf8mb4'bb', _utf8mb4'xy')")


def test_a_large_object_inlines_int32_and_literals_in_four_bytes():
    document = json_value(0x01, (
        u32(2) + u32(32)
        + u32(30) + u16(1) + u32(31) + u16(1)   # keys "k" at 30, "n" at 31
        + b"\x07" + u32(70000)                  # INT32, inlined in the large format
        + b"\x04" + u32(0)                      # the null literal
        + b"kn"))
    assert json_expression(document) == sql_json(
        "JSON_OBJECT(_utf8mb4'k', 70000, _utf8mb4'n', CAST('null' AS JSON))")


def test_a_small_array_keeps_int32_uint32_and_double_at_offsets():
    document = json_value(0x02, (
        u16(5) + u16(35)
        + b"\x07" + u16(19)                     # INT32 at 19: not inlined when small
        + b"\x05" + u16(0xFFFF)                 # INT16 -1, inlined
        + b"\x04" + u16(1)                      # true
        + b"\x08" + u16(23)                     # UINT32 at 23
        + b"\x0b" + u16(27)                     # DOUBLE at 27
        + struct.pack("<i", 70000) + struct.pack("<I", 4294967295) + struct.pack("<d", 1.5)))
    assert json_expression(document) == sql_json(
        "JSON_ARRAY(70000, -1, CAST('true' AS JSON), CAST(4294967295 AS UNSIGNED), 1.5e0)")


def test_a_large_array_of_64_bit_integers_and_inlined_small_ones():
    document = json_value(0x03, (
        u32(4) + u32(44)
        + b"\x09" + u32(28)                     # INT64 at 28
        + b"\x0a" + u32(36)                     # UINT64 at 36
        + b"\x06" + u32(65535)                  # UINT16, inlined
        + b"\x07" + struct.pack("<i", -5)       # INT32 -5, inlined in the large format
        + struct.pack("<q", -(1 << 40)) + struct.pack("<Q", (1 << 64) - 1)))
    assert json_expression(document) == sql_json(
        "JSON_ARRAY(-1099511627776, CAST(18446744073709551615 AS UNSIGNED), "
        "CAST(65535 AS UNSIGNED), -5)")


def test_nested_containers_count_offsets_from_their_own_start():
    inner_object = (u16(1) + u16(14) + u16(11) + u16(1) + b"\x0c" + u16(12)
                    + b"b" + b"\x01c")
    array = u16(2) + u16(24) + b"\x05" + u16(1) + b"\x00" + u16(10) + inner_object
    document = json_value(0x00, u16(1) + u16(36) + u16(11) + u16(1) + b"\x02" + u16(12)
                          + b"a" + array)
    assert json_expression(document) == sql_json(
        "JSON_OBJECT(_utf8mb4'a', JSON_ARRAY(1, JSON_OBJECT(_utf8mb4'b', _utf8mb4'c')))")


def test_empty_object_and_array():
    assert json_expression(json_value(0x00, u16(0) + u16(4))) == b"JSON_OBJECT()"
    assert json_expression(json_value(0x02, u16(0) + u16(4))) == b"JSON_ARRAY()"


# -- binary JSON: scalars -------------------------------------------------------------
# json_binary.cc: serialize_json_value (a scalar document is its type byte and the value).

@pytest.mark.parametrize(("document", "expression"), [
    (b"\x05" + struct.pack("<h", -32768), "-32768"),
    (b"\x06" + struct.pack("<H", 65535), "CAST(65535 AS UNSIGNED)"),
    (b"\x07" + struct.pack("<i", -2147483648), "-2147483648"),
    (b"\x08" + struct.pack("<I", 4294967295), "CAST(4294967295 AS UNSIGNED)"),
    (b"\x09" + struct.pack("<q", -(1 << 63)), "-9223372036854775808"),
    (b"\x0a" + struct.pack("<Q", (1 << 64) - 1), "CAST(18446744073709551615 AS UNSIGNED)"),
    (b"\x0b" + struct.pack("<d", 1.0), "1.0e0"),  # a DOUBLE that looks whole stays one
    (b"\x0b" + struct.pack("<d", -2.5e-300), "-2.5e-300"),
    (b"\x04\x01", "CAST('true' AS JSON)"),
    (b"\x04\x02", "CAST('false' AS JSON)"),
    (b"\x04\x00", "CAST('null' AS JSON)"),
])
def test_a_scalar_document_keeps_its_type(document, expression):
    assert json_expression(document) == scalar(expression)


def test_a_string_of_200_bytes_has_a_two_byte_length():
    # json_binary.cc: append_variable_length, 7 bits a byte, lowest first.
    value = "é" * 100
    document = b"\x0c" + bytes([200 & 0x7F | 0x80, 200 >> 7]) + value.encode()
    assert json_expression(document) == scalar(f"_utf8mb4'{value}'")


def test_a_string_keeps_multibyte_characters_and_doubles_only_the_quote():
    value = "it's ü€😀 \\n"
    data = value.encode()
    assert json_expression(b"\x0c" + bytes([len(data)]) + data) == \
        scalar("_utf8mb4'it''s ü€😀 \\n'")


def test_an_empty_document_is_the_json_null():
    # json_binary.cc: parse_binary reads an empty value (INSERT IGNORE or a non-strict
    # sql_mode writing NULL into a NOT NULL JSON column) as the JSON null literal.
    assert json_expression(b"") == json_expression(b"\x04\x00")


def test_an_unknown_binary_type_is_refused_by_number():
    with pytest.raises(UnsupportedColumn, match="binary type 13"):
        json_expression(b"\x0d\x00")


# -- binary JSON: opaque values -------------------------------------------------------
# json_binary.cc: serialize_opaque (field type, variable length, data); serialize_decimal
# (json_dom.cc Json_decimal::get_binary: precision, scale, then decimal2bin);
# serialize_datetime (Json_datetime::to_packed: int8store of TIME_to_longlong_packed).

def opaque(field_type: int, data: bytes) -> bytes:
    return b"\x0f" + bytes([field_type, len(data)]) + data


def datetime_packed(year: int, month: int, day: int, clock: tuple[int, int, int],
                    micro: int) -> bytes:
    # mysys/my_time.cc: TIME_to_longlong_datetime_packed
    ymd = (year * 13 + month) << 5 | day
    hms = clock[0] << 12 | clock[1] << 6 | clock[2]
    return u64(((ymd << 17 | hms) << 24) + micro)


def time_packed(hours: int, minutes: int, seconds: int, micro: int, negative: bool) -> bytes:
    # mysys/my_time.cc: TIME_to_longlong_time_packed (hours up to 838 in the whole part)
    value = (hours << 12 | minutes << 6 | seconds) << 24 | micro
    return u64(-value if negative else value)


def test_an_opaque_decimal_keeps_its_precision_and_scale():
    assert json_expression(opaque(NEWDECIMAL, b"\x03\x02\x83\x0e")) == \
        scalar("CAST('3.14' AS DECIMAL(3, 2))")
    # strings/decimal.c's decimal2bin example, negative: every bit inverted.
    assert json_expression(opaque(NEWDECIMAL, b"\x0e\x04" + bytes.fromhex("7EF204C72DFB2D"))) \
        == scalar("CAST('-1234567890.1234' AS DECIMAL(14, 4))")


def test_opaque_dates_and_datetimes():
    assert json_expression(opaque(10, datetime_packed(2026, 11, 27, (0, 0, 0), 0))) == \
        scalar("CAST('2026-11-27' AS DATE)")
    assert json_expression(opaque(12, datetime_packed(2026, 11, 27, (14, 3, 9), 123456))) == \
        scalar("CAST('2026-11-27 14:03:09.123456' AS DATETIME(6))")


def test_opaque_times_of_more_than_31_hours_keep_their_hours():
    assert json_expression(opaque(11, time_packed(838, 59, 59, 500000, negative=True))) == \
        scalar("CAST('-838:59:59.500000' AS TIME(6))")
    assert json_expression(opaque(11, time_packed(100, 0, 1, 0, negative=False))) == \
        scalar("CAST('100:00:01.000000' AS TIME(6))")
    assert json_expression(opaque(11, time_packed(12, 34, 56, 789, negative=False))) == \
        scalar("CAST('12:34:56.000789' AS TIME(6))")


def test_opaque_values_of_other_field_types_are_refused_by_type():
    # A TIMESTAMP inside a document (JSON_ARRAY of a TIMESTAMP column) has no CAST that
    # rebuilds it as a TIMESTAMP; a binary string (CAST(x'..' AS JSON)) none at all.
    with pytest.raises(UnsupportedColumn, match="field type 7"):
        json_expression(opaque(7, datetime_packed(2026, 11, 27, (1, 2, 3), 0)))
    with pytest.raises(UnsupportedColumn, match="field type 253"):
        json_expression(opaque(253, b"\x00\xff"))


# -- TABLE_MAP and v2 rows events -----------------------------------------------------

def table_map_body(table_id: int, names: tuple[str, str], types: bytes, meta: bytes,
                   optional: bytes = b"") -> bytes:
    # sql/log_event.cc: Table_map_log_event::write_data_header (table id, flags) and
    # write_data_body (database, table, column count, types, metadata, null bits, then the
    # optional metadata of init_metadata_fields).
    database, table = (name.encode() for name in names)
    return (table_id.to_bytes(6, "little") + u16(1)
            + bytes([len(database)]) + database + b"\0"
            + bytes([len(table)]) + table + b"\0"
            + packed(len(types)) + types + packed(len(meta)) + meta
            + b"\xff" * ((len(types) + 7) // 8) + optional)


def rows_v2_body(table_id: int, columns: int, bitmaps: bytes, rows: bytes,
                 extra: bytes = b"") -> bytes:
    # libbinlogevents rows_event.cpp: Rows_event (table id, flags, var_header_len counting
    # its own two bytes and the extra row info after it, column count, column bitmaps).
    return (table_id.to_bytes(6, "little") + u16(1) + u16(2 + len(extra)) + extra
            + packed(columns) + bitmaps + rows)


# A table of MySQL 8's types: (column type, metadata as Field::do_save_field_metadata
# writes it).
WIDE_TYPES = bytes([LONG, VARCHAR, NEWDECIMAL, BLOB, JSON, DOUBLE, TIMESTAMP2, BIT, STRING,
                    GEOMETRY, YEAR, STRING, STRING])
WIDE_META = (u16(1200)                 # VARCHAR(300) utf8mb4: its bytes, little-endian
             + bytes([10, 2])          # DECIMAL(10,2): precision, scale
             + b"\x02" + b"\x04"       # BLOB, JSON: the length's bytes
             + b"\x08" + b"\x03"       # DOUBLE: 8 bytes; TIMESTAMP(3): fractional digits
             + bytes([2, 1])           # BIT(10): 2 bits over 1 whole byte
             + bytes([ENUM, 1])        # ENUM: real type, pack length
             + b"\x04"                 # GEOMETRY: the length's bytes
             + bytes([STRING, 80])     # CHAR(20) utf8mb4: 80 bytes
             + bytes([STRING ^ 0x30, 0xFC]))  # CHAR(255) utf8mb4: 1020, top bits in byte 0
OPTIONAL_METADATA = (
    b"\x01" + packed(1) + b"\x00"                      # SIGNEDNESS
    + b"\x02" + packed(3) + packed(255)                # DEFAULT_CHARSET utf8mb4_0900_ai_ci
    + b"\x04" + packed(6) + b"\x02id" + b"\x03doc")    # COLUMN_NAME (two of them)


def test_a_mysql8_table_map_with_optional_metadata():
    body = table_map_body(108, ("shop", "wide"), WIDE_TYPES, WIDE_META, OPTIONAL_METADATA)
    assert table_map(body) == (108, TableMap(
        "shop", "wide", tuple(WIDE_TYPES),
        (0, 1200, 10 << 8 | 2, 2, 4, 8, 3, 2 << 8 | 1, ENUM << 8 | 1, 4, 0, STRING << 8 | 80,
         (STRING ^ 0x30) << 8 | 0xFC)))


def test_a_write_rows_v2_event_of_every_mysql8_type():
    mapped = table_map(table_map_body(108, ("shop", "wide"), WIDE_TYPES, WIDE_META))[1]
    document = json_value(0x00, u16(1) + u16(12) + u16(11) + u16(1) + b"\x05" + u16(1) + b"a")
    point = u32(0) + b"\x01" + u32(1) + struct.pack("<dd", 1.0, 2.0)  # SRID, then WKB
    at = calendar.timegm((2024, 10, 4, 0, 0, 0))
    row = (b"\x00\x00"                                   # null bitmap of 13 columns
           + u32(7)
           + u16(4) + "Zoë".encode()                    # two-byte length: 1200 > 255
           + bytes.fromhex("8000000C22")                 # 12.34
           + u16(3) + b"abc"
           + u32(len(document)) + document
           + struct.pack("<d", 0.25)
           + at.to_bytes(4, "big") + (1230).to_bytes(2, "big")  # .123: hundreds of µs
           + (513).to_bytes(2, "big")
           + b"\x02"
           + u32(len(point)) + point
           + bytes([126])                                # YEAR 2026
           + b"\x02AB"
           + u16(4) + b"long")
    body = rows_v2_body(108, 13, b"\xff\x1f", row)
    event = rows_event(WRITE_ROWS_V2, body, column_readers(mapped, (False,) * 13))
    assert event.kind == "insert"
    assert event.rows == [((
        b"7", b"_binary'Zo\xc3\xab'", b"12.34", b"_binary'abc'",
        b"JSON_OBJECT(_utf8mb4'a', 1)", b"0.25", b"'2024-10-04 00:00:00.123000'", b"513",
        b"2", b"_binary'" + point + b"'", b"2026", b"_binary'AB'", b"_binary'long'"), None)]


def test_three_hundred_columns_take_a_packed_count_and_long_bitmaps():
    types = bytes([TINY]) * 300
    body = table_map_body(9, ("db", "t300"), types, b"")
    assert body[8 + 4 + 6:8 + 4 + 6 + 3] == b"\xfc\x2c\x01"  # 300, packed
    mapped = table_map(body)[1]
    assert mapped.types == (TINY,) * 300
    nulls = bytearray(38)
    nulls[37] = 0x08  # column 299 is NULL
    row = bytes(nulls) + bytes(n % 256 for n in range(299))
    event = rows_event(WRITE_ROWS_V2, rows_v2_body(9, 300, b"\xff" * 37 + b"\x0f", row),
                       column_readers(mapped, (True,) * 300))
    ((image, _),) = event.rows
    assert image == tuple(b"%d" % (n % 256) for n in range(299)) + (b"NULL",)



def test_a_metadata_block_longer_than_250_bytes_has_a_packed_length():
    body = table_map_body(10, ("db", "doubles"), bytes([DOUBLE]) * 300, b"\x08" * 300)
    mapped = table_map(body)[1]
    assert (mapped.types, mapped.meta) == ((DOUBLE,) * 300, (8,) * 300)


# mysys/my_time.cc: my_time_packed_to_binary and the table in my_time_packed_from_binary's
# comment (TIME(2) on disk: three bytes from 0x800000, then the hundredths, a negative
# time's in reverse order); TIME(4): two bytes of hundreds of microseconds.
@pytest.mark.parametrize(("disk", "fsp", "literal"), [
    ("80000000", 2, "'00:00:00.000000'"),
    ("7FFFFFFF", 2, "'-00:00:00.010000'"),
    ("7FFFFF9D", 2, "'-00:00:00.990000'"),
    ("7FFFFF00", 2, "'-00:00:01.000000'"),
    ("7FFFFEFF", 2, "'-00:00:01.010000'"),
    ("7FFFFEF6", 2, "'-00:00:01.100000'"),
    ("7FFFFEFFFF", 4, "'-00:00:01.000100'"),
    ("800001" "03E8", 4, "'00:00:01.100000'"),
])
def test_time2_as_my_time_cc_lays_it_out(disk, fsp, literal):
    (reader,) = column_readers(TableMap("db", "t", (19,), (fsp,)), (False,))
    assert reader(bytes.fromhex(disk), 0) == (literal.encode(), len(disk) // 2)


def test_timestamp2_and_datetime2_with_short_fractions():
    # my_time.cc: my_timestamp_to_binary (seconds, then the fraction in 1, 2 or 3 bytes)
    # and my_datetime_packed_to_binary (five bytes from 0x8000000000, then the fraction).
    (timestamp2,) = column_readers(TableMap("db", "t", (TIMESTAMP2,), (2,)), (False,))
    assert timestamp2((86400).to_bytes(4, "big") + b"\x2a", 0) == \
        (b"'1970-01-02 00:00:00.420000'", 5)
    (datetime2,) = column_readers(TableMap("db", "t", (18,), (4,)), (False,))
    ymd = (2026 * 13 + 2) << 5 | 28
    whole = (1 << 39 | ymd << 17 | 23 << 12 | 59 << 6 | 58).to_bytes(5, "big")
    assert datetime2(whole + (9999).to_bytes(2, "big"), 0) == \
        (b"'2026-02-28 23:59:58.999900'", 7)


def accounts() -> TableMap:
    return table_map(table_map_body(
        5, ("bank", "accounts"), bytes([LONG, VARCHAR]), u16(80)))[1]


def test_an_update_rows_v2_event_skips_its_partition_info():
    # rows_event.cpp: extra row info of type PART (1): the partition id, and for an update
    # the source partition id too.
    extra = b"\x01" + u16(3) + u16(2)
    rows = (b"\x00" + u32(1) + b"\x03ann") + (b"\x00" + u32(1) + b"\x04anne")
    body = rows_v2_body(5, 2, b"\x03\x03", rows, extra)
    event = rows_event(UPDATE_ROWS_V2, body, column_readers(accounts(), (False, False)))
    assert event.kind == "update"
    assert event.rows == [((b"1", b"_binary'ann'"), (b"1", b"_binary'anne'"))]


def test_a_delete_rows_v2_event_skips_ndb_info():
    # rows_event.cpp: extra row info of type NDB (0): its length first, counting itself.
    extra = b"\x00" + bytes([4, 0]) + b"\xaa\xbb"
    body = rows_v2_body(5, 2, b"\x03", b"\x02" + u32(9), extra)
    event = rows_event(DELETE_ROWS_V2, body, column_readers(accounts(), (False, False)))
    assert (event.kind, event.rows) == ("delete", [((b"9", b"NULL"), None)])


def test_a_minimal_update_v2_with_different_before_and_after_columns():
    body = rows_v2_body(5, 2, b"\x01\x02", b"\x00" + u32(4) + b"\x00" + b"\x03bob")
    event = rows_event(UPDATE_ROWS_V2, body, column_readers(accounts(), (False, False)))
    assert (event.present, event.after_present) == ((0,), (1,))
    assert event.rows == [((b"4",), (b"_binary'bob'",))]


def test_a_json_column_holds_a_four_byte_length_then_the_document():
    mapped = table_map(table_map_body(6, ("db", "docs"), bytes([LONG, JSON]), b"\x04"))[1]
    document = b"\x0c\x02hi"
    body = rows_v2_body(6, 2, b"\x03", b"\x00" + u32(1) + u32(len(document)) + document)
    event = rows_event(WRITE_ROWS_V2, body, column_readers(mapped, (False, False)))
    assert event.rows == [((b"1", scalar("_utf8mb4'hi'")), None)]


def test_partial_json_updates_and_xa_prepares_are_refused_by_name():
    assert "PARTIAL_JSON" in UNAPPLIABLE[PARTIAL_UPDATE_ROWS_EVENT]
    assert "XA" in UNAPPLIABLE[XA_PREPARE_LOG_EVENT]
    assert not {PARTIAL_UPDATE_ROWS_EVENT, XA_PREPARE_LOG_EVENT} & PASSED_OVER


# -- GTID events ----------------------------------------------------------------------

SID = bytes.fromhex("3e11fa4771ca11e19e33c80aa9429562")


def gtid_body(gno: int) -> bytes:
    # libbinlogevents control_events.cpp: Gtid_event (flags, SID, GNO, lt_type 2,
    # last_committed, sequence_number, immediate then original commit timestamp (7 bytes,
    # the top bit says the original follows), transaction_length packed, immediate then
    # original server version (the top bit likewise)).
    commit_timestamp = (1764252189123456 | 1 << 55).to_bytes(7, "little")
    return (b"\x00" + SID + u64(gno) + b"\x02" + u64(11) + u64(12)
            + commit_timestamp + (1764252189000000).to_bytes(7, "little")
            + packed(1234) + u32(80036 | 1 << 31) + u32(80036))


def test_a_mysql8_gtid_event_reads_as_uuid_and_number():
    data = event(GTID_LOG_EVENT, gtid_body(23))
    assert _gtid(GTID_LOG_EVENT, SERVER_ID, data) == "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"


def test_a_gtid_number_past_32_bits():
    data = event(GTID_LOG_EVENT, gtid_body((1 << 62) + 5))
    assert _gtid(GTID_LOG_EVENT, SERVER_ID, data).endswith(":4611686018427387909")


def test_every_event_that_begins_a_mysql_transaction_begins_one_in_the_replay():
    # binlog_event.h: GTID_LOG_EVENT, ANONYMOUS_GTID_LOG_EVENT (every transaction when
    # gtid_mode is OFF, a DDL with no BEGIN after it), GTID_TAGGED_LOG_EVENT (8.3+).
    assert {GTID_LOG_EVENT, ANONYMOUS_GTID_LOG_EVENT, GTID_TAGGED_LOG_EVENT} <= GTID_EVENTS
    assert GTID_EVENTS <= PASSED_OVER  # they change no data themselves


def test_an_anonymous_gtid_names_no_transaction():
    data = event(ANONYMOUS_GTID_LOG_EVENT, b"\x01" + bytes(16) + u64(0) + gtid_body(0)[25:])
    assert _gtid(ANONYMOUS_GTID_LOG_EVENT, SERVER_ID, data) is None


# -- QUERY status variables -----------------------------------------------------------
# libbinlogevents statement_events.cpp: Query_event (thread id, seconds, database length,
# error code, status variables' length; the variables; the database, a zero, the text);
# sql/log_event.cc Query_log_event::write writes Q_FLAGS2_CODE, then Q_SQL_MODE_CODE, ...

MYSQL8_DEFAULT_MODE = (1 << 5 | 1 << 21 | 1 << 23 | 1 << 24 | 1 << 26 | 1 << 30)


def query_body(database: bytes, text: bytes, status: bytes) -> bytes:
    return (u32(42) + u32(0) + bytes([len(database)]) + u16(0) + u16(len(status)) + status
            + database + b"\0" + text)


def test_a_mysql8_ddl_query_with_every_usual_status_variable():
    status = (b"\x00" + u32(0)                              # Q_FLAGS2_CODE
              + b"\x01" + u64(MYSQL8_DEFAULT_MODE)          # Q_SQL_MODE_CODE
              + b"\x06" + b"\x03std"                        # Q_CATALOG_NZ_CODE
              + b"\x04" + u16(255) + u16(255) + u16(255)    # Q_CHARSET_CODE
              + b"\x0c" + b"\x01shop\x00"                   # Q_UPDATED_DB_NAMES
              + b"\x10" + u16(255)                          # Q_DEFAULT_COLLATION_FOR_UTF8MB4
              + b"\x0f" + u64(88))                          # Q_DDL_LOGGED_WITH_XID
    body = query_body(b"shop", b"ALTER TABLE t ADD COLUMN n INT", status)
    assert parse_query(body) == ("shop", b"ALTER TABLE t ADD COLUMN n INT", [
        "ONLY_FULL_GROUP_BY", "STRICT_TRANS_TABLES", "NO_ZERO_IN_DATE", "NO_ZERO_DATE",
        "ERROR_FOR_DIVISION_BY_ZERO", "NO_ENGINE_SUBSTITUTION"])


def test_a_query_whose_sql_mode_comes_first_or_not_at_all():
    first = parse_query(query_body(b"db", b"BEGIN", b"\x01" + u64(1 << 2 | 1 << 31)))
    assert first == ("db", b"BEGIN", ["ANSI_QUOTES", "PAD_CHAR_TO_FULL_LENGTH"])
    assert parse_query(query_body(b"", b"COMMIT", b"")) == ("", b"COMMIT", None)


# -- TRANSACTION_PAYLOAD --------------------------------------------------------------
# libbinlogevents codecs/binary.cpp: Transaction_payload::encode writes the compression
# type, the uncompressed size (when compressed), the payload size, each as (type, length,
# value) packed integers, then the end mark (0); the events inside carry no checksum.

def inner_transaction() -> list[bytes]:
    table = table_map_body(5, ("bank", "accounts"), bytes([LONG, VARCHAR]), u16(80))
    rows = rows_v2_body(5, 2, b"\x03", b"\x00" + u32(1) + b"\x03ann" + b"\x00" + u32(2)
                        + b"\x03bob")
    return [event(QUERY, query_body(b"bank", b"BEGIN", b"")), event(TABLE_MAP, table),
            event(WRITE_ROWS_V2, rows), event(XID, u64(77))]


def payload_body(payload: bytes, compression: int, uncompressed: int | None,
                 extra_fields: bytes = b"") -> bytes:
    fields = b"\x02" + packed(len(packed(compression))) + packed(compression) + extra_fields
    if uncompressed is not None:
        fields += b"\x03" + packed(len(packed(uncompressed))) + packed(uncompressed)
    fields += b"\x01" + packed(len(packed(len(payload)))) + packed(len(payload))
    return fields + b"\x00" + payload


def test_a_zstd_payload_gives_back_its_events_one_by_one():
    events = inner_transaction()
    raw = b"".join(events)
    body = payload_body(zstandard.ZstdCompressor().compress(raw), 0, len(raw))
    assert list(payload_events(body)) == events


def test_a_zstd_payload_streamed_without_its_size_in_the_frame():
    events = inner_transaction()
    raw = b"".join(events)
    compressor = zstandard.ZstdCompressor().compressobj()
    compressed = compressor.compress(raw) + compressor.flush()
    assert list(payload_events(payload_body(compressed, 0, len(raw)))) == events


def test_the_rows_inside_a_payload_decode_as_any():
    found = list(payload_events(payload_body(b"".join(inner_transaction()), 255, None)))
    assert [inner[4] for inner in found] == [QUERY, TABLE_MAP, WRITE_ROWS_V2, XID]
    table_id, mapped = table_map(found[1][HEADER:])
    event = rows_event(WRITE_ROWS_V2, found[2][HEADER:], column_readers(mapped, (False,) * 2))
    assert (table_id, event.rows) == (5, [((b"1", b"_binary'ann'"), None),
                                          ((b"2", b"_binary'bob'"), None)])
    assert TRANSACTION_PAYLOAD == 40


def test_a_payload_field_drkit_does_not_know_is_skipped_by_its_length():
    # codecs/binary.cpp: Transaction_payload::decode forwards over an unrecognised
    # field's length; a newer server may add fields whose value is no packed integer.
    events = inner_transaction()
    raw = b"".join(events)
    unknown = b"\x09" + packed(2) + b"\xfc\x00"
    body = payload_body(zstandard.ZstdCompressor().compress(raw), 0, len(raw), unknown)
    assert list(payload_events(body)) == events


def test_a_payload_cut_inside_an_event_is_refused():
    raw = b"".join(inner_transaction())
    with pytest.raises(ValueError, match="ends inside an event"):
        list(payload_events(payload_body(raw[:-3], 255, None)))


def test_an_unknown_compression_is_refused_by_number():
    with pytest.raises(ValueError, match="compression type 7"):
        list(payload_events(payload_body(b"", 7, 0)))
