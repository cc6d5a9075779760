"""The nightly backup: one consistent dump, streamed through compression into Azure Blob.

    mysqldump --single-transaction ─► scan + sha256 ─► gzip/zstd [─► age] ─► sha256 ─► Put Block
                                                                              └─► local copy

Nothing touches local disk unless a local copy is configured. The blob is committed only
after mysqldump exited 0 *and* its completion trailer was seen; the manifest sidecar is
written just before, and removed again if the commit fails. Every run ends with metrics and
a run log line saying success or failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from drkit import __version__
from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore, BlockUploader
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    ConfigError,
    DrkitError,
    DumpFailedError,
    ParameterError,
    RunStopped,
    StorageError,
    UnrestorableBackupError,
    UploadFailedError,
)
from drkit.exitstatus import ExitStatus
from drkit.failpoints import failpoint
from drkit.interrupts import deferred_signals
from drkit.manifest import Manifest, TableEntry
from drkit.mysql import dump, inventory, snapshotlock
from drkit.mysql.connection import Connection, Server, connect, option_file, source_server
from drkit.ops.claim import NameClaim
from drkit.ops.localcopy import LocalCopy
from drkit.ops.lock import HeldLock, run_lock
from drkit.stream import encryption, sealeddigests
from drkit.stream.compression import CODECS
from drkit.stream.dumpscan import BackgroundScan, DumpScanner
from drkit.stream.lexer import LexError
from drkit.stream.rewrite import SYSTEM_SCHEMAS
from drkit.units import duration, human_size

STEPS = 4


@dataclass
class BackupResult:
    name: str
    manifest: Manifest
    local_copy: Path | None = None

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "ok": True,
            "backup": self.name,
            "manifest": m.sidecar_name,
            "databases": m.databases,
            "compression": m.compression["codec"],
            "compressed_bytes": m.compressed.size,
            "sql_bytes": m.sql.size,
            "sha256": m.compressed.sha256,
            "duration_seconds": m.duration_seconds,
            "tables": len(m.tables),
            "rows": sum(t.rows for t in m.tables.values()),
            "local_copy": str(self.local_copy) if self.local_copy else None,
        }


def run_backup(settings: Settings, env: Environment | None = None, *,
               databases: list[str] | None = None, compression: str | None = None) -> BackupResult:
    """Back up ``databases`` (default: the configured ones) to Azure Blob; see module doc."""
    env = env or Environment()
    databases = databases or list(settings.source.databases)
    if system := sorted(d for d in set(databases) if d.lower() in SYSTEM_SCHEMAS):
        raise ParameterError(f"{', '.join(system)} is a system schema; drkit backs up "
                             "application databases.",
                             "Name application databases (users and grants are the target's "
                             "own).")
    started = datetime.now(UTC).replace(microsecond=0)
    clock = time.monotonic()
    log_event("backup.start", f"Backup start: {started:%a %b %d %H:%M:%S UTC %Y} "
              f"(databases: {', '.join(databases)})", databases=databases)
    try:
        with _locks(settings, databases) as locks:
            failpoint("backup", "locked")  # held, nothing dumped
            result = _BackupRun(settings, env, databases,
                                compression or settings.backup.compression, started).run(locks)
    except DrkitError as error:
        stopped = isinstance(error, RunStopped)
        log_event("backup.interrupted" if stopped else "backup.failed",
                  f"Backup {'INTERRUPTED' if stopped else 'FAILED'}: {error}", logging.ERROR,
                  databases=databases, exit_code=error.exit_code)
        # An interrupted backup is a missing backup too (BackupFailure, for the alarm), and
        # says that it was stopped rather than broken.
        metrics.publish(settings, databases, {"BackupSuccess": (0, "Count"),
                                              "BackupFailure": (1, "Count"),
                                              "BackupInterrupted": (int(stopped), "Count")})
        raise
    metrics.publish(settings, databases, {
        "BackupSuccess": (1, "Count"),
        "BackupFailure": (0, "Count"),
        "BackupBytes": (result.manifest.compressed.size, "Bytes"),
        "BackupSqlBytes": (result.manifest.sql.size, "Bytes"),
        "BackupDurationSeconds": (time.monotonic() - clock, "Seconds"),
    })
    log_event("backup.finished", f"Backup finished: {datetime.now(UTC):%a %b %d %H:%M:%S UTC %Y}",
              **result.summary())
    return result


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
    if changed:
        log_event("backup.ddl_during_dump", f"Tables changed while the dump ran: "
                  f"{', '.join(changed)}; the backup holds them as its snapshot saw them",
                  logging.WARNING, tables=changed)
    return changed


@contextlib.contextmanager
def _locks(settings: Settings, databases: list[str]) -> Iterator[list[HeldLock]]:
    """One backup per database at once (backup.locks: this host's, or across hosts)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_lock(settings, f"backup-{quote(database, safe='')}",
                                            f"backup of database {database}"))
               for database in sorted(set(databases))]


def _step(number: int, text: str, **fields: Any) -> None:
    log_event("backup.step", f"[{number}/{STEPS}] {text}", step=number, **fields)


@dataclass
class _Inventory:
    """What the source holds at one moment: asked before the dump and again after it."""

    position: dict[str, Any]  # binary log coordinates and GTID set
    objects: dict[str, list[str]]  # views, routines, triggers, events
    tables: dict[str, str]  # "db.table" -> a digest of its definition
    table_ddl: dict[str, int] | None  # the server's table DDL counters; None: not shown
    tables_read: bool = True  # False: the DDL counters had not moved, so tables not read again

    @classmethod
    def after(cls, connection: Connection, server: Server, flavour: str,
              databases: list[str], before: _Inventory) -> _Inventory:
        """After the dump. The table shapes are read again only when the server ran table
        DDL meanwhile: at 5,000 tables that read costs MariaDB about as much as the rest
        of the backup's own work (see :func:`drkit.mysql.inventory.table_ddl_counts`)."""
        table_ddl = inventory.table_ddl_counts(connection)
        unmoved = table_ddl is not None and table_ddl == before.table_ddl
        return cls(inventory.binlog_position(connection, flavour),
                   inventory.stored_objects(connection, databases),
                   before.tables if unmoved else inventory.table_shapes(server, databases),
                   table_ddl, tables_read=not unmoved)


@dataclass
class _Source:
    """The source as the backup saw it around its dump."""

    info: dict[str, str]  # version and flavour
    engines: dict[str, str]  # "db.table" -> engine
    before: _Inventory
    snapshot_options: tuple[str, ...]  # what mysqldump is asked for its snapshot's coordinates
    after: _Inventory | None = None


@dataclass
class _Dumped:
    """What the dump gave: the scan of its SQL and its upload, staged, not yet committed."""

    scan: BackgroundScan
    scanner: DumpScanner
    uploader: BlockUploader
    local: LocalCopy


class _BackupRun:
    """One backup, in the seed's four steps: preflight; dump, compress and upload at once;
    publish; local cleanup."""

    def __init__(self, settings: Settings, env: Environment, databases: list[str],
                 codec_name: str, started: datetime) -> None:
        self.settings, self.env, self.databases, self.started = settings, env, databases, started
        self.codec_name, self.codec = codec_name, CODECS[codec_name]
        self.level = settings.backup.gzip_level if codec_name == "gzip" \
            else settings.backup.zstd_level
        self.sealer = encryption.sealer(settings.encryption.recipients)  # before a write
        self.recipients = self.sealer.recipients if self.sealer else []
        if not self.recipients and settings.encryption.identity:
            raise ConfigError("The config names encryption.identity but no "
                              "encryption.recipients: this backup would not be encrypted; "
                              "nothing was written.",
                              "Add the recipients (age-keygen -y on each key prints one); an "
                              "identity alone is for the side that reads backups back.")
        self.server = source_server(settings)
        self.store = BackupStore.from_settings(settings)
        self.client = dump.dump_client()

    def run(self, locks: list[HeldLock]) -> BackupResult:
        with contextlib.ExitStack() as stack:
            with contextlib.closing(connect(self.server)) as connection:
                claim, source = self._preflight(connection, stack)
                locked = stack.enter_context(snapshotlock.for_dump(  # where the dump gives none
                    self.settings, self.server, self.databases, source.info["flavour"],
                    snapshot_gives_none=not source.snapshot_options
                    and bool(source.before.position.get("file"))))
                dumped = self._dump(claim.name, source.snapshot_options, locked)
                source.after = _Inventory.after(connection, self.server, source.info["flavour"],
                                                self.databases, source.before)
            manifest = self._manifest(claim.name, source, dumped, locked)
            failpoint("backup", "dumped")  # all staged, nothing committed
            for lock in locks:  # a lease lost while the dump ran: stop before the commit
                lock.confirm()
            self._publish(claim, manifest, dumped)
            _step(3, f"upload to Azure Blob Storage ... done: {claim.name}", blob=claim.name,
                  manifest=manifest.sidecar_name)

            # 4. The seed keeps local copies for about a day.
            local_path = dumped.local.keep()
            removed = LocalCopy.prune(self.settings.backup.local_copy_dir,
                                       self.settings.backup.local_copy_max_age_hours)
            _step(4, "local cleanup ... done" + (f": {removed} old copies removed"
                                                  if removed else ""))
            return BackupResult(name=claim.name, manifest=manifest, local_copy=local_path)

    def _preflight(self, connection: Connection,
                   stack: contextlib.ExitStack) -> tuple[NameClaim, _Source]:
        """1. As the seed's init: the source answers, the databases exist, the container is
        reachable, ours and private; then the backup's name is claimed (held by ``stack``)
        and the source's state before the dump read."""
        for database in self.databases:
            connect(self.server, database).close()
        # The counters first: a DDL between them and the shapes' read is not missed.
        table_ddl = inventory.table_ddl_counts(connection)
        # The shapes are the slowest read (MariaDB opens every table): beside the rest.
        with inventory.TableShapesRead(self.server, self.databases) as shapes:
            info = inventory.server_version(connection)
            self.store.check()
            claim = stack.enter_context(NameClaim(self.store, self.started, self.codec_name,
                                                  self.databases,
                                                  encrypted=bool(self.recipients)))
            _step(1, f"preflight ... done: source {self.server.address} ({info['flavour']} "
                     f"{info['version']}), {self.store.where}")
            engines = inventory.table_engines(connection, self.databases)
            before = _Inventory(inventory.binlog_position(connection, info["flavour"]),
                                inventory.stored_objects(connection, self.databases),
                                shapes.result(), table_ddl)
        snapshot_options = dump.snapshot_options(
            self.client, info["flavour"], before.position,
            info["flavour"] == "mariadb"
            and inventory.binlog_gtid_readable(connection, before.position))
        return claim, _Source(info, engines, before, snapshot_options)

    def _dump(self, name: str, snapshot_options: tuple[str, ...],
              locked: snapshotlock.TableLockCoordinates) -> _Dumped:
        """2. Dump, scan, compress and upload at once; nothing is committed yet."""
        uploader = self.store.uploader(name, self.settings.backup.block_size_mib * 1024 * 1024)
        local = LocalCopy.open(self.settings.backup.local_copy_dir, name)
        scan = BackgroundScan()
        compressor = encryption.sealed(self.codec.compressor(self.level), self.recipients)
        clock = time.monotonic()
        try:
            with option_file(self.server) as options, _unreadable_as("The dump"):
                process = dump.DumpProcess(
                    self.client.command(options, self.databases, snapshot_options), options)
                try:
                    self._stream(locked.watch(process.chunks()), scan, compressor,
                                 (uploader, local))
                except BaseException:
                    process.stop()
                    raise
                finally:
                    scanner = scan.finish()
                exit_code = process.wait()
            _check_dump(self.server, exit_code, process.stderr, scanner)
        except BaseException:
            compressor.close()
            uploader.abort()
            local.discard()
            raise
        seconds = time.monotonic() - clock
        _step(2, f"dump + compress + upload ... done: {human_size(scan.size)} SQL -> "
                 f"{human_size(uploader.size)} {self.codec_name} in {duration(seconds)}",
              sql_bytes=scan.size, bytes=uploader.size, seconds=round(seconds, 3))
        return _Dumped(scan, scanner, uploader, local)

    def _stream(self, chunks: Iterator[bytes], scan: BackgroundScan, compressor: Any,
                sinks: tuple[BlockUploader, LocalCopy]) -> None:
        """The dump's SQL to the scan, and compressed to the upload and the local copy."""
        with self.env.progress("backup", None) as progress:
            sent = 0
            for chunk in chunks:
                scan.feed(chunk)
                _write(sinks, compressor.compress(chunk))
                sent += len(chunk)
                progress.update(sent)
            _write(sinks, compressor.flush())

    def _manifest(self, name: str, source: _Source, dumped: _Dumped,
                  locked: snapshotlock.TableLockCoordinates) -> Manifest:
        before, after = source.before, source.after
        assert after is not None
        finished = datetime.now(UTC)
        non_transactional = sorted(t for t, e in source.engines.items()
                                   if e not in inventory.TRANSACTIONAL_ENGINES)
        scanner = dumped.scanner
        manifest = Manifest(
            name=name,
            drkit_version=__version__,
            started_at=self.started,
            finished_at=finished,
            duration_seconds=round((finished - self.started).total_seconds(), 3),
            source={"host": self.server.host, "port": self.server.port, **source.info,
                    "rds_instance_id": self.settings.source.rds_instance_id},
            databases=self.databases,
            consistency={
                "method": "single-transaction snapshot" if not non_transactional
                else "single-transaction snapshot; non-transactional tables not consistent",
                "non_transactional_tables": non_transactional,
                "binlog_before": before.position,
                "binlog_after": after.position,
                **dump.snapshot_coordinates(scanner.snapshot, before.position, after.position,
                                            locked),
                "objects_changed_during_dump": before.objects != after.objects,
                # Tables created, dropped or altered while the dump ran: the backup holds
                # them as the snapshot saw them (or not at all, if created after it).
                "tables_changed_during_dump": _changed(before.tables, after.tables),
                "tables_checked_by": "definitions read again" if after.tables_read
                else "table DDL counters unchanged",
            },
            dump={"client": os.path.basename(self.client.path),
                  "client_version": self.client.version,
                  "options": [*self.client.options, *source.snapshot_options]},
            compression={"codec": self.codec_name, "level": self.level},
            encryption={"format": "age", "recipients": self.settings.encryption.recipients,
                        "fingerprints": self.sealer.fingerprints} if self.sealer else {},
            compressed={"size": dumped.uploader.size, "sha256": dumped.uploader.sha256},
            sql={"size": dumped.scan.size, "sha256": dumped.scan.sha256.hexdigest()},
            tables={
                f"{database}.{table}": TableEntry(
                    rows=content.rows, sha256=content.digest,
                    unordered_digest=content.unordered_digest,
                    engine=source.engines.get(f"{database}.{table}"))
                for (database, table), content in sorted(scanner.tables.items())
            },
            objects=after.objects,
            definitions=scanner.definitions,
            time_zones=sorted(scanner.time_zones),
        )
        # The content digests only the identity reads (drkit.stream.sealeddigests).
        return sealeddigests.sealed(manifest, self.sealer) if self.sealer else manifest

    def _publish(self, claim: NameClaim, manifest: Manifest, dumped: _Dumped) -> None:
        """3. The sidecar first, then the one request that makes the backup visible. A
        signal waits until both are done: never half of a publish."""
        try:
            with deferred_signals(f"backup {claim.name} was committed whole"):
                self.store.put_json(manifest.sidecar_name, manifest.model_dump(mode="json"),
                                    replacing=claim.etag)
                dumped.uploader.commit(manifest.metadata(), encryption.CONTENT_TYPE
                                       if self.recipients else self.codec.content_type)
                claim.committed = True
        except StorageError as error:  # the storage failed under the publish: an upload
            dumped.local.discard()
            if error.exit_code != ExitStatus.STORAGE_FAILED:  # credentials, the container:
                raise  # their own code and fix say what to do
            cause = error.message.rstrip(".")
            raise UploadFailedError(f"Publishing backup {claim.name} failed: {cause}; nothing "
                                    "was committed.", "Run the backup again once the storage "
                                    "answers.") from None
        except BaseException:
            dumped.local.discard()
            raise


def _write(sinks: tuple[BlockUploader, LocalCopy], pieces: Iterable[bytes]) -> None:
    for piece in pieces:
        for sink in sinks:
            sink.write(piece)


def _check_dump(server: Server, exit_code: int, stderr: str, scanner: DumpScanner) -> None:
    if exit_code != 0:
        last = stderr.splitlines()[-1] if stderr else "no message"
        tls = dump.client_tls_failure("mysqldump", server, last, "; nothing was committed")
        if tls is not None:
            raise tls
        raise DumpFailedError(f"mysqldump failed with exit code {exit_code} ({last}); "
                              "nothing was committed.",
                              "Fix the cause above and run the backup again.")
    if not scanner.complete:
        raise DumpFailedError("The dump ended without mysqldump's completion trailer; "
                              "nothing was committed.", "Run the backup again.")
    if disagreements := scanner.disagreements():
        raise UnrestorableBackupError(
            f"A restore would not load the rows the dump holds ({'; '.join(disagreements[:3])})"
            "; nothing was committed.", "Report this as a drkit bug, with the table's "
            "SHOW CREATE TABLE.")


@contextlib.contextmanager
def _unreadable_as(what: str) -> Iterator[None]:
    """A dump the lexer cannot cut into statements fails the backup before commit."""
    try:
        yield
    except LexError as error:
        raise UnrestorableBackupError(
            f"{what} cannot be read back as statements: {error}; nothing was committed.",
            "Report this as a drkit bug, with the statement at that position.") from None
