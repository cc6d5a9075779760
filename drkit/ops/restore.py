"""Restoring a backup into the target (Azure Flexible Server), streamed, then proven.

    Azure Blob ─► sha256 ─► gunzip/unzstd ─► statements ─► Azure rewrites ─► N connections

No local disk. The target database must not exist or be empty unless ``replace`` is given,
in which case the backup is loaded and proven beside it and swapped in only then. The
checksum and the dump's trailer are checked as the stream ends; the proof then compares the
loaded data with the manifest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    DrkitError,
    ParameterError,
    ProofFailedError,
    TargetNotEmptyError,
    TruncatedBackupError,
    UnrestorableBackupError,
)
from drkit.failpoints import failpoint
from drkit.manifest import Manifest
from drkit.mysql import dump, timezones
from drkit.mysql.connection import Server, connect, target_server
from drkit.mysql.loader import PARTIAL_LOAD_FIX, ParallelLoader
from drkit.mysql.proof import ProofResult, prove
from drkit.mysql.swap import drop_scratch, plan_swap, recover_swaps, scratch_names, swap_in
from drkit.ops.lock import RunLock
from drkit.ops.readback import CountingReader, failed_verification, read_back
from drkit.ops.restorenames import restore_names
from drkit.stream.dumpscan import ends_with_trailer, keep_tail
from drkit.stream.lexer import LexError, SqlLexer
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import Statement
from drkit.units import duration, human_size


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
    replay: dict[str, Any] | None = None  # restore --until: the binlog replay after the proof
    replaced: list[str] = field(default_factory=list)  # target databases whose data it replaced

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["restore_seconds"] = data.pop("seconds")
        data["proof"] = self.proof.as_dict() if self.proof else None
        return {"ok": self.proof is None or self.proof.ok, **data}


@dataclass
class CheckResult:
    backup: str
    databases: dict[str, str]
    statements: int
    rewrites: dict[str, int]
    blockers: list[str]
    largest_statement_bytes: int = 0
    target_max_allowed_packet: int | None = None  # None: no target configured to ask
    notes: list[str] = field(default_factory=list)  # what the restore will do, not blockers

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.blockers, **asdict(self)}


def azure_rewrites(settings: Settings, azure: bool | None = None) -> bool:
    """Whether a restore rewrites for Azure: as asked, else as ``restore.azure_compat`` says."""
    if azure is not None:
        return azure
    mode = settings.restore.azure_compat
    return mode == "on" or (mode == "auto" and settings.target is not None
                            and settings.target.kind == "azure")


def _rewriter(settings: Settings, renames: dict[str, str], azure: bool | None,
              definer: str | None) -> Rewriter:
    """The rewrites of a restore of ``renames``' databases (the backup's others skipped)."""
    return Rewriter(azure=azure_rewrites(settings, azure),
                    definer=definer or settings.restore.definer,
                    admin_user=settings.target.user if settings.target else "",
                    rename={old: new for old, new in renames.items() if old != new},
                    only=frozenset(renames))


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


_PROOF_FIX = "Do not put this copy in service; restore again with --replace, or another backup."
_PARTIAL = ("Anything loaded so far is incomplete; restore another backup with --replace "
            "(drkit list shows them).")


def check_backup(settings: Settings, spec: str, *, rename_to: str | None = None,
                 databases: list[str] | None = None, azure: bool | None = None,
                 definer: str | None = None) -> CheckResult:
    """What a restore would rewrite, and what would block it; loads nothing."""
    store = BackupStore.from_settings(settings)
    entry = Catalog(store).select(spec)
    manifest = load_manifest(store, entry.name)
    renames = restore_names(manifest, rename_to, databases)
    rewriter = _rewriter(settings, renames, azure, definer)
    counters = {"sql_bytes": 0, "statements": 0}
    largest, size = None, 0  # the statement itself is not kept: it may be huge
    for statement in _statements(store, manifest, rewriter,
                                 CountingReader(store.download(entry.name)), counters):
        if len(statement.sql) > size:
            largest, size = replace(statement, sql=b""), len(statement.sql)
    blockers, notes = list(rewriter.blockers), []
    if settings.target and manifest.time_zones:
        with contextlib.closing(connect(target_server(settings))) as connection:
            if missing := timezones.missing_zones(connection, manifest.time_zones):
                if timezones.has_az_load_timezone(connection):
                    notes.append(f"the target lacks the time zone(s) {', '.join(missing)} the "
                                 "backup's events or routines use: the restore loads them "
                                 "with CALL mysql.az_load_timezone()")
                else:
                    blockers.append(f"the backup's events or routines use the time zone(s) "
                                    f"{', '.join(missing)}, which the target does not know "
                                    f"(empty time-zone tables): {timezones.HOW_TO_LOAD}")
    limit = _max_allowed_packet(settings) if settings.target else None
    if largest is not None and limit is not None and size + 1 > limit:
        where = f"table {largest.database}.{largest.table}" if largest.table else \
            f"a {largest.kind} statement"
        blockers.append(f"the largest statement ({where}, {largest.where}) is "
                        f"{human_size(size)}, more than the target's "
                        f"max_allowed_packet of {human_size(limit)}: raise it on the server")
    return CheckResult(backup=entry.name, databases=renames, statements=counters["statements"],
                       rewrites=dict(rewriter.changes), blockers=blockers, notes=notes,
                       largest_statement_bytes=size,
                       target_max_allowed_packet=limit)


def _max_allowed_packet(settings: Settings) -> int:
    with contextlib.closing(connect(target_server(settings))) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        return int(cursor.fetchone()[0])


def restore_backup(settings: Settings, spec: str, env: Environment | None = None, *,
                   target_address: str | None = None, rename_to: str | None = None,
                   databases: list[str] | None = None, replace: bool = False,
                   azure: bool | None = None, definer: str | None = None,
                   prove_after: bool = True,
                   then: Callable[[Server, dict[str, str]], dict[str, Any]] | None = None,
                   ) -> RestoreResult:
    """Restore the backup ``spec`` names (or only its ``databases``) into the target; prove
    it unless told not to; ``then`` works on the loaded databases (original -> loaded name)
    before they are put in place.

    Every restore loads into a scratch database and is put in its place only once loaded
    and proven (:mod:`drkit.mysql.swap`): an interrupted or failed restore leaves nothing
    under the requested name. With ``replace``, a database that holds data is replaced
    that way; without it, such a database is refused.
    """
    env = env or Environment()
    if replace and not prove_after:
        raise ParameterError("--replace puts the restored copy in place only once it is "
                             "proven, so it cannot be combined with --no-prove.",
                             "Drop --no-prove, or restore under a new name with --as.")
    store = BackupStore.from_settings(settings)
    server = target_server(settings, target_address)
    entry = Catalog(store).select(spec)
    manifest = load_manifest(store, entry.name)
    _refuse_known_bad(entry, manifest)
    renames = restore_names(manifest, rename_to, databases)
    log_event("restore.start", f"Restore start: {entry.name} -> {server.address} "
              f"({', '.join(f'{a} as {b}' if a != b else a for a, b in renames.items())})",
              backup=entry.name, target=server.address)
    with _restoring(settings, server, list(renames.values())):
        return _restore(settings, env, store, server, entry, manifest, renames, replace,
                        azure, definer, prove_after, then)


@contextlib.contextmanager
def _restoring(settings: Settings, server: Server, databases: list[str]) -> Iterator[None]:
    """One restore at a time per target database (from this host): a second is refused
    at once (23) rather than racing the first to the swap."""
    directory = settings.backup.state_dir.expanduser() / "locks"
    with contextlib.ExitStack() as held:
        for database in sorted(databases):
            name = quote(f"{server.address}-{database}", safe="")
            held.enter_context(RunLock(directory / f"replace-{name}.lock",
                                       f"restore of {database} on {server.address}"))
        yield


def _restore(settings: Settings, env: Environment, store: BackupStore, server: Server,
             entry: BackupEntry, manifest: Manifest, renames: dict[str, str], replace: bool,
             azure: bool | None, definer: str | None, prove_after: bool,
             then: Callable[[Server, dict[str, str]], dict[str, Any]] | None) -> RestoreResult:
    # A swap a killed run left on this target is finished or undone first, from its journal.
    recover_swaps(server, settings.backup.state_dir.expanduser() / "swaps",
                  settings.restore.swap_lock_wait_seconds)
    counts = objects_in(server, list(renames.values()))
    _refuse_to_overwrite(server, counts, replace)
    timezones.ensure(server, manifest)
    if prove_after:  # the proof's dump must be able to log in before anything is loaded
        dump.check_client_login(server)
    # Loaded beside its place, whether that holds a database or not: put there once whole.
    swaps = scratch_names(list(renames.values()), datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    load_as = {db: swaps[name][0] for db, name in renames.items()}
    rewriter = _rewriter(settings, load_as, azure, definer)

    clock = time.monotonic()
    counters = {"sql_bytes": 0, "statements": 0}
    try:
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
        log_event("restore.loaded", f"Restored {entry.name}: {human_size(reader.size)} read "
                  f"({human_size(result.sql_bytes)} of SQL) in {duration(seconds)} "
                  f"({human_size(result.sql_bytes / max(seconds, 1e-3))}/s)", **result.as_dict())
        failpoint("restore", "loaded")  # loaded, not yet proven nor in place
        if prove_after:
            result.proof = prove_restore(manifest.only(list(renames)), server, load_as,
                                         rewriter.azure)
        result.replay = then(server, load_as) if then else None
        # Every swap is planned (and may refuse) before the first one changes anything.
        plans = [plan_swap(server, database, scratch, old, replace)
                 for database, (scratch, old) in swaps.items()]
    except BaseException as error:
        _drop_scratch(server, swaps, error)
        raise
    journals = settings.backup.state_dir.expanduser() / "swaps"
    for done, plan in enumerate(plans):
        try:
            swap_in(server, plan, settings.restore.swap_lock_wait_seconds,
                    journals / f"{plan.old}.json")
        except BaseException as error:
            # The scratches of swaps not begun go; the failed one's swap handled its own.
            drop_scratch(server, [p.scratch for p in plans[done + 1:]])
            if done and isinstance(error, DrkitError):
                error.message += (f" Already replaced by the backup: "
                                  f"{', '.join(p.place for p in plans[:done])}.")
            raise
    result.replaced = [database for database, objects in counts.items() if objects]
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
            _PROOF_FIX,
            proof=proof)
        raise error
    log_event("restore.proven", f"Proof passed: {proof.tables_checked} tables, "
              f"{proof.rows_checked} rows and {proof.objects_checked} objects match the manifest",
              **{k: v for k, v in proof.as_dict().items() if k != "tables"})
    return proof


def prove_backup(settings: Settings, spec: str, *, target_address: str | None = None,
                 rename_to: str | None = None,
                 databases: list[str] | None = None) -> ProofResult:
    store = BackupStore.from_settings(settings)
    manifest = load_manifest(store, Catalog(store).select(spec).name)
    renames = restore_names(manifest, rename_to, databases)
    return prove_restore(manifest.only(list(renames)), target_server(settings, target_address),
                         renames, azure_rewrites(settings))


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
    failed = failed_verification(entry.verified)
    if failed is not None:
        raise failed(f"Backup {entry.name} failed verification ({entry.verified}, "
                     f"{entry.verified_at}); it was not restored and nothing was changed.",
                     "Restore another backup (drkit list shows which are verified).")
    if entry.size != manifest.compressed.size:
        raise TruncatedBackupError(
            f"Backup {entry.name} is {entry.size} bytes, its manifest says "
            f"{manifest.compressed.size}; it was not restored and nothing was changed.",
            "Restore another backup.")


def _refuse_to_overwrite(server: Server, counts: dict[str, int | None], replace: bool) -> None:
    """A target database that holds objects is loaded over only when told to replace it.
    ``counts``: objects per target database (None where it does not exist)."""
    for database, objects in counts.items():
        if objects and not replace:
            raise TargetNotEmptyError(
                f"Database {database} on the target {server.address} exists and holds "
                f"{objects} objects; nothing was restored.",
                "Restore under another name with --as, or pass --replace to replace it by "
                "the restored copy once that is proven.")


def _drop_scratch(server: Server, swaps: dict[str, tuple[str, str]],
                  error: BaseException) -> None:
    """A failed load or proof into scratch databases: drop them; the targets are untouched."""
    scratches = [scratch for scratch, _ in swaps.values()]
    left = "" if drop_scratch(server, scratches) else \
        f" The scratch database {', '.join(scratches)} may remain: drop it."
    if isinstance(error, DrkitError):
        fix = "Restore another backup (drkit list shows them)." if error.fix in (
            _PARTIAL, _PROOF_FIX, PARTIAL_LOAD_FIX) else error.fix or ""
        error.fix = (f"Database {', '.join(swaps)} on the target is unchanged: the copy was "
                     f"loaded beside it.{left} {fix}").strip()
