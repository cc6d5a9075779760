"""Restoring a backup into the target (Azure Flexible Server), streamed, then proven.

    Azure Blob ─► sha256 ─► [age -d ─►] gunzip/unzstd ─► statements ─► Azure rewrites ─► N conns

No local disk. The target database must not exist or be empty unless ``replace`` is given,
in which case the backup is loaded and proven beside it and swapped in only then. The
checksum and the dump's trailer are checked as the stream ends; the proof then compares the
loaded data with the manifest.

A restore is asked for with a :class:`RestoreRequest` (the CLI, the drill and the failover
build one alike) and runs as the steps of :class:`Restore`; ``restore --check`` and
``drkit prove`` are :mod:`drkit.ops.restorecheck`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.azure.verdicts import FORGED
from drkit.binlog import position
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    ChecksumMismatchError,
    DrkitError,
    ParameterError,
    ProofFailedError,
    StandbyError,
    TargetNotEmptyError,
    TruncatedBackupError,
    UnrestorableBackupError,
)
from drkit.failpoints import failpoint
from drkit.manifest import Manifest
from drkit.mysql import dump, inventory, timezones
from drkit.mysql.connection import Server, connect, target_server
from drkit.mysql.loader import PARTIAL_LOAD_FIX, ParallelLoader
from drkit.mysql.proof import ProofResult, prove
from drkit.mysql.swap import (
    SwapPlan,
    drop_scratch,
    plan_swap,
    recover_swaps,
    scratch_names,
    swap_in,
)
from drkit.ops import pitr
from drkit.ops.lock import HeldLock, run_lock
from drkit.ops.pitr import ReplayPlan, ReplayResult
from drkit.ops.readback import CountingReader, failed_verification, read_back
from drkit.ops.restorenames import restore_names
from drkit.stream.dumpscan import ends_with_trailer, keep_tail
from drkit.stream.lexer import LexError, SqlLexer
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import Statement
from drkit.units import duration, human_size


@dataclass(frozen=True)
class RestoreRequest:
    """One restore as asked for, built alike by the CLI, the drill and the failover."""

    backup: str = "latest"  # a blob name, latest, latest-verified, or a time
    # A point in time (UTC, or latest): the base backup before it is chosen (not ``backup``),
    # restored and proven, then the archived binlog is replayed on it up to that time.
    until: str | None = None
    target_address: str | None = None  # HOST[:PORT]; None: the configured target
    databases: list[str] | None = None  # those of the backup to restore; None: all it holds
    rename_to: str | None = None  # the one database restored, under this name (--as)
    replace: bool = False  # a database that holds data is replaced once the copy is proven
    prove: bool = True
    azure: bool | None = None  # the Azure rewrites; None: as restore.azure_compat says
    definer: str | None = None  # strip or admin; None: as restore.definer says
    # A standby's databases may be restored over, and the standby is then retired (the
    # failover, which makes the target the primary); otherwise that restore is refused.
    retire_standby: bool = False


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
    replay: ReplayResult | None = None  # restore --until: the binlog replay after the proof
    replaced: list[str] = field(default_factory=list)  # target databases whose data it replaced

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["restore_seconds"] = data.pop("seconds")
        data["proof"] = self.proof.as_dict() if self.proof else None
        return {"ok": self.proof is None or self.proof.ok, **data}


def azure_rewrites(settings: Settings, azure: bool | None = None) -> bool:
    """Whether a restore rewrites for Azure: as asked, else as ``restore.azure_compat`` says."""
    if azure is not None:
        return azure
    mode = settings.restore.azure_compat
    return mode == "on" or (mode == "auto" and settings.target is not None
                            and settings.target.kind == "azure")


def rewriter_for(settings: Settings, renames: dict[str, str], request: RestoreRequest) -> Rewriter:
    """The rewrites of a restore of ``renames``' databases (the backup's others skipped)."""
    return Rewriter(azure=azure_rewrites(settings, request.azure),
                    definer=request.definer or settings.restore.definer,
                    admin_user=settings.target.user if settings.target else "",
                    rename={old: new for old, new in renames.items() if old != new},
                    only=frozenset(renames))


def statements(store: BackupStore, manifest: Manifest, rewriter: Rewriter,
               reader: CountingReader, counters: dict[str, int]) -> Iterator[Statement]:
    """The backup's statements, rewritten; checks checksum and trailer as the stream ends."""
    lexer = SqlLexer()
    tail = b""
    try:
        with read_back(manifest, reader, lambda: ends_with_trailer(tail), _PARTIAL,
                       store.keyring) as pieces:
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


def run_restore(settings: Settings, request: RestoreRequest,
                env: Environment | None = None) -> RestoreResult:
    """Restore as ``request`` asks (:class:`Restore` says how)."""
    return Restore(settings, request, env).run()


class Restore:
    """One restore, run as its steps: select, refuse, load, prove, replay, swap.

    Every restore loads into a scratch database and is put in its place only once loaded
    and proven (:mod:`drkit.mysql.swap`): an interrupted or failed restore leaves nothing
    under the requested name. With ``replace``, a database that holds data is replaced
    that way; without it, such a database is refused. With ``until``, the archived binlog
    is replayed on the proven copy before it is put in place (:mod:`drkit.ops.pitr`).
    """

    # What the steps find, each set by the step named: select ...
    store: BackupStore
    server: Server
    entry: BackupEntry
    manifest: Manifest
    renames: dict[str, str]  # refuse: name in the backup -> name on the target
    swaps: dict[str, tuple[str, str]]  # prepare: name on the target -> (scratch, old) names
    load_as: dict[str, str]  # prepare: name in the backup -> scratch database loaded
    rewriter: Rewriter  # prepare
    occupied: list[str]  # prepare: target databases that hold data (replaced, with consent)
    standby_replaced: list[str]  # prepare: of those, a standby's (with retire_standby)

    def __init__(self, settings: Settings, request: RestoreRequest,
                 env: Environment | None = None) -> None:
        self.settings = settings
        self.request = request
        self.env = env or Environment()
        self.journals = settings.backup.state_dir.expanduser() / "swaps"
        self.replay_plan: ReplayPlan | None = None

    def run(self) -> RestoreResult:
        self.select()
        self.refuse()
        log_event("restore.start", f"Restore start: {self.entry.name} -> {self.server.address} "
                  f"({', '.join(f'{a} as {b}' if a != b else a for a, b in self.renames.items())})",
                  backup=self.entry.name, target=self.server.address)
        with _restoring(self.settings, self.server, list(self.renames.values())) as locks:
            self.prepare()
            try:
                result = self.load()
                result.proof = self.prove()
                result.replay = self.replay()
                for lock in locks:  # a lease lost while it loaded: stop before the swap
                    lock.confirm()
                # Every swap is planned (and may refuse) before the first one changes anything.
                plans = [plan_swap(self.server, database, scratch, old, self.request.replace)
                         for database, (scratch, old) in self.swaps.items()]
            except DrkitError as error:
                raise self._unchanged(error) from error
            except BaseException:
                self._drop_scratch()
                raise
            self.swap(plans)
            if self.standby_replaced:
                _retire_standby(self.server, self.standby_replaced)
        result.replaced = self.occupied
        return result

    def select(self) -> None:
        """The backup (with ``until``: the base before that time, verified, and the archive
        after it), its manifest, and the target."""
        if self.request.until is not None:
            self.replay_plan = pitr.plan_replay(self.settings, self.request.until,
                                                self.request.databases, self.env)
            self.request = replace(self.request, backup=self.replay_plan.base.name,
                                   databases=self.replay_plan.databases)
        if self.request.replace and not self.request.prove:
            raise ParameterError("--replace puts the restored copy in place only once it is "
                                 "proven, so it cannot be combined with --no-prove.",
                                 "Drop --no-prove, or restore under a new name with --as.")
        self.store = BackupStore.from_settings(self.settings)
        self.server = target_server(self.settings, self.request.target_address)
        self.entry = Catalog(self.store).select(self.request.backup)
        self.manifest = load_manifest(self.store, self.entry.name, digests=True)

    def refuse(self) -> None:
        """A backup verify found bad, or whose size is not its manifest's, is never loaded;
        nor one whose databases cannot take the names asked for."""
        _refuse_known_bad(self.entry, self.manifest)
        self.renames = restore_names(self.manifest, self.request.rename_to,
                                     self.request.databases)

    def prepare(self) -> None:
        """The target made ready for the load, or the restore refused, before anything is
        loaded."""
        # A swap a killed run left on this target is finished or undone first, from its journal.
        recover_swaps(self.server, self.journals, self.settings.restore.swap_lock_wait_seconds)
        counts = objects_in(self.server, list(self.renames.values()))
        refuse_to_overwrite(self.server, counts, self.request.replace)
        self.standby_replaced = _standby_databases_among(self.server,
                                                         list(self.renames.values()))
        if self.standby_replaced and not self.request.retire_standby:
            raise StandbyError(
                f"Database {', '.join(self.standby_replaced)} on {self.server.address} is the "
                "standby's (drkit standby status): restoring into it would leave a standby "
                "that no longer equals the source; nothing was restored.",
                "Restore under another name (--as); or retire the standby first (DROP "
                "DATABASE drkit_standby on the target; drkit standby init makes a new one).")
        self.occupied = [database for database, objects in counts.items() if objects]
        timezones.ensure(self.server, self.manifest)
        if self.request.prove:  # the proof's dump must be able to log in before any load
            dump.check_client_login(self.server)
        # Loaded beside its place, whether that holds a database or not: put there once whole.
        self.swaps = scratch_names(list(self.renames.values()),
                                   datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
        self.load_as = {db: self.swaps[name][0] for db, name in self.renames.items()}
        self.rewriter = rewriter_for(self.settings, self.load_as, self.request)

    def load(self) -> RestoreResult:
        """The backup streamed into the scratch databases."""
        entry = self.entry
        clock = time.monotonic()
        counters = {"sql_bytes": 0, "statements": 0}
        loader = ParallelLoader(self.server, self.settings.restore.workers)
        try:
            with self.env.progress(f"restore {entry.name}", entry.size) as progress:
                reader = CountingReader(self.store.download(entry.name), progress)
                for statement in statements(self.store, self.manifest, self.rewriter, reader,
                                             counters):
                    loader.execute(statement)
                loader.finish()
        finally:
            loader.close()
        seconds = time.monotonic() - clock
        result = RestoreResult(
            backup=entry.name, target=self.server.address, databases=self.renames,
            compressed_bytes=reader.size, sql_bytes=counters["sql_bytes"],
            statements=counters["statements"], seconds=round(seconds, 3),
            throughput_mib_s=round(counters["sql_bytes"] / 2**20 / max(seconds, 1e-6), 1),
            rewrites=dict(self.rewriter.changes))
        log_event("restore.loaded", f"Restored {entry.name}: {human_size(reader.size)} read "
                  f"({human_size(result.sql_bytes)} of SQL) in {duration(seconds)} "
                  f"({human_size(result.sql_bytes / max(seconds, 1e-3))}/s)", **result.as_dict())
        failpoint("restore", "loaded")  # loaded, not yet proven nor in place
        return result

    def prove(self) -> ProofResult | None:
        """The loaded copy compared with the manifest, unless told not to."""
        if not self.request.prove:
            return None
        return prove_restore(self.manifest.only(list(self.renames)), self.server, self.load_as,
                             self.rewriter.azure)

    def replay(self) -> ReplayResult | None:
        """With ``until``: the archived binlog applied to the proven copy."""
        if self.replay_plan is None:
            return None
        try:
            return pitr.replay(self.replay_plan, self.server, self.load_as, self.env)
        except DrkitError as error:
            # The copy is now at no known point in time: never left to be taken for the
            # state of TIME (run() drops it, as every copy that is not put in place).
            asked = self.request.rename_to or ", ".join(self.replay_plan.databases)
            # Named as the user knows them: the scratch copies are drkit's.
            names = {self.load_as[db]: name for db, name in self.renames.items()}
            raise error.with_names(names).with_context(
                f"The copy restored for {asked} was dropped.") from error

    def swap(self, plans: list[SwapPlan]) -> None:
        """Each proven copy put in its place."""
        for done, plan in enumerate(plans):
            try:
                swap_in(self.server, plan, self.settings.restore.swap_lock_wait_seconds,
                        self.journals / f"{plan.old}.json")
            except BaseException as error:
                # The scratches of swaps not begun go; the failed one's swap handled its own.
                drop_scratch(self.server, [p.scratch for p in plans[done + 1:]])
                if done and isinstance(error, DrkitError):
                    raise error.with_context(
                        "Already replaced by the backup: "
                        f"{', '.join(p.place for p in plans[:done])}.") from error
                raise

    def _drop_scratch(self) -> str:
        """A failed load, proof or replay: the scratch databases go (the targets are
        untouched); what remains, said as a sentence ("" for nothing)."""
        scratches = [scratch for scratch, _ in self.swaps.values()]
        return "" if drop_scratch(self.server, scratches) else \
            f" The scratch database {', '.join(scratches)} may remain: drop it."

    def _unchanged(self, error: DrkitError) -> DrkitError:
        """``error`` after the scratch databases were dropped, saying the targets are
        unchanged."""
        left = self._drop_scratch()
        fix = "Restore another backup (drkit list shows them)." if error.fix in (
            _PARTIAL, _PROOF_FIX, PARTIAL_LOAD_FIX) else error.fix or ""
        return error.with_context(fix=(f"Database {', '.join(self.swaps)} on the target is "
                                      f"unchanged: the copy was loaded beside it.{left} "
                                      f"{fix}").strip())


@contextlib.contextmanager
def _restoring(settings: Settings, server: Server,
               databases: list[str]) -> Iterator[list[HeldLock]]:
    """One restore at a time per target database (from this host, or from any with
    backup.locks: blob): a second is refused at once (23) rather than racing the first to
    the swap."""
    locks = [run_lock(settings, "replace-" + quote(f"{server.address}-{database}", safe=""),
                      f"restore of {database} on {server.address}")
             for database in sorted(databases)]
    with contextlib.ExitStack() as held:
        yield [held.enter_context(lock) for lock in locks]


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


def objects_in(server: Server, databases: list[str]) -> dict[str, int | None]:
    """Tables, views, routines and events per database; None where the database is absent."""
    with contextlib.closing(connect(server)) as connection:
        return inventory.object_counts(connection, databases)


def _standby_databases_among(server: Server, databases: list[str]) -> list[str]:
    """Those of ``databases`` a standby on ``server`` keeps (and follows the archive into);
    a promoted one is the primary now, a standby no more."""
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        at = position.read(cursor)
    kept = {name.lower() for name in at.databases.values()} if at and not at.promoted else set()
    return sorted(name for name in databases if name.lower() in kept)


def _retire_standby(server: Server, replaced: list[str]) -> None:
    """The standby's databases hold a restore now: it is a standby no more."""
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        position.drop(cursor)
    log_event("restore.standby_retired", f"The standby on {server.address} is retired: "
              f"{', '.join(replaced)} now hold this restore (drkit standby init makes a new "
              "one).", databases=replaced)


def _refuse_known_bad(entry: BackupEntry, manifest: Manifest) -> None:
    """A backup verify found bad, or whose size is not its manifest's, is never loaded."""
    if entry.verified == FORGED:
        # Only the Azure side can sign an "ok"; an unsigned one was written by someone else,
        # most likely with the backup side's credential, which can also replace the bytes.
        raise ChecksumMismatchError(
            f"Backup {entry.name} is tagged verified without the Azure side's signature "
            "(forged): its bytes may have been replaced; it was not restored and nothing "
            "was changed.",
            f"Run drkit verify {entry.name} to read it back in full (a good backup is signed "
            "again) or restore another backup, and check the backup host (drkit doctor).")
    failed = failed_verification(entry.verified)
    if failed is not None:
        raise failed(f"Backup {entry.name} failed verification ({entry.verified}, "
                     f"{entry.verified_at}); it was not restored and nothing was changed.",
                     "Restore another backup (drkit list shows which are verified), or run "
                     f"drkit verify {entry.name} to read it back again: the backup side can "
                     "record a failure too.")
    if entry.size != manifest.compressed.size:
        raise TruncatedBackupError(
            f"Backup {entry.name} is {entry.size} bytes, its manifest says "
            f"{manifest.compressed.size}; it was not restored and nothing was changed.",
            "Restore another backup.")


def refuse_to_overwrite(server: Server, counts: dict[str, int | None], replace: bool) -> None:
    """A target database that holds objects is loaded over only when told to replace it.
    ``counts``: objects per target database (None where it does not exist)."""
    for database, objects in counts.items():
        if objects and not replace:
            raise TargetNotEmptyError(
                f"Database {database} on the target {server.address} exists and holds "
                f"{objects} objects; nothing was restored.",
                "Restore under another name with --as, or pass --replace to replace it by "
                "the restored copy once that is proven.")
