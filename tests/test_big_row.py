"""A row of 40 MB of binary data (one statement of 80 MB of hex SQL) backs up, verifies,
restores and proves through the CLI, each command in bounded memory; ``restore --check``
names a statement too big for the target's max_allowed_packet before anything is loaded."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests import dbtools
from tests.helpers import point_cli_at
from tests.zoo import MIB

DATABASE = "big_row"
ROW_BYTES = 40 * MIB
PEAK_RSS_LIMIT = 200 * MIB



@pytest.fixture(scope="module")
def big_row(sandbox):
    with contextlib.closing(dbtools.connect(sandbox, "source")) as connection, \
            connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute(f"CREATE TABLE {DATABASE}.blobs (id INT PRIMARY KEY, b LONGBLOB)")
        cursor.execute(f"INSERT INTO {DATABASE}.blobs VALUES (1, ''), (2, 'small')")
        piece = bytes(range(256)) * (4 * MIB // 256)  # every byte value, 0x00 and 0x0A too
        for _ in range(ROW_BYTES // len(piece)):
            cursor.execute(f"UPDATE {DATABASE}.blobs SET b = CONCAT(b, %s) WHERE id = 1",
                           (piece,))
    yield
    for role in ("source", "target"):
        dbtools.query(sandbox, role, f"DROP DATABASE IF EXISTS {DATABASE}")


def test_a_40_mb_row_round_trips_in_bounded_memory(sandbox, big_row, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_SOURCE__DATABASES", json.dumps([DATABASE]))
    peaks = {}
    code, out, peaks["backup"] = _run("backup")
    assert code == 0, out
    name = out.strip()
    for step, args in [("verify", ["verify", name]),
                       ("check", ["restore", name, "--check", "--json"]),
                       ("restore", ["restore", name, "--replace"]),
                       ("prove", ["prove", name])]:
        code, out, peaks[step] = _run(*args)
        assert code == 0, (step, out)
        if step == "check":
            report = json.loads(out)
            assert report["largest_statement_bytes"] > 2 * ROW_BYTES
            assert report["target_max_allowed_packet"] >= 512 * MIB
    assert dbtools.query(sandbox, "target", f"SELECT LENGTH(b), MD5(b) FROM {DATABASE}.blobs "
                         "WHERE id = 1") == dbtools.query(
        sandbox, "source", f"SELECT LENGTH(b), MD5(b) FROM {DATABASE}.blobs WHERE id = 1")
    print("peak RSS MiB", {step: peak // MIB for step, peak in peaks.items()})
    assert all(peak < PEAK_RSS_LIMIT for peak in peaks.values()), {
        step: f"{peak / MIB:.0f} MiB" for step, peak in peaks.items()}


@pytest.fixture
def backup_of_big_row(sandbox, big_row, tmp_path, monkeypatch) -> str:
    point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_SOURCE__DATABASES", json.dumps([DATABASE]))
    code, out, _ = _run("backup")
    assert code == 0, out
    return out.strip()


@contextlib.contextmanager
def target_packet_limit(sandbox, mib: int):
    """The target's max_allowed_packet lowered for the block (Azure's default after)."""
    dbtools.as_root(sandbox, "target", f"SET GLOBAL max_allowed_packet = {mib} * 1024 * 1024")
    try:
        yield
    finally:
        dbtools.as_root(sandbox, "target", "SET GLOBAL max_allowed_packet = 512 * 1024 * 1024")


def test_check_names_a_statement_too_big_for_the_target(sandbox, backup_of_big_row):
    with target_packet_limit(sandbox, 64):
        code, out, _ = _run("restore", backup_of_big_row, "--check")
    assert code == 37
    assert f"table {DATABASE}.blobs" in out and "max_allowed_packet of 64M" in out


# Linux carries a process's peak RSS across fork and exec (exec keeps the old address
# space's high-water mark), so a child of this big pytest process would report pytest's
# peak. A small launcher starts drkit and reports drkit's own.
_LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run(*args: str) -> tuple[int, str, int]:
    """``drkit ARGS`` in a process of its own: exit code, stdout (stderr after it when it
    failed), peak RSS in bytes (the largest process of the command, mysqldump included, as
    wait4 reports it)."""
    with tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile() as peak:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, peak.name,
             str(Path(sys.executable).parent / "drkit"), *args],
            stdout=subprocess.PIPE, stderr=stderr)
        output = process.stdout.read().decode()
        process.wait()
        if process.returncode:
            stderr.seek(0)
            output += stderr.read().decode()
        return process.returncode, output, int(Path(peak.name).read_text()) * 1024


@pytest.mark.parametrize("size", [2**24 - 3, 2**24 - 2, 2**24 - 1, 2**24, 2 * (2**24 - 1) - 1])
def test_a_huge_statement_goes_out_in_protocol_packets(sandbox, size):
    """Sizes around the 16 MiB packet boundary: a full packet needs an empty one after it."""
    from drkit.mysql.connection import query_without_copies

    prefix, suffix = b"SELECT LENGTH('", b"')"
    sql = prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
    assert len(sql) == size
    with contextlib.closing(dbtools.connect(sandbox, "target")) as connection:
        query_without_copies(connection, sql)
        assert connection._result.rows == ((size - len(prefix) - len(suffix),),)
        with connection.cursor() as cursor:  # the connection is in step afterwards
            cursor.execute("SELECT 1")
            assert cursor.fetchall() == ((1,),)


def test_a_restore_without_check_names_the_packet_limit(sandbox, backup_of_big_row):
    try:
        with target_packet_limit(sandbox, 16):
            code, out, _ = _run("restore", backup_of_big_row, "--as", "big_row_small_packet")
    finally:
        dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS big_row_small_packet")
    assert code == 36
    assert "is the target's max_allowed_packet smaller?" in out
