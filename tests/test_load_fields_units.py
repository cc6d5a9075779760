"""Inserted rows as LOAD DATA text: every value type the replay reads means, read back as the
server reads a field (``sql_load.cc``: READ_INFO::read_field and unescape), what its SQL
literal means; the batch loads enough rows, last in its round trip, and sends them as the
INSERT they would have been where the target did not take every row cleanly; the
connection sends only what was offered."""

from __future__ import annotations

import gc
import struct
import weakref

import pytest
from pymysql.protocol import MysqlPacket

from drkit.binlog import rowevents as rv
from drkit.binlog.batch import LOAD_NAME, LOAD_ROWS, LoadStatement, RowsStatement, StatementBatch
from drkit.binlog.worker import ConnectionWorker
from drkit.mysql.localrows import LocalRowsConnection, _OfferedRowsResult

# MySQL's unescape(): the escape character then one of these is that byte; then anything
# else, itself. A field of \N alone is NULL.
_UNESCAPED = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"b": b"\b", b"0": b"\0", b"Z": b"\x1a"}


def _fields(line: bytes) -> list[bytes | None]:
    """A line of LOAD DATA text (tab, newline, backslash) as the server reads its fields."""
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    fields, field, raw, at = [], bytearray(), bytearray(), 0
    while at < len(line):
        byte = line[at:at + 1]
        if byte == b"\\":
            escaped = line[at + 1:at + 2]
            field += _UNESCAPED.get(escaped, escaped)
            raw += byte + escaped
            at += 2
            continue
        if byte in (b"\t", b"\n"):
            fields.append(None if raw == b"\\N" else bytes(field))
            field, raw = bytearray(), bytearray()
        else:
            field += byte
            raw += byte
        at += 1
    return fields


def _meaning(literal: bytes) -> bytes | None:
    """What a literal of the "sql" form stands for: a string's bytes, a time's text, a
    number's digits."""
    if literal == b"NULL":
        return None
    for prefix in (b"_binary'", b"'"):
        if literal.startswith(prefix):
            assert literal.endswith(b"'")
            return literal[len(prefix):-1].replace(b"''", b"'")
    return literal


def _both(kind: int, meta: int, data: bytes, unsigned: bool = False,
          binary: int = 0) -> tuple[bytes, bytes]:
    """A value read as a literal and as a field: by its reader, and within rows of an
    insert and of an update (the code rows_event writes out per table) alike."""
    table = rv.TableMap("db", "t", (kind,), (meta,))
    values = []
    for form, null in rv.NULLS.items():
        readers = rv.column_readers(table, (unsigned,), (binary,), form)
        (reader,) = readers
        # Each row's NULL bitmap as the server writes it: the bits past the column's set.
        inserted = rv.rows_event(23, bytes(8) + b"\x01\x01" + (b"\xfe" + data) * 2,
                                 readers, null)  # first: a reader's first read, kept after
        updated = rv.rows_event(24, bytes(8) + b"\x01\x01\x01" + (b"\xfe" + data) * 2,
                                readers, null)
        value, end = reader(data, 0)
        assert end == len(data)  # the whole value read
        assert inserted.rows == [((value,), None)] * 2 and updated.rows == [((value,),) * 2]
        values.append(value)
    return values[0], values[1]


def _datetime2(fsp: int, second: int, fraction: int) -> bytes:
    ymd = (2026 * 13 + 11) << 5 | 27
    return ((1 << 39) | ymd << 17 | 14 << 12 | 3 << 6 | second).to_bytes(5, "big") + \
        fraction.to_bytes((fsp + 1) // 2, "big")


STRINGS = [bytes(range(256)), b"", b"\\N", b"NULL", b"\\", b"a\tb\nc\\nd\\", b"'\"", b"\\\\t",
           "ü 한 \t".encode(), b"\x00\x00", b"x" * 70000]
VALUES = [
    *[(rv.VARCHAR, 1000, len(s).to_bytes(2, "little") + s) for s in STRINGS if len(s) < 1000],
    *[(rv.BLOB, 3, len(s).to_bytes(3, "little") + s) for s in STRINGS],
    (rv.STRING, rv.STRING << 8 | 40, b"\x03a\tb"),  # CHAR(40)
    (rv.TINY, 0, b"\x80"), (rv.SHORT, 0, b"\xff\x7f"), (rv.INT24, 0, b"\xfe\xff\xff"),
    (rv.LONG, 0, b"\x00\x00\x00\x80"), (rv.LONGLONG, 0, b"\xff" * 8),
    (rv.FLOAT, 4, struct.pack("<f", 0.1)), (rv.DOUBLE, 8, struct.pack("<d", 1 / 3)),
    (rv.DOUBLE, 8, struct.pack("<d", -1e-300)),
    (rv.NEWDECIMAL, 14 << 8 | 4, bytes.fromhex("7EF204C72DFB2D")),
    (rv.DATE, 0, (2026 << 9 | 11 << 5 | 27).to_bytes(3, "little")),
    *[(rv.DATETIME2, fsp, _datetime2(fsp, 9, 10 ** ((fsp + 1) // 2 * 2) - 1))
      for fsp in range(7)],
    (rv.TIMESTAMP2, 3, (86400).to_bytes(4, "big") + (999).to_bytes(2, "big")),
    (rv.TIMESTAMP2, 0, bytes(4)),  # the zero timestamp
    (rv.TIME2, 2, (0x800000 - (1 << 12 | 1)).to_bytes(3, "big") + b"\x32"),
    (rv.TIME2, 6, (0x800000000000 - 1).to_bytes(6, "big")),
    (rv.TIMESTAMP, 0, (86400).to_bytes(4, "little")),
    (rv.DATETIME, 0, (20261127140309).to_bytes(8, "little")),
    (rv.YEAR, 0, b"\x00"), (rv.YEAR, 0, b"\x7e"),
    (rv.BIT, 1 << 8 | 2, b"\x01\xff\xff"),  # BIT(17)
    (rv.STRING, rv.ENUM << 8 | 1, b"\x02"), (rv.STRING, rv.SET << 8 | 2, b"\x05\x00"),
]


@pytest.mark.parametrize(("kind", "meta", "data"), VALUES)
def test_a_field_reads_back_as_what_its_literal_means(kind, meta, data):
    literal, field = _both(kind, meta, data)
    assert _fields(field + b"\n") == [_meaning(literal)]


def test_a_row_without_nulls_is_read_by_the_written_out_code_whatever_its_unused_bits():
    """MySQL and MariaDB set the NULL bitmap's bits past the last column (pack_row: a row
    of three columns has 0xf8 there). Such a row holds no NULL: the code written out for
    the table reads it, not the reader that tests each column (which it was, for every
    row, until the unused bits were masked)."""
    table = rv.TableMap("db", "t", (rv.LONGLONG, rv.VARCHAR, rv.DATETIME2), (0, 2000, 0))
    read_rows = rv._rows_reader(rv.column_readers(table, (False,) * 3), None, rv.NULLS["sql"])

    def refused(data: bytes, at: int) -> None:
        raise AssertionError("read as a row with a NULL")

    read_rows.__globals__["image_with_nulls"] = refused  # this table's readers' alone
    row = b"\xf8" + (7).to_bytes(8, "little") + b"\x02\x00ab" + _datetime2(0, 9, 0)
    assert read_rows(row, 0, len(row)) == [((b"7", b"_binary'ab'",
                                             b"'2026-11-27 14:03:09.000000'"), None)]


def test_unsigned_and_binary_padded_fields_as_their_literals():
    assert _both(rv.LONGLONG, 0, b"\xff" * 8, unsigned=True) == (b"18446744073709551615",) * 2
    literal, field = _both(rv.STRING, rv.STRING << 8 | 4, b"\x02\t\\", binary=4)
    assert _fields(field + b"\n") == [_meaning(literal)] == [b"\t\\\x00\x00"]


def test_a_row_of_fields_keeps_its_nulls_and_every_byte_in_place():
    """An INSERT event of (VARCHAR, INT, BLOB): ('\\N', NULL, every byte), (NULL, 7, 'NULL')
    as lines: NULL only where the image has one, the strings that look like it as text."""
    table = rv.TableMap("db", "t", (rv.VARCHAR, rv.LONG, rv.BLOB), (20, 0, 2))
    every = bytes(range(256))
    rows = (b"\x02" + b"\x02\\N" + len(every).to_bytes(2, "little") + every +
            b"\x01" + (7).to_bytes(4, "little") + b"\x04\x00NULL")
    body = bytes(6) + bytes(2) + b"\x03" + b"\x07" + rows
    event = rv.rows_event(23, body, rv.column_readers(table, (False,) * 3, None, "load"),
                          rv.NULLS["load"])
    lines = [b"\t".join(image) + b"\n" for image, _ in event.rows]
    assert [_fields(line) for line in lines] == [[b"\\N", None, every], [None, b"7", b"NULL"]]


def test_values_whose_text_means_another_value_load_as_numbers_and_json_not_at_all():
    table = rv.TableMap("db", "t", (rv.BIT, rv.STRING, rv.STRING, rv.YEAR, rv.STRING, rv.LONG),
                        (1, rv.ENUM << 8 | 1, rv.SET << 8 | 1, 0, rv.STRING << 8 | 8, 0))
    assert rv.load_columns(table) == (True, True, True, True, False, False)
    for kind in (rv.JSON, rv.GEOMETRY):
        assert rv.load_columns(rv.TableMap("db", "t", (rv.LONG, kind), (0, 4))) is None


class _Cursor:
    """A replay connection and its cursor: records each round trip, answers each
    statement's count (the LOAD's ``loaded`` rows and ``warnings``), what was offered."""

    def __init__(self, loaded: int | None = None, warnings: int = 0) -> None:
        self.round_trips: list[bytes] = []
        self.offered: list[bytes] = []
        self.loaded, self.warnings = loaded, warnings
        self.rowcount, self.warning_count = 0, 0
        self._results: list[bytes] = []
        self.connection = self

    def cursor(self) -> _Cursor:
        return self

    def offer(self, name: str, data: bytes) -> None:
        assert name == LOAD_NAME
        self.offered.append(data)

    def withdraw(self) -> None:
        pass

    def execute(self, sql: bytes) -> None:
        self.round_trips.append(sql)
        self._results = sql.split(b";\n")
        self._answer()

    def nextset(self) -> None:
        self._results.pop(0)
        self._answer()

    def _answer(self) -> None:
        loads = self._results[0].startswith(b"LOAD DATA")
        self.rowcount = (self.loaded if self.loaded is not None else
                         len(self.offered[-1].splitlines())) if loads else 1
        self.warning_count = self.warnings if loads else 0

    def close(self) -> None:
        pass


def _batch_of(rows: int, cursor: _Cursor) -> StatementBatch:
    """``rows`` inserted rows gathered for loading, between two statements, sent."""
    worker = ConnectionWorker(cursor)  # type: ignore[arg-type]
    batch = StatementBatch(worker, limit=1 << 20)
    load = LoadStatement(b"LOAD DATA t", RowsStatement(b"INSERT INTO t VALUES "))
    batch.add(b"DELETE a", expected=0)
    for start in range(0, rows, 100):  # events of 100 rows
        numbers = range(start, min(rows, start + 100))
        batch.load(load, [b"%d\n" % n for n in numbers],
                   lambda numbers=numbers: [b"(%d)" % n for n in numbers])
    batch.add(b"SAVEPOINT s", expected=0)
    batch.flush()
    worker.call(lambda cursor: None)
    worker.close()
    return batch


def test_enough_rows_load_last_in_their_round_trip_after_a_savepoint():
    cursor = _Cursor()
    batch = _batch_of(LOAD_ROWS, cursor)
    assert cursor.round_trips == [b"DELETE a;\nSAVEPOINT drkit_load;\nLOAD DATA t",
                                  b"SAVEPOINT s"]
    assert cursor.offered == [b"".join(b"%d\n" % n for n in range(LOAD_ROWS))]
    assert (batch.loaded_rows, batch.unloaded_rows) == (LOAD_ROWS, 0)


def test_fewer_rows_go_as_the_insert_they_are():
    cursor = _Cursor()
    batch = _batch_of(LOAD_ROWS - 1, cursor)
    rows = b", ".join(b"(%d)" % n for n in range(LOAD_ROWS - 1))
    assert cursor.round_trips == [b"DELETE a;\nINSERT INTO t VALUES " + rows + b";\nSAVEPOINT s"]
    assert (cursor.offered, batch.loaded_rows) == ([], 0)


@pytest.mark.parametrize(("loaded", "warnings"), [(LOAD_ROWS - 1, 0), (LOAD_ROWS, 1)])
def test_rows_not_all_taken_cleanly_are_undone_and_sent_as_their_insert(loaded, warnings):
    """LOCAL makes the server skip what an INSERT refuses (a duplicate key: one row less)
    and warn of what it changes: the load is undone, the INSERT fails or warns as ever."""
    cursor = _Cursor(loaded, warnings)
    batch = _batch_of(LOAD_ROWS, cursor)
    rows = b", ".join(b"(%d)" % n for n in range(LOAD_ROWS))
    assert cursor.round_trips == [b"DELETE a;\nSAVEPOINT drkit_load;\nLOAD DATA t",
                                  b"ROLLBACK TO SAVEPOINT drkit_load",
                                  b"INSERT INTO t VALUES " + rows, b"SAVEPOINT s"]
    assert (batch.loaded_rows, batch.unloaded_rows) == (0, LOAD_ROWS)


class _Wire:
    """Enough of a LocalRowsConnection for its result: the packets written (their sequence
    numbers checked), the writes, an OK answer."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.writes = 0
        self._next_seq_id = 250  # wraps around within the second file
        self._offered: dict[bytes, bytes] = {}
        self.offer = lambda name, data: LocalRowsConnection.offer(self, name, data)

    def _write_bytes(self, data: bytes) -> None:
        self.writes += 1
        while data:
            size, sequence = int.from_bytes(data[:3], "little"), data[3]
            assert sequence == (250 + len(self.packets)) % 256
            self.packets.append(data[4:4 + size])
            data = data[4 + size:]

    def _read_packet(self) -> MysqlPacket:
        return MysqlPacket(b"\x00\x03\x00\x02\x00\x00\x00", "utf8")  # OK: 3 rows


def test_the_server_gets_what_was_offered_under_its_name_once_and_never_a_file():
    wire = _Wire()
    wire.offer(LOAD_NAME, b"1\n2\n3\n")
    result = _OfferedRowsResult(wire)  # type: ignore[arg-type]
    result._read_load_local_packet(MysqlPacket(b"\xfb" + LOAD_NAME.encode(), "utf8"))
    assert (wire.packets, result.affected_rows) == ([b"1\n2\n3\n", b""], 3)
    rows = b"x" * 40000 + b"\n"  # more than a packet: in several, as a client sends a file
    wire.offer(LOAD_NAME, rows)
    _OfferedRowsResult(wire)._read_load_local_packet(  # type: ignore[arg-type]
        MysqlPacket(b"\xfb" + LOAD_NAME.encode(), "utf8"))
    assert b"".join(wire.packets[2:]) == rows and len(wire.packets) == 2 + 3 + 1
    assert max(len(packet) for packet in wire.packets) == 16 * 1024
    assert wire.writes == 2  # a file's packets in one write (one wait for the GIL)
    assert wire._next_seq_id == (250 + len(wire.packets)) % 256

    for name in (LOAD_NAME, "/etc/passwd"):  # asked again, or for a file: nothing is sent
        wire.packets.clear()
        wire._next_seq_id = 250
        with pytest.raises(Exception, match="did not offer; nothing was sent"):
            _OfferedRowsResult(wire)._read_load_local_packet(  # type: ignore[arg-type]
                MysqlPacket(b"\xfb" + name.encode(), "utf8"))
        assert wire.packets == [b""]


def test_each_tables_rows_reader_is_written_once_however_many_tables_the_replay_touches(
        monkeypatch):
    """The code that reads a table's rows is written out (compiled) once per table's
    readers: a replay touching 300 tables round after round compiled it again for every
    event once they were more than a bounded cache's 256 (377 us an event, not 13)."""
    compiled = []

    def counted(*args, **kwargs):
        compiled.append(args[1])
        return compile(*args, **kwargs)

    monkeypatch.setattr(rv, "compile", counted, raising=False)
    tables = [rv.column_readers(rv.TableMap("db", f"t{n}", (rv.LONG, rv.VARCHAR), (0, 20)),
                                (False, False)) for n in range(300)]
    body = bytes(8) + b"\x02\x03" + b"\xfc" + (7).to_bytes(4, "little") + b"\x02ab"
    for _ in range(2):
        for readers in tables:
            assert rv.rows_event(23, body, readers).rows == [((b"7", b"_binary'ab'"), None)]
    assert len(compiled) == 300


def test_a_tables_readers_are_let_go_with_the_table():
    """Readers dropped (DDL makes a table's again) leave nothing behind: a DATETIME2
    reader's written-out code named the reader itself, so the weak entry that keeps that
    code held its own key and every DATETIME2 reader ever made stayed."""
    table = rv.TableMap("db", "t", (rv.LONG, rv.DATETIME2, rv.VARCHAR), (0, 0, 20))
    body = bytes(8) + b"\x03\x07" + b"\xf8" + (7).to_bytes(4, "little") + \
        _datetime2(0, 9, 0) + b"\x02ab"
    made = []
    for _ in range(20):
        readers = rv.column_readers(table, (False,) * 3)
        assert rv.rows_event(23, body, readers).rows[0][0][1] == b"'2026-11-27 14:03:09.000000'"
        made += [weakref.ref(reader) for reader in readers]
    del readers
    gc.collect()
    assert [ref for ref in made if ref() is not None] == []
