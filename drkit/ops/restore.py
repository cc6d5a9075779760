"""Restoring a backup into the target (Azure Flexible Server), streamed, then proven.

    Azure Blob ─► sha256 ─► gunzip/unzstd ─► statements ─► Azure rewrites ─► N connections

No local disk. The target database must not exist or be empty unless ``replace`` is given,
in which case it is dropped first. The checksum and the dump's trailer are checked as the
stream ends; the proof then compares the loaded data with the manifest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pymysql

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    ParameterError,
    ProofFailedError,
    RestoreBlockedError,
    TargetNotEmptyError,
    TruncatedBackupError,
    UnrestorableBackupError,
)
from drkit.manifest import Manifest
from drkit.mysql.connection import Server, connect, target_server
from drkit.mysql.loader import ParallelLoader
from drkit.mysql.proof import ProofResult, prove
from drkit.ops.readback import OUTCOMES, CountingReader, read_back
from drkit.ops.verify import verify_backup
from drkit.stream.dumpscan import ends_with_trailer, keep_tail
from drkit.stream.lexer import LexError, SqlLexer
from drkit.stream.rewrite import SYSTEM_SCHEMAS, Rewriter
from drkit.stream.statement import Statement
from drkit.units import human_size


@dataclass
class RestoreResult:
    backup: str
    target: str
    databases: dict[str, str]  # name in the backup -> name on the target
    compressed_bytes: int
    sql_bytes: int
    statements: int
    seconds: float  # download + load: the restore part of the RTO
    throughput_mib_s: float
    rewrites: dict[str, int] = field(default_factory=dict)
    proof: ProofResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    backup: str
    databases: dict[str, str]
    statements: int
    rewrites: dict[str, int]
    blockers: list[str]
    largest_statement_bytes: int = 0
    target_max_allowed_packet: int | None = None  # None: no target configured to ask

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _renames(manifest: Manifest, rename_to: str | None) -> dict[str, str]:
    system = sorted(d for d in {*manifest.databases, rename_to or ""}
                    if d.lower() in SYSTEM_SCHEMAS)
    if system:
        raise RestoreBlockedError(
            f"Backup {manifest.name} would restore into the system schema "
            f"{', '.join(system)}; nothing was restored and nothing was changed.",
            "Restore application databases only, under another name with --as.")
    if rename_to is None:
        return {db: db for db in manifest.databases}
    if not 1 <= len(rename_to) <= 64 or "\x00" in rename_to or rename_to.endswith(" "):
        raise ParameterError(f"--as {rename_to!r} is not a database name.",
                             "Give 1 to 64 characters, without a trailing space.")
    if len(manifest.databases) != 1:
        raise RestoreBlockedError(
            f"Backup {manifest.name} holds {len(manifest.databases)} databases "
            f"({', '.join(manifest.databases)}); --as renames a single database.",
            "Restore it under the original names, or back the databases up separately.")
    return {manifest.databases[0]: rename_to}


def azure_rewrites(settings: Settings, azure: bool | None = None) -> bool:
    """Whether a restore rewrites for Azure: as asked, else as ``restore.azure_compat`` says."""
    if azure is not None:
        return azure
    mode = settings.restore.azure_compat
    return mode == "on" or (mode == "auto" and settings.target is not None
                            and settings.target.kind == "azure")


def _rewriter(settings: Settings, renames: dict[str, str], azure: bool | None,
              definer: str | None) -> Rewriter:
    return Rewriter(azure=azure_rewrites(settings, azure),
                    definer=definer or settings.restore.definer,
                    admin_user=settings.target.user if settings.target else "",
                    rename={old: new for old, new in renames.items() if old != new})


def _statements(store: BackupStore, manifest: Manifest, rewriter: Rewriter,
                reader: CountingReader, counters: dict[str, int]) -> Iterator[Statement]:
    """The backup's statements, rewritten; checks checksum and trailer as the stream ends."""
    lexer = SqlLexer()
    tail = b""
    try:
        with read_back(manifest, reader, lambda: ends_with_trailer(tail), _PARTIAL) as pieces:
            for piece in pieces:
                counters["sql_bytes"] += len(piece)
                tail = keep_tail(tail, piece)
                for statement in lexer.feed(piece):
                    counters["statements"] += 1
                    if (rewritten := rewriter.rewrite(statement)) is not None:
                        yield rewritten
        for statement in lexer.close():
            counters["statements"] += 1
            if (rewritten := rewriter.rewrite(statement)) is not None:
                yield rewritten
    except LexError as error:
        raise UnrestorableBackupError(f"Backup {manifest.name} cannot be restored: {error}.",
                                      _PARTIAL) from None


_PARTIAL = ("Anything loaded so far is incomplete; restore another backup with --replace "
            "(drkit list shows them).")


def check_backup(settings: Settings, spec: str, *, rename_to: str | None = None,
                 azure: bool | None = None, definer: str | None = None) -> CheckResult:
    """What a restore would rewrite, and what would block it; loads nothing."""
    store = BackupStore.from_settings(settings)
    entry = Catalog(store).select(spec)
    manifest = load_manifest(store, entry.name)
    renames = _renames(manifest, rename_to)
    rewriter = _rewriter(settings, renames, azure, definer)
    counters = {"sql_bytes": 0, "statements": 0}
    largest, size = None, 0  # the statement itself is not kept: it may be huge
    for statement in _statements(store, manifest, rewriter,
                                 CountingReader(store.download(entry.name)), counters):
        if len(statement.sql) > size:
            largest, size = replace(statement, sql=b""), len(statement.sql)
    blockers = list(rewriter.blockers)
    limit = _max_allowed_packet(settings) if settings.target else None
    if largest is not None and limit is not None and size + 1 > limit:
        where = f"table {largest.database}.{largest.table}" if largest.table else \
            f"a {largest.kind} statement"
        blockers.append(f"the largest statement ({where}, {largest.where}) is "
                        f"{human_size(size)}, more than the target's "
                        f"max_allowed_packet of {human_size(limit)}: raise it on the server")
    return CheckResult(backup=entry.name, databases=renames, statements=counters["statements"],
                       rewrites=dict(rewriter.changes), blockers=blockers,
                       largest_statement_bytes=size,
                       target_max_allowed_packet=limit)


def _max_allowed_packet(settings: Settings) -> int:
    with contextlib.closing(connect(target_server(settings))) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        return int(cursor.fetchone()[0])


def restore_backup(settings: Settings, spec: str, env: Environment | None = None, *,
                   target_address: str | None = None, rename_to: str | None = None,
                   replace: bool = False, azure: bool | None = None,
                   definer: str | None = None, prove_after: bool = True) -> RestoreResult:
    """Restore the backup ``spec`` names into the target; prove it unless told not to."""
    env = env or Environment()
    store = BackupStore.from_settings(settings)
    server = target_server(settings, target_address)
    entry = Catalog(store).select(spec)
    manifest = load_manifest(store, entry.name)
    _refuse_known_bad(entry, manifest)
    renames = _renames(manifest, rename_to)
    rewriter = _rewriter(settings, renames, azure, definer)
    log_event("restore.start", f"Restore start: {entry.name} -> {server.address} "
              f"({', '.join(f'{a} as {b}' if a != b else a for a, b in renames.items())})",
              backup=entry.name, target=server.address)
    counts = objects_in(server, list(renames.values()))
    if replace and any(counts.values()) and entry.verified != "ok":
        # Data is about to be dropped: know first that the backup is whole and restorable
        # (a backup verified as it is now was read once already).
        log_event("restore.verify_first", f"Verifying {entry.name} before replacing data")
        verify_backup(store, entry, env)
    _prepare_target(server, counts, replace)

    clock = time.monotonic()
    counters = {"sql_bytes": 0, "statements": 0}
    loader = ParallelLoader(server, settings.restore.workers)
    try:
        with env.progress(f"restore {entry.name}", entry.size) as progress:
            reader = CountingReader(store.download(entry.name), progress)
            for statement in _statements(store, manifest, rewriter, reader, counters):
                loader.execute(statement)
            loader.finish()
    finally:
        loader.close()
    seconds = time.monotonic() - clock
    result = RestoreResult(
        backup=entry.name, target=server.address, databases=renames,
        compressed_bytes=reader.size, sql_bytes=counters["sql_bytes"],
        statements=counters["statements"], seconds=round(seconds, 3),
        throughput_mib_s=round(counters["sql_bytes"] / 2**20 / max(seconds, 1e-6), 1),
        rewrites=dict(rewriter.changes))
    log_event("restore.loaded", f"Restored {entry.name} in {seconds:.1f} s "
              f"({result.throughput_mib_s} MiB/s of SQL)", **result.as_dict())
    if prove_after:
        result.proof = prove_restore(manifest, server, renames, rewriter.azure)
    return result


def prove_restore(manifest: Manifest, server: Server, renames: dict[str, str],
                  azure: bool) -> ProofResult:
    proof = prove(manifest, server, renames, azure)
    if not proof.ok:
        shown = "; ".join(f"{d.kind} {d.name}: expected {d.expected}, found {d.actual}"
                          for d in proof.differences[:5])
        error = ProofFailedError(
            f"The restore on {server.address} differs from backup {manifest.name} in "
            f"{len(proof.differences)} place(s): {shown}.",
            "Do not put this copy in service; restore again with --replace, or another backup.",
            proof=proof)
        raise error
    log_event("restore.proven", f"Proof passed: {proof.tables_checked} tables, "
              f"{proof.rows_checked} rows and {proof.objects_checked} objects match the manifest",
              **proof.as_dict())
    return proof


def prove_backup(settings: Settings, spec: str, *, target_address: str | None = None,
                 rename_to: str | None = None) -> ProofResult:
    store = BackupStore.from_settings(settings)
    manifest = load_manifest(store, Catalog(store).select(spec).name)
    return prove_restore(manifest, target_server(settings, target_address),
                         _renames(manifest, rename_to), azure_rewrites(settings))


def objects_in(server: Server, databases: list[str]) -> dict[str, int | None]:
    """Tables, views, routines and events per database; None where the database is absent."""
    counts: dict[str, int | None] = {}
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        for database in databases:
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s)"
                " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)"
                " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s),"
                " (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s)",
                (database,) * 4)
            objects, exists = cursor.fetchone()
            counts[database] = int(objects) if exists else None
    return counts


def _refuse_known_bad(entry: BackupEntry, manifest: Manifest) -> None:
    """A backup verify found bad, or whose size is not its manifest's, is never loaded."""
    failed = {outcome: error for error, outcome in OUTCOMES.items()}.get(entry.verified or "")
    if failed is not None:
        raise failed(f"Backup {entry.name} failed verification ({entry.verified}, "
                     f"{entry.verified_at}); it was not restored and nothing was changed.",
                     "Restore another backup (drkit list shows which are verified).")
    if entry.size != manifest.compressed.size:
        raise TruncatedBackupError(
            f"Backup {entry.name} is {entry.size} bytes, its manifest says "
            f"{manifest.compressed.size}; it was not restored and nothing was changed.",
            "Restore another backup.")


def _prepare_target(server: Server, counts: dict[str, int | None], replace: bool) -> None:
    """Refuse to load over data unless told to replace it; drop it when told. ``counts``:
    objects per target database (None where it does not exist)."""
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        for database in counts:
            objects, exists = counts[database], counts[database] is not None
            if objects and not replace:
                raise TargetNotEmptyError(
                    f"Database {database} on the target {server.address} exists and holds "
                    f"{objects} objects; nothing was restored.",
                    "Restore under another name with --as, or pass --replace to drop and "
                    "replace it.")
            if exists and replace:
                try:
                    cursor.execute(f"DROP DATABASE `{database.replace('`', '``')}`")
                except pymysql.err.MySQLError as exc:
                    raise RestoreBlockedError(
                        f"Cannot drop database {database} on the target {server.address} "
                        f"({exc.args[-1]}).") from None
                log_event("restore.replaced", f"Dropped database {database} on "
                          f"{server.address} to replace it", database=database)
