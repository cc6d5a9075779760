"""Proving a restore: the target compared with the backup's manifest.

The restored databases are dumped again with the same client and options and scanned the
way the backup was scanned, so each table's row count and content digest must come out
equal (order-free for tables without a row order), every table's and object's CREATE text
must match (:mod:`drkit.stream.schema`), and the views, routines, triggers and events must
be the same sets. Every difference is listed, per object.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from dataclasses import asdict, dataclass, field

from drkit.errors import DumpFailedError
from drkit.manifest import Manifest, TableEntry
from drkit.mysql import dump, inventory
from drkit.mysql.connection import Server, connect
from drkit.stream.dumpscan import DumpScanner, TableContent
from drkit.stream.lexer import LexError
from drkit.stream.rewrite import innodb_engines
from drkit.stream.schema import as_placeholder


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
    schema_checked: int = 0  # CREATE texts compared (tables, views, routines, ...)
    # per table, under the backup's name: {"table", "rows", "rows_match", "digest_match"}
    tables: list[dict] = field(default_factory=list)
    backup: str = ""  # the backup proven against, by its blob name

    def as_dict(self) -> dict:
        data = asdict(self)
        data["proof_seconds"] = data.pop("seconds")
        return {"ok": data.pop("ok"), "backup": data.pop("backup"), **data}


def scan_databases(server: Server, databases: list[str]) -> DumpScanner:
    """A fresh dump of ``databases`` on ``server``, scanned (tables, rows, schema)."""
    scanner = DumpScanner()
    # MySQL 8.0.30+'s client can leave out the invisible key the server generated.
    extra = tuple(o for o in (_SKIP_GIPK,) if dump.dump_client().supports(o))
    chunks = dump.dump_chunks(server, databases, "for the proof", extra)
    try:
        with contextlib.closing(chunks):
            for chunk in chunks:
                scanner.feed(chunk)
        scanner.close()
    except LexError as error:
        raise DumpFailedError(f"The {server.role} server's dump of {', '.join(databases)} "
                              f"cannot be read for the proof: {error}.") from None
    if not scanner.complete:
        raise DumpFailedError(f"Dumping {', '.join(databases)} from the {server.role} server "
                              "for the proof ended without mysqldump's completion trailer.")
    return scanner


def prove(manifest: Manifest, server: Server, rename: dict[str, str] | None = None,
          azure: bool = False) -> ProofResult:
    """Compare ``server``'s copy of the backup's databases (renamed by ``rename``; with
    ``azure``, restored with the Azure rewrites, which put every table on InnoDB)."""
    rename = rename or {}
    clock = time.monotonic()
    databases = [rename.get(db, db) for db in manifest.databases]

    def target_name(qualified: str) -> str:
        database, _, rest = qualified.partition(".")
        return f"{rename.get(database, database)}.{rest}"

    scanner = scan_databases(server, databases)
    with contextlib.closing(connect(server)) as connection:
        actual_objects = inventory.stored_objects(connection, databases)
        folds = _folds_names(connection)
    # Under lower_case_table_names=1 (Flexible Server's) the target keeps database, table
    # and view names in lower case: both sides are compared folded.
    names = _FoldedNames(manifest, folds)
    actual_tables = {names.table(f"{db}.{table}"): c for (db, table), c in
                     scanner.tables.items()}
    expected_tables = {names.table(target_name(t)): e for t, e in manifest.tables.items()}
    expected_schema = {}
    for key, text in manifest.definitions.items():  # "table db.t" -> its CREATE text
        kind, _, name = key.partition(" ")
        expected_schema[names.definition_key(kind, target_name(name))] = names.text(
            _as_innodb(text) if azure and kind == "table" else text)
    actual_schema = {}
    originals = {new: old for old, new in rename.items() if old != new}
    for key, text in scanner.definitions.items():
        kind, _, name = key.partition(" ")
        database = name.partition(".")[0]
        if database in originals:  # a body naming the original database is the same body
            text = as_placeholder(text, originals[database])
        actual_schema[names.definition_key(kind, name)] = names.text(text)
    expected_schema, actual_schema = _without_added_gipk(expected_schema, actual_schema)
    # Differences are named as the backup names them, not as the target folded them.
    shown = {names.table(target_name(t)): target_name(t) for t in manifest.tables}
    shown |= {names.object(kind, target_name(n)): target_name(n)
              for kind, listed in manifest.objects.items() for n in listed}
    differences = [
        *_table_differences(expected_tables, actual_tables),
        *_object_differences({k: {names.object(k, target_name(n)) for n in v} for k, v in
                              manifest.objects.items()},
                             {k: [names.object(k, n) for n in v]
                              for k, v in actual_objects.items()}),
        *(_schema_differences(expected_schema, actual_schema)
          if manifest.definitions else []),
    ]
    for difference in differences:
        difference.name = shown.get(difference.name, difference.name)
    per_table = [_table_row(table, entry, actual_tables.get(names.table(target_name(table))))
                 for table, entry in sorted(manifest.tables.items())]  # the backup's names
    return ProofResult(
        ok=not differences,
        tables_checked=len(expected_tables),
        rows_checked=sum(e.rows for e in expected_tables.values()),
        objects_checked=sum(len(v) for v in manifest.objects.values()),
        seconds=round(time.monotonic() - clock, 3),
        differences=differences,
        schema_checked=len(expected_schema),
        tables=per_table,
        backup=manifest.name,
    )


_SKIP_GIPK = "--skip-generated-invisible-primary-key"
_IDENTIFIER = re.compile(r"`((?:[^`]|``)+)`")
# MySQL 8.0.30+ with sql_generate_invisible_primary_key=ON (Flexible Server's default) adds
# to a keyless table (MySQL manual, "Generated Invisible Primary Keys"):
#   `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */,
#   PRIMARY KEY (`my_row_id`)
_GIPK_LINE = re.compile(r"^\s*(?:`my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT"
                        r"(?: /\*!80023 INVISIBLE \*/| INVISIBLE)|PRIMARY KEY \(`my_row_id`\))"
                        r",?\n", re.M)


def _folds_names(connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@lower_case_table_names")
        return int(cursor.fetchone()[0]) == 1


class _FoldedNames:
    """Names as the target keeps them: database, table and view names in lower case under
    lower_case_table_names=1; routines, triggers and events keep their case."""

    def __init__(self, manifest: Manifest, folds: bool) -> None:
        self.folds = folds
        # Every table and view name of the backup, to fold where a CREATE text names one.
        self._folded = {n.split(".", 1)[1].lower() for n in manifest.tables} | {
            n.split(".", 1)[1].lower() for n in manifest.objects.get("views", [])}

    def table(self, qualified: str) -> str:
        return qualified.lower() if self.folds else qualified

    def object(self, kind: str, qualified: str) -> str:
        if not self.folds:
            return qualified
        database, _, name = qualified.partition(".")
        return f"{database.lower()}.{name.lower() if kind == 'views' else name}"

    def definition_key(self, kind: str, qualified: str) -> str:
        folded = self.table(qualified) if kind == "table" else self.object(kind + "s", qualified)
        return f"{kind} {folded}"

    def text(self, text: str) -> str:
        if not self.folds:
            return text
        return _IDENTIFIER.sub(lambda m: m.group(0).lower()
                               if m.group(1).lower() in self._folded else m.group(0), text)


def _without_added_gipk(expected: dict[str, str],
                        actual: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The target's tables without an invisible ``my_row_id`` key the backup did not have."""
    cleaned = {}
    for key, text in actual.items():
        if key.startswith("table ") and "`my_row_id`" in text and \
                "`my_row_id`" not in expected.get(key, ""):
            text = _GIPK_LINE.sub("", text)
            text = re.sub(r",\n\)", "\n)", text)  # the line before the key lost its comma
        cleaned[key] = text
    return expected, cleaned


def _table_row(name: str, expected: TableEntry, found: TableContent | None) -> dict:
    """A table's line of the proof: its rows, and whether the count and content match."""
    order_free = expected.unordered_digest is not None
    digest = None if found is None else (
        found.unordered_digest if order_free else found.digest)
    return {"table": name, "rows": expected.rows,
            "rows_match": found is not None and found.rows == expected.rows,
            "digest_match": digest == (expected.unordered_digest if order_free
                                       else expected.sha256)}


def _table_differences(expected_tables: dict[str, TableEntry],
                       actual_tables: dict[str, TableContent]) -> list[Difference]:
    differences = []
    for table in sorted(set(expected_tables) | set(actual_tables)):
        expected, content = expected_tables.get(table), actual_tables.get(table)
        # A table without a row order is compared order-free: the re-dump may list its
        # rows in another order than the backup did.
        order_free = expected is not None and expected.unordered_digest is not None
        wanted = None if expected is None else (
            expected.rows, expected.unordered_digest if order_free else expected.sha256)
        found = None if content is None else (
            content.rows, content.unordered_digest if order_free else content.digest)
        if wanted != found:
            differences.append(Difference("table", table, _describe(wanted), _describe(found)))
    return differences


def _object_differences(expected: dict[str, set[str]],
                        actual: dict[str, list[str]]) -> list[Difference]:
    differences = []
    for kind, names in expected.items():
        found = set(actual.get(kind, []))
        differences += [Difference(kind.rstrip("s"), n, "present", "missing")
                        for n in sorted(names - found)]
        differences += [Difference(kind.rstrip("s"), n, "absent", "present")
                        for n in sorted(found - names)]
    return differences


def _schema_differences(expected: dict[str, str], actual: dict[str, str]) -> list[Difference]:
    """Per object, the first line where its CREATE text differs."""
    differences = []
    for key in sorted(set(expected) | set(actual)):
        kind, _, name = key.partition(" ")
        mine, theirs = expected.get(key), actual.get(key)
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            differences.append(Difference(f"{kind} definition", name,
                                          "present" if mine else "absent",
                                          "present" if theirs else "missing"))
            continue
        wanted, found = next(((a, b) for a, b in itertools.zip_longest(
            mine.splitlines(), theirs.splitlines(), fillvalue="(end)") if a != b))
        differences.append(Difference(f"{kind} definition", name, wanted.strip()[:200],
                                      found.strip()[:200]))
    return differences


def _as_innodb(text: str) -> str:
    return innodb_engines(text.encode("utf-8", "surrogateescape"))[0].decode(
        "utf-8", "surrogateescape")


def _describe(table: tuple[int, str | None] | None) -> str:
    if table is None:
        return "missing"
    rows, digest = table
    return f"{rows} rows, sha256 {(digest or 'none')[:12]}"
