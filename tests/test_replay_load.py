"""A big transaction's inserted rows replayed by LOAD DATA LOCAL from memory, on the sandbox
(MariaDB, local_infile ON as on Flexible Server): every kind of value arrives as the source
has it; a target without local_infile gets the same rows as INSERTs; rows the load would
skip or change go as the INSERT they are, which refuses or warns as it always did."""

from __future__ import annotations

import json

import pytest

from drkit.binlog.batch import LOAD_ROWS
from drkit.errors import BinlogArchiveError
from tests import dbtools
from tests.helpers import point_cli_at, run_cli

# Values whose text means something else as a number (ENUM members named by digits, SET,
# BIT, YEAR 0), generated columns, every byte and what looks like LOAD DATA's own syntax.
TABLE = """CREATE TABLE IF NOT EXISTS shop.load_kinds (
  id INT UNSIGNED PRIMARY KEY, small TINYINT, big BIGINT UNSIGNED, money DECIMAL(20,6),
  ratio DOUBLE, single FLOAT, note VARCHAR(300), body TEXT, raw BLOB, fixed CHAR(8),
  code BINARY(4), state ENUM('2','1','x'), flags SET('b','a','c'), bits BIT(10), day DATE,
  moment DATETIME(6), plain DATETIME, stamp TIMESTAMP(3) NULL, span TIME(2), born YEAR,
  doubled INT AS (small * 2) VIRTUAL, kept INT AS (small + 1) STORED)"""
COLUMNS = ("id, small, big, money, ratio, single, note, body, raw, fixed, code, state, flags, "
           "bits, day, moment, plain, stamp, span, born")
ROWS = LOAD_ROWS + 100
NOTES = ["it's \\ \t \n ü 한", "\\N", "NULL", "", "\\", "a\tb\\tc", "\r\n"]


def _row(n: int) -> tuple:
    if n % 13 == 0:  # NULL in every column that takes one
        return (n, *[None] * 19)
    return (n, n % 256 - 128, 2**64 - 1 - n, f"{'-' * (n % 2)}{n}.123456", n / 7,
            n % 1000 / 4, NOTES[n % len(NOTES)], "line\nbreak\r\n" * (n % 5),
            bytes(range(256)) * (n % 3) + b"'\\\x00\t\n", ["abc", "", "a\tb"][n % 3],
            [b"\x00", b"ab", b"\t\\\n\x00", b"abcd"][n % 4], ["2", "1", "x"][n % 3],
            ["a,c", "", "b"][n % 3], n % 1024,
            "0000-00-00" if n % 17 == 0 else f"2026-0{n % 9 + 1}-1{n % 9}",
            f"2026-11-27 14:03:{n % 60:02d}.{n:06d}", f"2026-11-27 14:{n % 60:02d}:09",
            "0000-00-00 00:00:00" if n % 5 == 0 else f"2026-11-27 14:03:09.{n % 1000:03d}",
            f"-{n % 800}:0{n % 6}:59.5", [0, 1901 + n % 254, 2155][n % 3])


def _rows(sandbox, role: str, database: str, columns: str = "*") -> list[tuple]:
    return dbtools.query(sandbox, role, f"SELECT {columns} FROM {database}.load_kinds "
                         "ORDER BY id")


def _archived_events(base: str) -> tuple[list, list]:
    """The archive's events before the base's snapshot, and those after it."""
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import load_manifest
    from drkit.binlog.archived import archived_events
    from drkit.binlog.records import Archive
    from drkit.config import load_settings

    settings = load_settings()
    snapshot = load_manifest(BackupStore.from_settings(settings), base).consistency[
        "binlog_snapshot"]
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    before, after = [], []
    for archived in archive.files():
        for position, kind, _, data in archived_events(archive, archived):
            at = (archived.file, position) < (snapshot["file"], snapshot["position"])
            (before if at else after).append((kind, data))
    return before, after


def _replay(sandbox, database: str, events: tuple[list, list]):
    """The events replayed into ``database`` as restore --until replays them."""
    return dbtools.replay(sandbox, {"shop": database}, *events)


@pytest.fixture
def copies(sandbox):
    """Drops, after the test, the source's table and the copies it replayed into."""
    yield
    dbtools.query(sandbox, "source", "DROP TABLE IF EXISTS shop.load_kinds")
    dbtools.as_root(sandbox, "target", "SET GLOBAL local_infile = 1")
    for database in ("pit", "pit_insert", "pit_refused", "pit_warned"):
        dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {database}")


def test_a_big_insert_loads_every_kind_of_value_as_the_source_has_it(sandbox, tmp_path,
                                                                      monkeypatch, copies):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    base = json.loads(run_cli("backup", "--json").stdout)["backup"]
    assert run_cli("verify", base).exit_code == 0
    dbtools.query(sandbox, "source", TABLE)
    with dbtools.connect(sandbox, "source", "shop") as connection, \
            connection.cursor() as cursor:
        cursor.execute("BEGIN")  # one transaction: a big one
        cursor.executemany(f"INSERT INTO load_kinds ({COLUMNS}) VALUES ({', '.join(['%s'] * 20)})",
                           [_row(n) for n in range(1, ROWS + 1)])
        cursor.execute("COMMIT")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    source = _rows(sandbox, "source", "shop")

    result = run_cli("restore", "--until", "latest", "--as", "pit", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    # Most by LOAD DATA: the first round trip is a small one (the target starts early), and
    # rows left after a load too few to load go as their INSERT.
    assert json.loads(result.stdout)["replay"]["loaded_rows"] >= LOAD_ROWS
    assert _rows(sandbox, "target", "pit") == source

    events = _archived_events(base)
    dbtools.as_root(sandbox, "target", "SET GLOBAL local_infile = 0")  # MySQL 8's default
    dbtools.query(sandbox, "target", "CREATE DATABASE pit_insert")
    assert _replay(sandbox, "pit_insert", events).loaded_rows == 0
    assert _rows(sandbox, "target", "pit_insert") == source
    dbtools.as_root(sandbox, "target", "SET GLOBAL local_infile = 1")

    # A row the target already has: LOCAL would skip it; the INSERT refuses it, as ever.
    dbtools.query(sandbox, "target", "CREATE DATABASE pit_refused")
    dbtools.query(sandbox, "target", TABLE.replace("shop.", "pit_refused."))
    dbtools.query(sandbox, "target", "INSERT INTO pit_refused.load_kinds (id) VALUES (77)")
    with pytest.raises(BinlogArchiveError, match="1062: Duplicate entry '77'"):
        _replay(sandbox, "pit_refused", events)
    assert _rows(sandbox, "target", "pit_refused", "id") == [(77,)]

    # A column narrower on the target: LOAD DATA and the INSERT both cut the values and
    # warn; the INSERT's rows are kept, as they always were (the replay's session is not
    # strict).
    dbtools.query(sandbox, "target", "CREATE DATABASE pit_warned")
    dbtools.query(sandbox, "target", TABLE.replace("shop.", "pit_warned.")
                  .replace("note VARCHAR(300)", "note VARCHAR(3)"))
    applier = _replay(sandbox, "pit_warned", events)
    assert (applier.loaded_rows, applier.rows) == (0, ROWS)
    assert _rows(sandbox, "target", "pit_warned", "id, note") == \
        _rows(sandbox, "source", "shop", "id, LEFT(note, 3)")
