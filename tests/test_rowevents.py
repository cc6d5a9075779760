"""Row-image values as SQL literals, from bytes laid out as MySQL's sources and manual give
them (``strings/decimal.c``, "Date and Time Data Type Representation" of the internals
manual); and the two threads the replay overlaps its work with."""

from __future__ import annotations

import struct
import sys
import threading
import time

import pytest

from drkit.binlog import rowevents as rv
from drkit.binlog.worker import ConnectionWorker
from drkit.stream.readahead import read_ahead


def _read(kind: int, meta: int, data: bytes, unsigned: bool = False) -> bytes:
    table = rv.TableMap("db", "t", (kind,), (meta,))
    (reader,) = rv.column_readers(table, (unsigned,))
    literal, end = reader(data, 0)
    assert end == len(data)
    return literal


def test_strings_keep_every_byte_and_double_only_the_quote():
    """Under NO_BACKSLASH_ESCAPES the quote is the one special byte (MySQL's own client,
    escape_quotes_for_mysql); NUL, backslash and invalid UTF-8 go as they are."""
    value = bytes(range(256)) + b"'); DROP TABLE t; --"
    literal = _read(rv.VARCHAR, 1000, len(value).to_bytes(2, "little") + value)
    assert literal == b"_binary'" + value.replace(b"'", b"''") + b"'"
    assert literal.count(b"\\") == value.count(b"\\")


def test_integers_follow_the_targets_signedness():
    assert _read(rv.LONGLONG, 0, b"\xff" * 8) == b"-1"
    assert _read(rv.LONGLONG, 0, b"\xff" * 8, unsigned=True) == b"18446744073709551615"
    assert _read(rv.INT24, 0, b"\xfe\xff\xff") == b"-2"
    assert _read(rv.INT24, 0, b"\xfe\xff\xff", unsigned=True) == b"16777214"
    assert _read(rv.TINY, 0, b"\x80") == b"-128"


def test_decimals_as_decimal_c_lays_them_out():
    # decimal.c's decimal2bin comment: 1234567890.1234 as DECIMAL(14,4) is 81 0D FB 38 D2 04
    # D2, and its negative has every bit inverted.
    meta = 14 << 8 | 4
    assert _read(rv.NEWDECIMAL, meta, bytes.fromhex("810DFB38D204D2")) == b"1234567890.1234"
    assert _read(rv.NEWDECIMAL, meta, bytes.fromhex("7EF204C72DFB2D")) == b"-1234567890.1234"
    assert _read(rv.NEWDECIMAL, 5 << 8 | 0, bytes.fromhex("800000")) == b"0"


def test_temporal_values_as_the_internals_manual_packs_them():
    # DATETIME2(6): 1 sign bit, 17 bits year*13+month, 5 day, 5 hour, 6 minute, 6 second,
    # then 3 bytes of microseconds, all big-endian.
    ymd = (2026 * 13 + 11) << 5 | 27
    packed = ((1 << 39) | ymd << 17 | 14 << 12 | 3 << 6 | 9).to_bytes(5, "big")
    assert _read(rv.DATETIME2, 6, packed + (123456).to_bytes(3, "big")) == \
        b"'2026-11-27 14:03:09.123456'"
    # TIME2(0) of -00:00:01: offset binary, 0x800000 is zero.
    assert _read(rv.TIME2, 0, (0x800000 - 1).to_bytes(3, "big")) == b"'-00:00:01.000000'"
    assert _read(rv.TIMESTAMP2, 0, (86400).to_bytes(4, "big")) == b"'1970-01-02 00:00:00.000000'"
    assert _read(rv.DATE, 0, (2026 << 9 | 11 << 5 | 27).to_bytes(3, "little")) == \
        b"'2026-11-27'"


def test_datetime_literals_kept_by_their_bytes_stay_each_values_own():
    """One reader per column keeps the literals of the times it read: many distinct times
    (past what it keeps), repeated and alternating, each read as its own, at every
    fraction width (none, 1, 2 and 3 bytes)."""
    def packed(second: int, fraction: int, fsp: int) -> bytes:
        ymd = (2026 * 13 + 11) << 5 | 27
        whole = ((1 << 39) | ymd << 17 | (second // 3600) << 12 | (second // 60 % 60) << 6 |
                 second % 60).to_bytes(5, "big")
        return whole + fraction.to_bytes((fsp + 1) // 2, "big")

    for fsp in (0, 2, 4, 6):
        (reader,) = rv.column_readers(rv.TableMap("db", "t", (rv.DATETIME2,), (fsp,)),
                                      (False,))
        width = (fsp + 1) // 2
        for second in [*range(200), 7, 150, 7, 150, 0]:
            fraction = (second * 37) % 10 ** (2 * width) if width else 0  # differs too
            data = packed(second, fraction, fsp)
            assert reader(data, 0) == (b"'2026-11-27 %02d:%02d:%02d.%06d'" % (
                second // 3600, second // 60 % 60, second % 60,
                fraction * 10 ** (6 - 2 * width)), len(data))
            data = packed(second, 0, fsp)  # the same second, another fraction
            assert reader(data, 0)[0].endswith(b".000000'")


def test_enum_and_set_go_as_their_numbers_and_old_formats_are_refused_by_name():
    assert _read(rv.STRING, rv.ENUM << 8 | 1, b"\x02") == b"2"
    with pytest.raises(rv.UnsupportedColumn, match="pre-5.6"):
        rv.column_readers(rv.TableMap("db", "t", (rv.TIME,), (0,)), (False,))
    # A JSON column: a 4-byte length, then the binary document (here the literal true).
    assert _read(rv.JSON, 4, (2).to_bytes(4, "little") + b"\x04\x01") == \
        b"JSON_EXTRACT(JSON_ARRAY(CAST('true' AS JSON)), '$[0]')"


def test_a_rows_event_with_nulls_and_an_update_image():
    """An UPDATE_ROWS v1 event of (INT, VARCHAR): before (1, NULL), after (1, 'x')."""
    table = rv.TableMap("db", "t", (rv.LONG, rv.VARCHAR), (0, 20))
    readers = rv.column_readers(table, (False, False))
    body = (bytes(6) + bytes(2) + b"\x02" + b"\x03" + b"\x03"
            + b"\x02" + (1).to_bytes(4, "little")
            + b"\x00" + (1).to_bytes(4, "little") + b"\x01x")
    event = rv.rows_event(24, body, readers)
    assert event.kind == "update"
    assert event.rows == [((b"1", b"NULL"), (b"1", b"_binary'x'"))]


class _Connection:
    """Enough of a pymysql connection for the worker: a cursor whose execute records."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.closed = False
        self.rowcount = 1

    def cursor(self) -> _Connection:
        return self

    def execute(self, sql: str) -> int:
        if sql == "fail":
            raise RuntimeError("refused")
        time.sleep(0.01)
        self.done.append(sql)
        return 1

    def nextset(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def test_the_worker_keeps_order_and_raises_the_first_error_at_the_next_call():
    connection = _Connection()
    worker = ConnectionWorker(connection)  # type: ignore[arg-type]
    for sql in ("a", "b", "fail", "c"):
        worker.submit(lambda cursor, sql=sql: cursor.execute(sql))
    with pytest.raises(RuntimeError, match="refused"):
        worker.call(lambda cursor: None)
    worker.close()
    assert connection.done == ["a", "b"] and connection.closed


def test_the_interpreter_hands_the_gil_on_sooner_while_a_worker_runs():
    before = sys.getswitchinterval()
    first = ConnectionWorker(_Connection())  # type: ignore[arg-type]
    second = ConnectionWorker(_Connection())  # type: ignore[arg-type]
    assert sys.getswitchinterval() == 0.001
    first.close()
    first.close()  # closed twice: counted once
    assert sys.getswitchinterval() == 0.001  # the other one runs on
    second.close()
    assert sys.getswitchinterval() == before


def test_a_batch_keeps_the_order_rows_and_statements_were_gathered_in():
    """Rows of a multi-row statement gathered before a statement (a savepoint marking where
    a transaction ends) go before it, in the one round trip."""
    from drkit.binlog.batch import RowsStatement, StatementBatch

    connection = _Connection()
    worker = ConnectionWorker(connection)  # type: ignore[arg-type]
    batch = StatementBatch(worker, limit=1 << 20)
    batch.multirow(RowsStatement(b"INSERT INTO t VALUES "), [b"(1)", b"(2)"])
    batch.add(b"SAVEPOINT s", expected=0)
    batch.multirow(RowsStatement(b"INSERT INTO t VALUES "), [b"(3)"])
    batch.flush()
    worker.call(lambda cursor: None)
    worker.close()
    assert connection.done == [b"INSERT INTO t VALUES (1), (2);\nSAVEPOINT s;\n"
                               b"INSERT INTO t VALUES (3)"]
    assert batch.gathered == len(b"(1)(2)SAVEPOINT s(3)")


def test_a_row_changed_again_or_past_a_statements_most_rows_starts_another_statement():
    """Rows joined by key in one statement change each row once: a row changed again goes
    in the next statement, after the first change; and no statement holds more than its
    ``most`` rows."""
    from drkit.binlog.batch import RowsStatement, StatementBatch

    connection = _Connection()
    worker = ConnectionWorker(connection)  # type: ignore[arg-type]
    batch = StatementBatch(worker, limit=1 << 20)
    update = RowsStatement(b"U ", b";", separator=b"+", found_each=1, most=3)
    batch.multirow(update, [b"1a", b"2a"], keys=[b"1", b"2"])
    batch.multirow(update, [b"3a", b"1b"], keys=[b"3", b"1"])  # 1 again
    batch.multirow(update, [b"4a", b"5a", b"6a", b"7a"], keys=[b"4", b"5", b"6", b"7"])
    batch.multirow(update, [b"8a", b"8b"], keys=[b"8", b"8"])
    batch.flush()
    worker.call(lambda cursor: None)
    worker.close()
    assert connection.done == [b"U 1a+2a+3a;;\nU 1b+4a+5a;;\nU 6a+7a+8a;;\nU 8b;"]


def test_read_ahead_keeps_order_raises_in_place_and_stops_its_reader():
    def source():
        yield from (b"1", b"2")
        raise OSError("network")

    seen = []
    with pytest.raises(OSError, match="network"):
        for item in read_ahead(source()):
            seen.append(item)
    assert seen == [b"1", b"2"]

    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b"x"

    before = threading.active_count()
    stream = read_ahead(endless(), depth=2)
    assert next(stream) == b"x"
    stream.close()  # the caller stops early: the reader ends and holds no more
    assert threading.active_count() == before  # its thread is gone: it can read no more
    assert len(produced) <= 4  # and it never read more than its depth ahead


def test_log_status_coordinates_as_mysql_8_shows_them():
    # MySQL 8.0 reference manual, "The log_status Table": LOCAL holds the binary log's file,
    # position and GTID set, read at one instant.
    from drkit.mysql.snapshotlock import log_status_coordinates

    local = ('{"gtid_executed": "5ad9cb8e-2092-11e7-ac95-08002718d305:1-5", '
             '"binary_log_file": "binlog.000003", "binary_log_position": 1033}')
    assert log_status_coordinates(local) == {
        "file": "binlog.000003", "position": 1033,
        "gtid": "5ad9cb8e-2092-11e7-ac95-08002718d305:1-5"}


# MySQL 8's binary JSON, laid out by hand as sql-common/json_binary.h specifies it.
def test_a_json_object_with_inlined_and_offset_values():
    from drkit.binlog.jsonbinary import json_expression

    # {"a": 1, "b": "x'y"}: count, size, two key entries (offset, length), two value
    # entries (type, inlined int16 / offset of the string), the keys, the string.
    body = ((2).to_bytes(2, "little") + (24).to_bytes(2, "little")
            + (18).to_bytes(2, "little") + (1).to_bytes(2, "little")
            + (19).to_bytes(2, "little") + (1).to_bytes(2, "little")
            + b"\x05" + (1).to_bytes(2, "little") + b"\x0c" + (20).to_bytes(2, "little")
            + b"ab" + b"\x03x'y")
    assert json_expression(b"\x00" + body) == \
        b"JSON_OBJECT(_utf8mb4'a', 1, _utf8mb4'b', _utf8mb4'x''y')"


def test_json_keeps_the_types_json_text_would_lose():
    from drkit.binlog.jsonbinary import json_expression

    decimal = b"\x0e\x04" + bytes.fromhex("810DFB38D204D2")  # DECIMAL(14,4) 1234567890.1234
    ymd = (2026 * 13 + 11) << 5 | 27
    packed = ((ymd << 17 | 14 << 12 | 3 << 6 | 9) << 24 | 123456).to_bytes(8, "little")
    # A large array: [1.0, 18446744073709551615, null, int32 -7 inlined, DECIMAL, DATETIME].
    entries, payload = [], b""
    header = 4 + 4 + 6 * 5
    for kind, data in ((0x0b, struct.pack("<d", 1.0)), (0x0a, (2**64 - 1).to_bytes(8, "little")),
                       (0x0f, b"\xf6" + bytes([len(decimal)]) + decimal),
                       (0x0f, b"\x0c\x08" + packed)):
        entries.append(bytes([kind]) + (header + len(payload)).to_bytes(4, "little"))
        payload += data
    entries[2:2] = [b"\x04" + (0).to_bytes(4, "little"),
                    b"\x07" + (-7).to_bytes(4, "little", signed=True)]
    body = (6).to_bytes(4, "little") + (header + len(payload)).to_bytes(4, "little")
    assert json_expression(b"\x03" + body + b"".join(entries) + payload) == (
        b"JSON_ARRAY(1.0e0, CAST(18446744073709551615 AS UNSIGNED), CAST('null' AS JSON), -7, "
        b"CAST('1234567890.1234' AS DECIMAL(14, 4)), "
        b"CAST('2026-11-27 14:03:09.123456' AS DATETIME(6)))")


def test_a_json_scalar_alone_and_a_long_string_length():
    from drkit.binlog.jsonbinary import json_expression

    text = "é" * 100  # 200 bytes: the length takes two bytes, 7 bits each
    assert json_expression(b"\x0c\xc8\x01" + text.encode()) == \
        b"JSON_EXTRACT(JSON_ARRAY(_utf8mb4'" + text.encode() + b"'), '$[0]')"
    with pytest.raises(rv.UnsupportedColumn, match="field type 7"):  # a TIMESTAMP inside
        json_expression(b"\x0f\x07\x08" + bytes(8))


def test_a_compressed_transaction_yields_its_events_one_by_one():
    """MySQL 8's TRANSACTION_PAYLOAD (binlog_transaction_compression), laid out as
    libbinlogevents' codecs/binary.cpp writes it: (type, length, value) fields as packed
    integers (compression type, uncompressed size, payload size), an end mark, then the
    zstd frame of the transaction's events, which carry no checksum."""
    import zstandard

    from drkit.binlog.events import payload_events

    def event(kind: int, body: bytes) -> bytes:
        return (bytes(4) + bytes([kind]) + bytes(4) + (19 + len(body)).to_bytes(4, "little")
                + bytes(6) + body)

    inner = [event(2, bytes(13) + b"\x00" + b"BEGIN"), event(16, (7).to_bytes(8, "little"))]
    raw = b"".join(inner)
    frame = zstandard.ZstdCompressor().compress(raw)
    body = (bytes([2, 1, 0]) + bytes([3, 1, len(raw)]) + bytes([1, 1, len(frame)])
            + bytes([0]) + frame)
    assert list(payload_events(body)) == inner
    # Uncompressed (type 255, a packed 0xFC 0xFF 0x00): only the payload size is written.
    plain = bytes([1, 1, len(raw)]) + bytes([0]) + raw
    assert list(payload_events(plain)) == inner
    with pytest.raises(ValueError, match="ends inside an event"):
        list(payload_events(bytes([1, 1, len(raw) - 3]) + bytes([0]) + raw[:-3]))


def test_binary_values_get_back_the_zero_bytes_the_image_leaves_out():
    # Field_string::pack leaves out a BINARY(n) value's trailing 0x00 bytes; the target
    # stores them, so a WHERE on the value must have them.
    table = rv.TableMap("db", "t", (rv.STRING,), (rv.STRING << 8 | 4,))
    (reader,) = rv.column_readers(table, (False,), (4,))
    assert reader(b"\x02ab", 0) == (b"_binary'ab\x00\x00'", 3)
