"""The binlog decoders on binary logs the sandbox's MariaDB wrote.

tests/fixtures/binlog/capture.py ran its statements on the sandbox's source (MariaDB
10.11.19, ROW format, CRC32 checksums) and kept the files they went to; these tests decode
them with drkit's decoders and compare the values with what those statements wrote. The
expected values are worked out from the statements, not copied from the decoder's output.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.binlog.events import (
    ACCOUNTS,
    DATABASE_DDL,
    FORMAT_DESCRIPTION,
    PASSED_OVER,
    QUERY,
    STATEMENT_DML,
    UNAPPLIABLE,
    XID,
    parse_query,
    statement_kind,
)
from drkit.binlog.protocol import MAGIC, MARIADB_GTID_EVENT, ROTATE_EVENT, _gtid
from drkit.binlog.rowevents import (
    DELETE_ROWS,
    HEADER,
    TABLE_MAP,
    UPDATE_ROWS,
    WRITE_ROWS,
    RowsEvent,
    TableMap,
    column_readers,
    rows_event,
    table_map,
)

FIXTURES = Path(__file__).parent / "fixtures" / "binlog"
ROWS_FILE, COMPRESSED_FILE = "mariadb-rows.bin", "mariadb-compressed.bin"
ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID_LIST = 160, 161, 163
STMT_END = 0x01  # a rows event's flag (after its table id): the statement's last event
CHECKSUM = 4
# What the target tells the replay and the binlog does not: which integers are unsigned
# (MariaDB's table map leaves it out) and each BINARY(n)'s n (the image drops its zeros).
TARGET_UNSIGNED = {"ints": (False, False, True, False, True, False, True, False, True, False,
                            True)}
TARGET_BINARY = {"strings": (0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0)}


@dataclass(frozen=True)
class StoredEvent:
    position: int
    type: int
    data: bytes  # as the file holds it: header, body, checksum

    @property
    def body(self) -> bytes:
        return self.data[HEADER:-CHECKSUM]



@functools.cache
def stored_events(name: str) -> tuple[StoredEvent, ...]:
    raw = (FIXTURES / name).read_bytes()
    assert raw[:4] == MAGIC
    events, position = [], 4
    while position < len(raw):
        size = int.from_bytes(raw[position + 9:position + 13], "little")
        events.append(StoredEvent(position, raw[position + 4], raw[position:position + size]))
        position += size
    return tuple(events)


def gtid_of(event: StoredEvent) -> str | None:
    return _gtid(event.type, int.from_bytes(event.data[5:9], "little"), event.data)


@functools.cache
def transactions(name: str) -> dict[str, tuple[StoredEvent, ...]]:
    """Each GTID's events after its GTID event, in the file's order."""
    groups: dict[str, list[StoredEvent]] = {}
    current: list[StoredEvent] | None = None
    for event in stored_events(name):
        if event.type == MARIADB_GTID_EVENT:
            current = groups.setdefault(gtid_of(event), [])
        elif current is not None and event.type not in (BINLOG_CHECKPOINT, ROTATE_EVENT):
            current.append(event)
    return {gtid: tuple(events) for gtid, events in groups.items()}


def decoded(events: tuple[StoredEvent, ...]) -> list[tuple[TableMap, RowsEvent]]:
    """The rows events among ``events``, each with the table map it refers to."""
    maps: dict[int, TableMap] = {}
    found = []
    for event in events:
        if event.type == TABLE_MAP:
            table_id, mapped = table_map(event.body)
            maps[table_id] = mapped
        elif event.type in WRITE_ROWS | UPDATE_ROWS | DELETE_ROWS:
            mapped = maps[int.from_bytes(event.body[:6], "little")]
            readers = column_readers(
                mapped, TARGET_UNSIGNED.get(mapped.table, (False,) * len(mapped.types)),
                TARGET_BINARY.get(mapped.table))
            found.append((mapped, rows_event(event.type, event.body, readers)))
    return found


def rows_of(table: str) -> list[RowsEvent]:
    return [event for mapped, event in decoded(stored_events(ROWS_FILE))
            if mapped.table == table]


def images(table: str, which: int = 0) -> list[tuple[bytes, ...]]:
    """The first images of the ``which``-th rows event of ``table``."""
    return [image for image, _ in rows_of(table)[which].rows]


def text(value: str, charset: str = "utf-8") -> bytes:
    """The literal drkit writes for a string column holding ``value``."""
    return binary(value.encode(charset))


def binary(value: bytes) -> bytes:
    return b"_binary'" + value.replace(b"'", b"''") + b"'"


def queries(name: str = ROWS_FILE) -> list[tuple[str, bytes, list[str] | None]]:
    return [parse_query(event.body) for event in stored_events(name) if event.type == QUERY]


def test_events_follow_the_magic_each_pointing_at_the_next():
    events = stored_events(ROWS_FILE)
    for event in events[:-1]:
        next_position = int.from_bytes(event.data[13:17], "little")
        assert next_position == event.position + len(event.data)
    assert events[0].type == FORMAT_DESCRIPTION and events[0].position == 4
    assert events[-1].type == ROTATE_EVENT
    assert events[-1].body[8:] == b"binlog.000003"  # the next file, after its position


def test_every_event_ends_with_the_crc32_of_its_bytes():
    for name in (ROWS_FILE, COMPRESSED_FILE):
        for event in stored_events(name):
            assert zlib.crc32(event.data[:-CHECKSUM]) == \
                int.from_bytes(event.data[-CHECKSUM:], "little"), event.position


def test_the_format_description_names_the_server_and_announces_crc32():
    body = stored_events(ROWS_FILE)[0].data[HEADER:]
    assert struct.unpack_from("<H", body)[0] == 4  # binlog version
    assert body[2:52].rstrip(b"\0") == b"10.11.19-MariaDB-0+deb12u1-log"
    # The byte the replay reads for the checksum (1: CRC32), just before the CRC itself.
    assert stored_events(ROWS_FILE)[0].data[-5] == 1


def test_the_event_types_are_those_the_replay_applies_or_passes_over():
    types = {event.type for event in stored_events(ROWS_FILE)}
    assert types == {FORMAT_DESCRIPTION, GTID_LIST, BINLOG_CHECKPOINT, MARIADB_GTID_EVENT,
                     QUERY, ANNOTATE_ROWS, TABLE_MAP, XID, ROTATE_EVENT, 23, 24, 25}
    assert {23, 24, 25} <= WRITE_ROWS | UPDATE_ROWS | DELETE_ROWS  # MariaDB writes v1
    assert not types & set(UNAPPLIABLE)
    assert {GTID_LIST, BINLOG_CHECKPOINT, MARIADB_GTID_EVENT, ANNOTATE_ROWS,
            ROTATE_EVENT} <= PASSED_OVER


def test_gtids_read_as_domain_server_sequence_in_the_order_written():
    gtids = list(transactions(ROWS_FILE))
    assert gtids == [f"0-1-{n}" for n in range(42, 69)] + ["7-1-1"] + \
        [f"0-1-{n}" for n in range(69, 75)]


def test_the_gtid_list_holds_the_state_before_the_file():
    # MariaDB's Gtid_list_log_event: a count (low 28 bits), then domain, server, sequence.
    body = next(e for e in stored_events(ROWS_FILE) if e.type == GTID_LIST).body
    count = int.from_bytes(body[:4], "little") & 0x0FFFFFFF
    assert count == 1
    assert struct.unpack_from("<IIQ", body, 4) == (0, 1, 41)


def test_a_ddl_statement_comes_with_its_database_and_sql_mode():
    database, statement, modes = queries()[1]
    assert database == "decoders"
    assert statement.startswith(b"CREATE TABLE ints (id INT PRIMARY KEY, t TINYINT, ")
    assert modes == ["STRICT_TRANS_TABLES", "NO_ENGINE_SUBSTITUTION"]
    assert statement_kind(statement) == "CREATE TABLE"


def test_create_database_is_a_database_ddl():
    database, statement, _ = queries()[0]
    assert (database, statement) == ("decoders", b"CREATE DATABASE decoders CHARACTER SET utf8mb4")
    assert DATABASE_DDL.match(statement)


def test_ddl_under_ansi_quotes_keeps_its_text_and_mode():
    quoted = [q for q in queries() if b'"quoted"' in q[1]]
    assert quoted == [("decoders",
                       "CREATE TABLE \"quoted\" (id INT PRIMARY KEY) COMMENT 'ünïcode'".encode(),
                       ["ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "STRICT_ALL_TABLES"])]


def test_no_query_of_a_row_format_log_reads_as_statement_dml_or_an_account_change():
    for _, statement, _ in queries():
        assert not STATEMENT_DML.match(statement), statement
        assert not ACCOUNTS.match(statement), statement


def test_a_transactional_insert_is_gtid_annotate_map_rows_xid():
    events = transactions(ROWS_FILE)["0-1-44"]
    assert [e.type for e in events] == [ANNOTATE_ROWS, TABLE_MAP, 23, XID]
    assert int.from_bytes(events[-1].body, "little") == 73  # the XID's number


def test_one_transaction_over_two_tables_has_one_xid_at_its_end():
    events = transactions(ROWS_FILE)["0-1-68"]
    assert [e.type for e in events] == [ANNOTATE_ROWS, TABLE_MAP, 23, ANNOTATE_ROWS, TABLE_MAP,
                                        24, XID]
    assert [(m.table, r.kind) for m, r in decoded(events)] == [("accounts", "insert"),
                                                               ("ints", "update")]


def test_a_myisam_insert_ends_with_a_commit_query_not_an_xid():
    events = transactions(ROWS_FILE)["0-1-70"]
    assert [e.type for e in events] == [ANNOTATE_ROWS, TABLE_MAP, 23, QUERY]
    assert parse_query(events[-1].body)[:2] == ("decoders", b"COMMIT")


def test_annotate_rows_holds_the_statement_the_rows_came_from():
    events = transactions(ROWS_FILE)["0-1-64"]
    assert events[0].type == ANNOTATE_ROWS
    assert events[0].body == b"UPDATE accounts SET balance = balance + 10 WHERE id IN (1, 2)"


def test_the_table_map_of_every_integer_width():
    tables = {m.table: m for m, _ in decoded(stored_events(ROWS_FILE))}
    assert tables["ints"] == TableMap("decoders", "ints", (3, 1, 1, 2, 2, 9, 9, 3, 3, 8, 8),
                                      (0,) * 11)


def test_the_table_map_gives_decimal_precision_and_scale():
    mapped = next(m for m, _ in decoded(stored_events(ROWS_FILE)) if m.table == "decimals")
    assert [(meta >> 8, meta & 0xFF) for meta in mapped.meta[1:]] == \
        [(5, 2), (10, 0), (18, 9), (30, 15), (65, 30), (4, 4)]


def test_the_table_map_of_strings_blobs_and_temporal_types():
    tables = {m.table: m for m, _ in decoded(stored_events(ROWS_FILE))}
    strings = tables["strings"]
    # CHAR is STRING (254) with its real type and length in the meta; VARCHAR's meta is its
    # length in bytes (utf8mb4: 4 a character; utf16: 4 a character); blobs their prefix.
    assert strings.types == (3, 254, 254, 15, 15, 15, 15, 254, 15, 252, 252, 252, 252, 252)
    assert strings.meta[3:7] == (1200, 50, 80, 20)
    assert strings.meta[9:] == (1, 2, 3, 4, 2)
    temporal = tables["temporal"]
    # DATE, TIME2, DATETIME2, TIMESTAMP2 (their meta: fractional digits), YEAR.
    assert temporal.types == (3, 10, 19, 19, 19, 18, 18, 18, 17, 17, 17, 13)
    assert temporal.meta == (0, 0, 0, 3, 6, 0, 2, 6, 0, 4, 6, 0)


def test_a_table_map_with_full_optional_metadata_reads_as_one_without():
    maps = [e for e in stored_events(ROWS_FILE) if e.type == TABLE_MAP
            and table_map(e.body)[1].table == "ints"]
    plain, full = maps[0], maps[-1]
    assert len(full.body) > len(plain.body)  # signedness, names, primary key follow
    assert table_map(full.body) == table_map(plain.body)
    assert images("ints", 2) == [(b"4", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9",
                                  b"10")]


def test_integers_of_every_width_at_their_extremes():
    assert images("ints") == [
        (b"1", b"-128", b"0", b"-32768", b"0", b"-8388608", b"0", b"-2147483648", b"0",
         b"-9223372036854775808", b"0"),
        (b"2", b"127", b"255", b"32767", b"65535", b"8388607", b"16777215", b"2147483647",
         b"4294967295", b"9223372036854775807", b"18446744073709551615"),
        (b"3", b"-1", b"1", b"-2", b"2", b"-3", b"3", b"-4", b"4", b"-5", b"5")]


def test_unsigned_maxima_read_as_minus_one_without_the_targets_word():
    _, mapping, rows, _ = transactions(ROWS_FILE)["0-1-44"]
    mapped = table_map(mapping.body)[1]
    signed = rows_event(rows.type, rows.body, column_readers(mapped, (False,) * 11))
    assert signed.rows[1][0][1::2] == (b"127", b"32767", b"8388607", b"2147483647",
                                       b"9223372036854775807")
    assert signed.rows[1][0][2::2] == (b"-1",) * 5


def test_decimals_of_several_precisions():
    assert images("decimals") == [
        (b"1", b"123.45", b"1234567890", b"123456789.123456789",
         b"123456789012345.123456789012345",
         b"12345678901234567890123456789012345.123456789012345678901234567890", b"0.9999"),
        (b"2", b"-999.99", b"-1", b"-0.000000001", b"-1.500000000000000",
         b"-0.000000000000000000000000000001", b"-0.0001"),
        (b"3", b"0.00", b"0", b"0.000000000", b"0.000000000000000",
         b"0.000000000000000000000000000000", b"0.0000")]


def test_float_and_double_as_the_nearest_value_they_hold():
    def as_float(value: float) -> float:
        return struct.unpack("<f", struct.pack("<f", value))[0]

    assert images("floats") == [
        (b"1", b"1.5", b"-0.1"),
        (b"2", repr(as_float(-3.4e38)).encode(), b"1.7976931348623157e+308"),
        (b"3", repr(as_float(0.1)).encode(), b"2.2250738585072014e-308")]


def test_dates_times_and_datetimes_with_fractions():
    rows = images("temporal")
    assert [row[1:8] for row in rows] == [
        (b"'2026-11-27'", b"'838:59:59.000000'", b"'12:34:56.789000'", b"'-00:00:01.500000'",
         b"'1000-01-01 00:00:00.000000'", b"'9999-12-31 23:59:59.990000'",
         b"'2026-11-27 14:03:09.123456'"),
        (b"'1000-01-01'", b"'-838:59:59.000000'", b"'-12:34:56.789000'",
         b"'00:00:00.000001'", b"'2026-02-28 23:59:59.000000'",
         b"'2026-02-28 00:00:00.010000'", b"'2000-01-01 00:00:00.000000'"),
        (b"'9999-12-31'", b"'00:00:00.000000'", b"'-00:00:00.001000'",
         b"'-838:59:59.000000'", b"'2026-11-27 00:00:00.000000'",
         b"'2026-11-27 12:00:00.500000'", b"'2026-11-27 23:59:59.999999'")]


def test_timestamps_in_utc_with_fractions_and_years():
    rows = images("temporal")
    assert [row[8:] for row in rows] == [
        (b"'1970-01-01 00:00:01.000000'", b"'2038-01-19 03:14:07.999900'",
         b"'2026-11-27 14:03:09.000001'", b"2155"),
        (b"'2026-11-27 14:03:09.000000'", b"'2026-11-27 14:03:09.000100'",
         b"'2026-11-27 14:03:09.999999'", b"1901"),
        (b"NULL", b"NULL", b"NULL", b"2026")]


def test_zero_dates_and_the_zero_year():
    assert images("temporal", 1) == [(
        b"4", b"'0000-00-00'", b"'00:00:00.000000'", b"'00:00:00.000000'",
        b"'00:00:00.000000'", b"'0000-00-00 00:00:00.000000'",
        b"'0000-00-00 00:00:00.000000'", b"'0000-00-00 00:00:00.000000'",
        b"'0000-00-00 00:00:00'", b"'0000-00-00 00:00:00'", b"'0000-00-00 00:00:00'", b"0")]


def test_strings_in_multibyte_character_sets_keep_their_bytes():
    (row, _) = images("strings")
    assert row == (
        b"1", text("ab"),  # CHAR: the server drops trailing spaces
        text("Grüße 😀"), text("naïve 'quote' \\ back"), text("café", "latin-1"),
        text("Ωmega", "utf-16-be"), text("ｶﾀｶﾅ漢字", "shift_jis"),
        binary(b"ab" + bytes(6)), binary(b"\x00\xff'"), binary(b""), binary(b"\x00\x01"),
        text("x" * 300), text("long"), text("日本語のテキスト"))


def test_a_char_of_more_than_255_bytes_and_empty_values():
    (_, row) = images("strings")
    assert row == (
        b"2", text(""), text("é" * 100), text("€" * 300), text(""), text(""), text(""),
        binary(bytes(7) + b"\x01"), binary(b"'"), binary(b"\xff"), binary(bytes(3)), text(""),
        text("y" * 300), text(""))


def test_binary_columns_lose_their_trailing_zeros_without_their_length():
    _, mapping, rows, _ = transactions(ROWS_FILE)["0-1-53"]
    mapped = table_map(mapping.body)[1]
    unpadded = rows_event(rows.type, rows.body, column_readers(mapped, (False,) * 14))
    assert unpadded.rows[0][0][7] == binary(b"ab")
    assert images("strings")[0][7] == binary(b"ab" + bytes(6))


def test_enums_and_sets_as_their_numbers_of_one_to_three_bytes():
    assert images("enums") == [(b"1", b"2", b"5", b"%d" % (1 | 1 << 19), b"300"),
                               (b"2", b"1", b"0", b"2", b"1")]


def test_bits_of_one_to_sixty_four():
    assert images("bits") == [(b"1", b"1", b"165", b"2049", b"18446744073709551615"),
                              (b"2", b"0", b"0", b"0", b"1")]


def test_mariadb_json_travels_as_its_text():
    assert images("docs") == [(b"1", text('{"a": [1, 2.5, "ü"], "b": null}'))]


def test_nulls_over_a_two_byte_bitmap():
    assert images("nullable") == [
        (b"1", b"NULL", text("x"), b"NULL", b"1.25", b"NULL", b"5", b"NULL", b"2.5"),
        (b"2",) + (b"NULL",) * 8]


def test_an_update_holds_before_and_after_images_of_each_row():
    event = rows_of("accounts")[1]
    assert (event.kind, event.present, event.after_present) == ("update", (0, 1, 2), (0, 1, 2))
    assert event.rows == [
        ((b"1", text("ann"), b"100.00"), (b"1", text("ann"), b"110.00")),
        ((b"2", text("bob"), b"50.50"), (b"2", text("bob"), b"60.50"))]


def test_a_delete_holds_the_whole_row():
    event = rows_of("accounts")[2]
    assert (event.kind, event.rows) == ("delete", [((b"3", text("cy"), b"0.00"), None)])


def test_a_minimal_update_holds_the_key_before_and_the_change_after():
    event = rows_of("accounts")[3]
    assert (event.kind, event.present, event.after_present) == ("update", (0,), (1,))
    assert event.rows == [((b"2",), (text("bobby"),))]


def test_a_minimal_delete_holds_the_key_alone():
    event = rows_of("accounts")[4]
    assert (event.kind, event.present, event.rows) == ("delete", (0,), [((b"1",), None)])


def test_a_transaction_of_another_domain_decodes_alike():
    ((mapped, event),) = decoded(transactions(ROWS_FILE)["7-1-1"])
    assert (mapped.table, event.rows) == ("accounts", [((b"11", text("eve"), b"2.00"), None)])


def test_a_statement_of_many_rows_spans_several_events_the_last_marked():
    events = [e for e in transactions(ROWS_FILE)["0-1-73"] if e.type in WRITE_ROWS]
    assert len(events) == 4
    assert [int.from_bytes(e.body[6:8], "little") & STMT_END for e in events] == [0, 0, 0, STMT_END]
    rows = [image for _, event in decoded(transactions(ROWS_FILE)["0-1-73"])
            for image, _ in event.rows]
    assert rows == [(b"%d" % n, text(f"row {n}")) for n in range(1, 2001)]


def test_compressed_events_are_refused_by_name():
    types = [e.type for e in stored_events(COMPRESSED_FILE)]
    # MariaDB's QUERY_COMPRESSED and WRITE/UPDATE/DELETE_ROWS_COMPRESSED (v1) events.
    assert [t for t in types if t in UNAPPLIABLE] == [166, 167, 168, 165]
    assert {UNAPPLIABLE[t] for t in (165, 166, 167, 168)} == {
        "compressed events (log_bin_compress=ON)"}


@pytest.mark.parametrize("gtid", ["0-1-75", "0-1-76", "0-1-77"])
def test_the_table_map_before_a_compressed_rows_event_reads_as_any(gtid):
    events = transactions(COMPRESSED_FILE)[gtid]
    mapped = table_map(next(e for e in events if e.type == TABLE_MAP).body)[1]
    assert mapped == TableMap("decoders", "accounts", (3, 15, 246), (0, 80, 10 << 8 | 2))
