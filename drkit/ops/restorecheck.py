"""The checks around a restore that load nothing: ``drkit restore --check`` (what a restore
would rewrite, and what would block it, found by reading the backup through) and
``drkit prove`` (whether the target's copy is the backup's).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, load_manifest
from drkit.config import Settings
from drkit.errors import UnknownDatabaseError
from drkit.mysql import inventory, timezones
from drkit.mysql.connection import Server, connect, target_server
from drkit.mysql.proof import ProofResult
from drkit.ops import restore
from drkit.ops.readback import CountingReader
from drkit.ops.restore import RestoreRequest, azure_rewrites, prove_restore
from drkit.ops.restorenames import restore_names
from drkit.units import human_size


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


def check_backup(settings: Settings, request: RestoreRequest) -> CheckResult:
    """What a restore would rewrite, and what would block it; loads nothing."""
    store = BackupStore.from_settings(settings)
    entry = Catalog(store).select(request.backup)
    # Opened as a restore opens them: a manifest a restore would refuse is a check's finding.
    manifest = load_manifest(store, entry.name, digests=True)
    renames = restore_names(manifest, request.rename_to, request.databases)
    rewriter = restore.rewriter_for(settings, renames, request)
    counters = {"sql_bytes": 0, "statements": 0}
    largest, size = None, 0  # the statement itself is not kept: it may be huge
    for statement in restore.statements(store, manifest, rewriter,
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
    limit = _max_allowed_packet(target_server(settings)) if settings.target else None
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


def _max_allowed_packet(server: Server) -> int:
    with contextlib.closing(connect(server)) as connection:
        return inventory.max_allowed_packet(connection)


def prove_backup(settings: Settings, request: RestoreRequest) -> ProofResult:
    """The target's copy of the backup ``request`` names compared with its manifest."""
    store = BackupStore.from_settings(settings)
    manifest = load_manifest(store, Catalog(store).select(request.backup).name, digests=True)
    renames = restore_names(manifest, request.rename_to, request.databases)
    server = target_server(settings, request.target_address)
    absent = [name for name, objects in restore.objects_in(server, list(renames.values()))
              .items() if objects is None]
    if absent:  # nothing to compare: not a failed dump of it
        raise UnknownDatabaseError(
            f"Database {', '.join(map(repr, absent))} does not exist on {server.address}: "
            f"there is no copy of backup {manifest.name} to prove there.",
            "Name the database the backup was restored as (--as), or restore it first.")
    return prove_restore(manifest.only(list(renames)), server, renames,
                         azure_rewrites(settings))
