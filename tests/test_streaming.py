"""Unit tests of the stream stages: the dump scanner and the compressors."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess

import pytest
import zstandard

from drkit.stream.compression import (
    CODECS,
    CorruptStreamError,
    ParallelGzipCompressor,
    TruncatedStreamError,
)
from drkit.stream.dumpscan import BackgroundScan, DumpScanner

HEADER = b"""-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
/*!40101 SET NAMES utf8mb4 */;
USE `shop`;
DROP TABLE IF EXISTS `t`;
CREATE TABLE `t` (
  `id` int NOT NULL,
  `s` text
) ENGINE=InnoDB;
CREATE TABLE `empty` (`id` int);
"""
# MySQL's single-line INSERTs, with separators and quotes inside strings.
MYSQL_ROWS = [
    b"(1,'plain')",
    b"(2,'a),(b')",
    b"(3,'it\\'s),(x')",
    b"(4,'back\\\\'),(5,'slash\\\\\\'),(')",
    b"(6,NULL)",
    b"(7,0x00FF)",
]
TRAILER = b"\n-- Dump completed on 2026-11-26 10:00:00\n"


def mysql_dump(statements: list[list[bytes]]) -> bytes:
    inserts = b"".join(b"INSERT INTO `t` VALUES " + b",".join(rows) + b";\n"
                       for rows in statements)
    return HEADER + inserts + TRAILER


def scan(data: bytes, chunk: int) -> DumpScanner:
    scanner = DumpScanner()
    for start in range(0, len(data), chunk):
        scanner.feed(data[start:start + chunk])
    return scanner


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_mysql_format_rows_are_counted_outside_strings(chunk):
    # Row 4 ends in an escaped backslash, so its quote closes the string and "),(" follows.
    rows = MYSQL_ROWS[:3] + [b"(4,'back\\\\')", b"(5,'slash\\\\\\'),(')"] + MYSQL_ROWS[4:]
    scanner = scan(mysql_dump([rows[:4], rows[4:]]), chunk)
    assert scanner.tables[("shop", "t")].rows == 7
    assert scanner.tables[("shop", "empty")].rows == 0
    assert scanner.complete


def test_digest_ignores_statement_and_line_layout():
    rows = [b"(1,'a')", b"(2,'b\\nc')", b"(3,NULL)"]
    one_statement = scan(mysql_dump([rows]), 5)
    split = scan(mysql_dump([rows[:1], rows[1:]]), 5)
    mariadb = HEADER + b"INSERT INTO `t` VALUES\n" + b",\n".join(rows) + b";\n" + TRAILER
    per_line = scan(mariadb, 5)
    digests = {s.tables[("shop", "t")].digest for s in (one_statement, split, per_line)}
    assert len(digests) == 1
    assert per_line.tables[("shop", "t")].rows == 3
    changed = scan(mysql_dump([[rows[0], b"(2,'B\\nc')", rows[2]]]), 5)
    assert changed.tables[("shop", "t")].digest not in digests


def test_truncated_dump_is_not_complete():
    data = mysql_dump([MYSQL_ROWS])
    assert scan(data, 100).complete
    assert not scan(data[: len(data) - len(TRAILER)], 100).complete
    assert not scan(data[: len(HEADER) + 30], 100).complete


def test_parallel_gzip_is_one_stream_gunzip_reads():
    data = os.urandom(3_000_000) + b"compressible " * 1_000_000
    compressor = ParallelGzipCompressor(level=6, workers=2, member_size=1_000_000)
    pieces = []
    for start in range(0, len(data), 333_333):
        pieces += compressor.compress(data[start:start + 333_333])
    pieces += compressor.flush()
    blob = b"".join(pieces)
    assert len(pieces) > 10  # many members, in order
    assert gzip.decompress(blob) == data
    gunzipped = subprocess.run(["gunzip", "-c"], input=blob, capture_output=True, check=True)
    assert hashlib.sha256(gunzipped.stdout).digest() == hashlib.sha256(data).digest()


def test_empty_input_still_makes_a_valid_archive():
    for name in CODECS:
        compressor = CODECS[name].compressor(3)
        blob = b"".join(compressor.flush())
        if name == "gzip":
            assert gzip.decompress(blob) == b""
        else:
            assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == b""


def test_zstd_stream_round_trips():
    data = b"INSERT INTO t VALUES (1);\n" * 200_000
    compressor = CODECS["zstd"].compressor(3)
    blob = b"".join(compressor.compress(data[:1000]) + compressor.compress(data[1000:])
                    + compressor.flush())
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data


def test_background_scan_matches_the_scanner_and_reports_its_errors():
    data = mysql_dump([MYSQL_ROWS[:3], MYSQL_ROWS[3:]])
    scan = BackgroundScan(depth=2)
    for start in range(0, len(data), 50):
        scan.feed(data[start:start + 50])
    scanner = scan.finish()
    direct = scan_all(data)
    assert scan.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert scan.size == len(data)
    assert {k: (v.rows, v.digest) for k, v in scanner.tables.items()} == \
        {k: (v.rows, v.digest) for k, v in direct.tables.items()}

    failing = BackgroundScan(depth=1)
    failing.scanner.feed = lambda chunk: (_ for _ in ()).throw(ValueError("bad dump"))
    failing.feed(b"x")
    with pytest.raises(ValueError, match="bad dump"):
        for _ in range(10):  # the error surfaces on a later feed or at the finish
            failing.feed(b"y")
        failing.finish()


def scan_all(data: bytes) -> DumpScanner:
    return scan(data, len(data))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_decompression_streams_members_and_tells_cut_from_corrupt(codec):
    data = os.urandom(300_000) + b"a" * 20_000_000  # the tail inflates 1000-fold
    compressor = CODECS[codec].compressor(3)
    blob = b"".join(compressor.compress(data) + compressor.flush())
    pieces = list(CODECS[codec].decompress(blob[i:i + 65536] for i in range(0, len(blob), 65536)))
    assert b"".join(pieces) == data
    assert max(map(len, pieces)) <= 32 * 1024 * 1024  # bounded, however compressible
    with pytest.raises(TruncatedStreamError):
        b"".join(CODECS[codec].decompress([blob[: len(blob) - 7]]))
    damaged = bytearray(blob)
    damaged[len(damaged) // 3] ^= 0xFF
    with pytest.raises((CorruptStreamError, TruncatedStreamError)):
        b"".join(CODECS[codec].decompress([bytes(damaged)]))


def test_block_sizes_grow_so_a_2_tb_backup_fits_in_azures_50000_blocks():
    """Azure's limits (Put Block List): 50,000 blocks per blob, 4000 MiB per block."""
    from drkit.azure.blobstore import MAX_BLOCKS, blob_capacity, block_size_for

    base = 8 * 2**20  # backup.block_size_mib's default
    assert block_size_for(0, base) == block_size_for(9_999, base) == base
    assert block_size_for(10_000, base) == 2 * base
    assert block_size_for(MAX_BLOCKS - 1, base) == 16 * base
    assert blob_capacity(base) >= 2 * 10**12
    assert all(block_size_for(i, 1000 * 2**20) <= 4000 * 2**20 for i in range(0, MAX_BLOCKS,
                                                                                997))


@pytest.mark.parametrize(("code", "detail", "says"), [
    # Azure Storage's REST error codes; the clock-skew detail as the service words it.
    ("AuthenticationFailed", "Server failed to authenticate the request.\nAuthenticationError"
     "Detail: Request date header too old: 'Fri, 27 Nov 2026 01:00:00 GMT'", "clock"),
    ("AuthenticationFailed", "Server failed to authenticate the request. Make sure the value "
     "of Authorization header is formed correctly including the signature.", "key was rotated"),
    ("AuthorizationPermissionMismatch", "This request is not authorized to perform this "
     "operation using this permission.", "tags read/write"),
])
def test_clock_key_and_permission_failures_say_three_different_things(code, detail, says):
    from azure.core.exceptions import HttpResponseError

    from drkit.azure.blobstore import BackupStore

    class Container:
        container_name, url = "mysql-backups", "https://acct.blob.core.windows.net/x"

    error = HttpResponseError(message=detail)
    error.error_code = code
    found = BackupStore(Container(), "", "acct").error(error)
    assert found.exit_code == 13 and says in str(found)
