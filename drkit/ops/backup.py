"""The nightly backup: one consistent dump, streamed through compression into Azure Blob.

    mysqldump --single-transaction ... ─► scan + sha256 ─► gzip/zstd ─► sha256 ─► Put Block
                                                                         └─► local copy (optional)

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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from drkit import __version__
from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    DrkitError,
    DumpFailedError,
    ParameterError,
    RunStopped,
    StorageError,
    UnrestorableBackupError,
    UploadFailedError,
)
from drkit.exitstatus import ExitStatus
from drkit.interrupts import deferred_signals
from drkit.manifest import Manifest, TableEntry
from drkit.mysql import dump, inventory, snapshotlock
from drkit.mysql.connection import Server, connect, option_file, source_server
from drkit.ops.claim import NameClaim
from drkit.ops.lock import RunLock
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
        with _locks(settings, databases):
            result = _backup(settings, env, databases, compression or settings.backup.compression,
                             started)
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
def _locks(settings: Settings, databases: list[str]):
    directory = settings.backup.state_dir.expanduser() / "locks"
    with contextlib.ExitStack() as stack:
        for database in sorted(set(databases)):
            stack.enter_context(RunLock(directory / f"backup-{quote(database, safe='')}.lock",
                                        f"backup of database {database}"))
        yield


def _step(number: int, text: str, **fields: Any) -> None:
    log_event("backup.step", f"[{number}/{STEPS}] {text}", step=number, **fields)


def _backup(settings: Settings, env: Environment, databases: list[str], codec_name: str,
            started: datetime) -> BackupResult:
    with contextlib.ExitStack() as stack:
        server = source_server(settings)
        store = BackupStore.from_settings(settings)
        codec = CODECS[codec_name]
        level = settings.backup.gzip_level if codec_name == "gzip" else settings.backup.zstd_level
        client = dump.dump_client()

        # 1. Preflight, as the seed's init: the source answers, the databases exist, the
        #    container is reachable, ours and private.
        connection = connect(server)
        with contextlib.closing(connection):
            for database in databases:
                connect(server, database).close()
            source_info = inventory.server_version(connection)
            store.check()
            claim = stack.enter_context(NameClaim(store, started, codec_name, databases))
            name = claim.name
            _step(1, f"preflight ... done: source {server.address} ({source_info['flavour']} "
                     f"{source_info['version']}), {store.where}")
            engines = inventory.table_engines(connection, databases)
            position_before = inventory.binlog_position(connection, source_info["flavour"])
            objects_before = inventory.stored_objects(connection, databases)
            snapshot_options = dump.snapshot_options(
                client, source_info["flavour"], position_before,
                source_info["flavour"] == "mariadb"
                and inventory.binlog_gtid_readable(connection, position_before))
            tables_before = inventory.table_shapes(connection, databases)
            locked = stack.enter_context(snapshotlock.for_dump(  # where the dump gives none
                settings, server, databases, source_info, position_before, snapshot_options))

            # 2. Dump, scan, compress and upload at once.
            uploader = store.uploader(name, settings.backup.block_size_mib * 1024 * 1024)
            local = _LocalCopy.open(settings.backup.local_copy_dir, name)
            scan = BackgroundScan()
            compressor = codec.compressor(level)
            dump_clock = time.monotonic()
            try:
                with option_file(server) as options, env.progress("backup", None) as progress, \
                        _unreadable_as("The dump"):
                    process = dump.DumpProcess(
                        client.command(options, databases, snapshot_options), options)
                    sent = 0
                    try:
                        for chunk in locked.watch(process.chunks()):
                            scan.feed(chunk)
                            for piece in compressor.compress(chunk):
                                uploader.write(piece)
                                local.write(piece)
                            sent += len(chunk)
                            progress.update(sent)
                        for piece in compressor.flush():
                            uploader.write(piece)
                            local.write(piece)
                    except BaseException:
                        process.stop()
                        raise
                    finally:
                        scanner = scan.finish()
                    exit_code = process.wait()
                _check_dump(server, exit_code, process.stderr, scanner)
            except BaseException:
                compressor.close()
                uploader.abort()
                local.discard()
                raise
            seconds = time.monotonic() - dump_clock
            sql_size = scan.size
            _step(2, f"dump + compress + upload ... done: {human_size(sql_size)} SQL -> "
                     f"{human_size(uploader.size)} {codec_name} in {duration(seconds)}",
                  sql_bytes=sql_size, bytes=uploader.size, seconds=round(seconds, 3))

            position_after = inventory.binlog_position(connection, source_info["flavour"])
            objects_after = inventory.stored_objects(connection, databases)
            tables_changed = _changed(tables_before,
                                      inventory.table_shapes(connection, databases))

        finished = datetime.now(UTC)
        non_transactional = sorted(t for t, e in engines.items()
                                   if e not in inventory.TRANSACTIONAL_ENGINES)
        manifest = Manifest(
            name=name,
            drkit_version=__version__,
            started_at=started,
            finished_at=finished,
            duration_seconds=round((finished - started).total_seconds(), 3),
            source={"host": server.host, "port": server.port, **source_info,
                    "rds_instance_id": settings.source.rds_instance_id},
            databases=databases,
            consistency={
                "method": "single-transaction snapshot" if not non_transactional
                else "single-transaction snapshot; non-transactional tables not consistent",
                "non_transactional_tables": non_transactional,
                "binlog_before": position_before,
                "binlog_after": position_after,
                **dump.snapshot_coordinates(scanner.snapshot, position_before, position_after,
                                            locked),
                "objects_changed_during_dump": objects_before != objects_after,
                # Tables created, dropped or altered while the dump ran: the backup holds
                # them as the snapshot saw them (or not at all, if created after it).
                "tables_changed_during_dump": tables_changed,
            },
            dump={"client": os.path.basename(client.path), "client_version": client.version,
                  "options": [*client.options, *snapshot_options]},
            compression={"codec": codec_name, "level": level},
            compressed={"size": uploader.size, "sha256": uploader.sha256},
            sql={"size": sql_size, "sha256": scan.sha256.hexdigest()},
            tables={
                f"{database}.{table}": TableEntry(rows=content.rows, sha256=content.digest,
                                                  unordered_digest=content.unordered_digest,
                                                  engine=engines.get(f"{database}.{table}"))
                for (database, table), content in sorted(scanner.tables.items())
            },
            objects=objects_after,
            definitions=scanner.definitions,
            time_zones=sorted(scanner.time_zones),
        )

        # 3. Publish: the sidecar first, then the one request that makes the backup visible.
        #    A signal waits until both are done: never half of a publish.
        try:
            with deferred_signals(f"backup {name} was committed whole"):
                store.put_json(manifest.sidecar_name, manifest.model_dump(mode="json"),
                               replacing=claim.etag)
                uploader.commit(manifest.metadata(), codec.content_type)
                claim.committed = True
        except StorageError as error:  # the storage failed under the publish: an upload
            local.discard()
            if error.exit_code != ExitStatus.STORAGE_FAILED:  # credentials, the container:
                raise  # their own code and fix say what to do
            cause = error.message.rstrip(".")
            raise UploadFailedError(f"Publishing backup {name} failed: {cause}; nothing was "
                                    "committed.", "Run the backup again once the storage "
                                    "answers.") from None
        except BaseException:
            local.discard()
            raise
        _step(3, f"upload to Azure Blob Storage ... done: {name}", blob=name,
              manifest=manifest.sidecar_name)

        # 4. The seed keeps local copies for about a day.
        local_path = local.keep()
        removed = _LocalCopy.prune(settings.backup.local_copy_dir,
                                   settings.backup.local_copy_max_age_hours)
        _step(4, "local cleanup ... done" + (f": {removed} old copies removed" if removed else ""))
        return BackupResult(name=name, manifest=manifest, local_copy=local_path)


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


class _LocalCopy:
    """The seed's local copy, written under a temporary name and renamed on success."""

    def __init__(self, path: Path | None, handle: IO[bytes] | None) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def open(cls, directory: Path | None, blob_name: str) -> _LocalCopy:
        if directory is None:
            return cls(None, None)
        directory = directory.expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / blob_name.rsplit("/", 1)[-1]
        return cls(path, open(path.with_name(path.name + ".partial"), "wb"))  # noqa: SIM115

    def write(self, data: bytes) -> None:
        if self._handle:
            self._handle.write(data)

    def keep(self) -> Path | None:
        if not self._handle or not self.path:
            return None
        self._handle.close()
        Path(self._handle.name).rename(self.path)
        return self.path

    def discard(self) -> None:
        if self._handle:
            self._handle.close()
            Path(self._handle.name).unlink(missing_ok=True)
            self._handle = None

    @staticmethod
    def prune(directory: Path | None, max_age_hours: float) -> int:
        if directory is None:
            return 0
        cutoff = (datetime.now(UTC) - timedelta(hours=max_age_hours)).timestamp()
        removed = 0
        for path in directory.expanduser().glob("backup-*.sql.*"):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        return removed
