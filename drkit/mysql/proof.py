"""Proving a restore: the target compared with the backup's manifest.

The restored databases are dumped again with the same client and options and scanned the
way the backup was scanned, so each table's row count and content digest must come out
equal; the views, routines, triggers and events must be the same sets.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field

from drkit.errors import DumpFailedError
from drkit.manifest import Manifest
from drkit.mysql import dump, inventory
from drkit.mysql.connection import Server, connect, option_file
from drkit.stream.dumpscan import DumpScanner, TableContent
from drkit.stream.lexer import LexError


@dataclass
class Difference:
    kind: str  # table, view, routine, trigger, event
    name: str
    expected: str
    actual: str


@dataclass
class ProofResult:
    ok: bool
    tables_checked: int
    rows_checked: int
    objects_checked: int
    seconds: float
    differences: list[Difference] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def scan_databases(server: Server, databases: list[str]) -> dict[str, TableContent]:
    """``"db.table" -> content`` from a fresh dump of ``databases`` on ``server``."""
    client = dump.dump_client()
    scanner = DumpScanner()
    with option_file(server) as options:
        process = dump.DumpProcess(client.command(options, databases))
        try:
            for chunk in process.chunks():
                scanner.feed(chunk)
            scanner.close()
        except BaseException as error:
            process.stop()  # never leave mysqldump blocked on a pipe nobody reads
            if isinstance(error, LexError):
                raise DumpFailedError(f"The {server.role} server's dump of "
                                      f"{', '.join(databases)} cannot be read for the proof: "
                                      f"{error}.") from None
            raise
        code = process.wait()
    if code != 0 or not scanner.complete:
        raise DumpFailedError(f"Dumping {', '.join(databases)} from the {server.role} server "
                              f"for the proof failed ({process.stderr or code}).")
    return {f"{db}.{table}": content for (db, table), content in scanner.tables.items()}


def prove(manifest: Manifest, server: Server, rename: dict[str, str] | None = None) -> ProofResult:
    """Compare ``server``'s copy of the backup's databases (renamed by ``rename``)."""
    rename = rename or {}
    clock = time.monotonic()
    databases = [rename.get(db, db) for db in manifest.databases]

    def target_name(qualified: str) -> str:
        database, _, rest = qualified.partition(".")
        return f"{rename.get(database, database)}.{rest}"

    actual_tables = scan_databases(server, databases)
    with contextlib.closing(connect(server)) as connection:
        actual_objects = inventory.stored_objects(connection, databases)

    differences = []
    expected_tables = {target_name(t): e for t, e in manifest.tables.items()}
    for table in sorted(set(expected_tables) | set(actual_tables)):
        expected, content = expected_tables.get(table), actual_tables.get(table)
        # A table without a row order is compared order-free: the re-dump may list its
        # rows in another order than the backup did.
        order_free = expected is not None and expected.unordered_sha256 is not None
        wanted = None if expected is None else (
            expected.rows, expected.unordered_sha256 if order_free else expected.sha256)
        found = None if content is None else (
            content.rows, content.unordered_digest if order_free else content.digest)
        if wanted != found:
            differences.append(Difference("table", table, _describe(wanted), _describe(found)))
    for kind, names in manifest.objects.items():
        expected_set = {target_name(n) for n in names}
        actual_set = set(actual_objects.get(kind, []))
        for name in sorted(expected_set - actual_set):
            differences.append(Difference(kind.rstrip("s"), name, "present", "missing"))
        for name in sorted(actual_set - expected_set):
            differences.append(Difference(kind.rstrip("s"), name, "absent", "present"))
    return ProofResult(
        ok=not differences,
        tables_checked=len(expected_tables),
        rows_checked=sum(e.rows for e in expected_tables.values()),
        objects_checked=sum(len(v) for v in manifest.objects.values()),
        seconds=round(time.monotonic() - clock, 3),
        differences=differences,
    )


def _describe(table: tuple[int, str | None] | None) -> str:
    if table is None:
        return "missing"
    rows, digest = table
    return f"{rows} rows, sha256 {(digest or 'none')[:12]}"
