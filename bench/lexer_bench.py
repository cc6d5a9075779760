"""Throughput of the dump scanner (lexer, row counting, digests) on both INSERT layouts.

MariaDB's mysqldump puts each row on a line of its own; MySQL's writes extended INSERTs of
about 1 MB on one line, where rows are counted by pairing quotes. Both dumps hold the same
rows (text with quotes, backslashes and ``;`` inside strings, now and then a ``),(``,
numbers, NULLs, hex).
The scanner runs as in a backup: fed 1 MiB chunks. Not a test: MB/s of SQL, best of 3.

    .venv/bin/python bench/lexer_bench.py [--size 256MiB]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from drkit.stream.dumpscan import DumpScanner
from drkit.units import parse_size

HEADER = (b"USE `shop`;\nCREATE TABLE `orders` (\n  `id` int NOT NULL,\n  `note` text,\n"
          b"  `price` decimal(10,2) DEFAULT NULL,\n  `blob` blob,\n  PRIMARY KEY (`id`)\n"
          b") ENGINE=InnoDB;\n")
TRAILER = b"-- Dump completed on 2026-11-27  1:00:00\n"
WORDS = [b"plain", b"it\\'s", b"semi;colon", b"back\\\\slash", b"\xea\xb9\x80",
         b"\xf0\x9f\x98\x80", b"line\\nbreak", b"quote\\\"d"]


def rows(count: int) -> list[bytes]:
    rng = random.Random(7)
    out = []
    for number in range(count):
        note = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        if number % 100_000 == 0:  # now and then a row separator inside a string
            note += b" a),(b"
        price = b"NULL" if number % 17 == 0 else f"{rng.random() * 1000:.2f}".encode()
        out.append(b"(%d,'%s',%s,0x%s)" % (number, note, price,
                                            rng.randbytes(rng.randint(0, 24)).hex().encode()))
    return out


def mariadb_layout(rows_: list[bytes], per_statement: int = 5000) -> bytes:
    statements = [b"INSERT INTO `orders` VALUES\n" + b",\n".join(rows_[i:i + per_statement])
                  + b";\n" for i in range(0, len(rows_), per_statement)]
    return HEADER + b"".join(statements) + TRAILER


def mysql_layout(rows_: list[bytes], per_statement: int = 5000) -> bytes:
    statements = [b"INSERT INTO `orders` VALUES " + b",".join(rows_[i:i + per_statement])
                  + b";\n" for i in range(0, len(rows_), per_statement)]
    return HEADER + b"".join(statements) + TRAILER


def scan_seconds(dump: bytes, chunk: int = 1 << 20) -> tuple[float, int]:
    scanner = DumpScanner()
    view = memoryview(dump)
    start = time.perf_counter()
    for at in range(0, len(dump), chunk):
        scanner.feed(bytes(view[at:at + chunk]))
    scanner.close()
    seconds = time.perf_counter() - start
    assert scanner.complete
    return seconds, scanner.tables[("shop", "orders")].rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MiB", help="SQL per layout (about)")
    args = parser.parse_args()
    sample = rows(10_000)
    per_row = sum(map(len, sample)) / len(sample) + 1
    all_rows = rows(int(parse_size(args.size) / per_row))
    results = {}
    for name, dump in (("mariadb (row per line)", mariadb_layout(all_rows)),
                       ("mysql (single-line INSERTs)", mysql_layout(all_rows))):
        best, counted = min(scan_seconds(dump) for _ in range(3))
        assert counted == len(all_rows), (name, counted, len(all_rows))
        results[name] = {"mb": round(len(dump) / 1e6, 1), "seconds": round(best, 3),
                         "mb_per_s": round(len(dump) / 1e6 / best, 1)}
        print(f"{name:<30}{len(dump) / 1e6:8.1f} MB {best:7.2f} s "
              f"{len(dump) / 1e6 / best:8.1f} MB/s", flush=True)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "lexer.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
