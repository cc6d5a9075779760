"""The restore drill: prove, on a schedule, that the newest backup restores in time.

select -> (start a stopped Flexible Server) -> verify -> restore into a scratch database ->
prove -> measure RPO/RTO -> compare with the environment's objectives -> drop the scratch
database and stop the server again if the drill started it (always, also on failure).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import ObjectiveBreachedError
from drkit.mysql.connection import connect, target_server
from drkit.ops.pitr import resolve
from drkit.ops.restore import RestoreRequest, run_restore
from drkit.ops.verify import verify_backup


@dataclass
class Objectives:
    rpo_hours: float | None = None
    rto_minutes: float | None = None


@dataclass
class DrillResult:
    backup: str
    scratch_database: str
    target: str
    backup_taken_at: str
    rpo_seconds: float  # age of the backup when the drill started
    backup_interval_seconds: float | None  # between the two newest backups
    rto_seconds: float  # selection through proof
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step
    verify: dict[str, Any] = field(default_factory=dict)
    restore: dict[str, Any] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    # The Flexible Server's state changes the drill made: [{"change", "duration_seconds"}]
    server_changes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def raise_for_breaches(self) -> None:
        if self.breaches:
            raise ObjectiveBreachedError(
                f"The restore drill breached its objectives: {'; '.join(self.breaches)}.",
                "Look at the backup schedule (RPO) or the restore path's speed (RTO) before "
                "an incident does.")


def run_drill(settings: Settings, asked: RestoreRequest | None = None,
              objectives: Objectives | None = None,
              env: Environment | None = None) -> DrillResult:
    """Run the whole drill of the restore ``asked`` (its backup, default latest; its
    ``until``; its ``databases``); the result lists any objective it breached. With ``until``
    (a time, or ``latest``) the drill restores to that point in time: the base backup, then
    the archived binlog, and its RPO is the age of the newest data it restored. With
    ``databases``, only those of the backup are restored (one is required by ``until`` where
    the backups hold several). The drill restores under its own scratch name into the
    configured target, whatever else ``asked`` says."""
    asked = asked or RestoreRequest()
    until, databases = asked.until, asked.databases
    env = env or Environment()
    objectives = objectives or Objectives()
    store = BackupStore.from_settings(settings)
    server = target_server(settings)
    started = datetime.now(UTC)
    clock = time.monotonic()
    steps: dict[str, float] = {}

    catalog = Catalog(store)
    entries = catalog.entries()
    entry = resolve(settings, until, databases)[1] if until else \
        catalog.select(asked.backup, entries)
    steps["select"] = time.monotonic() - clock
    scratch = f"drkit_drill_{started:%Y%m%d%H%M%S}"
    log_event("drill.start", f"Restore drill: {entry.name} -> {server.address} as {scratch}",
              backup=entry.name, scratch_database=scratch)
    changes: list[dict[str, Any]] = []
    with _pilot_light(settings, changes):
        if changes:
            steps["start server"] = changes[0]["duration_seconds"]
        try:
            mark = time.monotonic()
            verified = verify_backup(store, entry, env)
            steps["verify"] = time.monotonic() - mark
            restored = run_restore(settings, RestoreRequest(
                backup=entry.name, until=until, databases=databases, rename_to=scratch), env)
            steps["restore"] = restored.seconds
            steps["prove"] = restored.proof.seconds if restored.proof else 0.0
            if restored.replay:
                steps["replay"] = restored.replay.replay_seconds
        finally:
            _drop(server, scratch)
    rto = time.monotonic() - clock
    newest = [e.taken_at for e in entries][-2:]
    result = DrillResult(
        backup=entry.name, scratch_database=scratch, target=server.address,
        backup_taken_at=entry.taken_at.isoformat(),
        rpo_seconds=round((started - (datetime.fromisoformat(restored.replay.reached)
                                      if restored.replay else entry.taken_at)
                               ).total_seconds(), 1),
        backup_interval_seconds=round((newest[1] - newest[0]).total_seconds(), 1)
        if len(newest) == 2 else None,
        rto_seconds=round(rto, 3),
        steps={k: round(v, 3) for k, v in steps.items()},
        verify=verified.as_dict(), restore=restored.as_dict(), server_changes=changes,
    )
    if objectives.rpo_hours is not None and result.rpo_seconds > objectives.rpo_hours * 3600:
        result.breaches.append(f"RPO: the newest data restored was "
                               f"{result.rpo_seconds / 3600:.1f} h old, the objective is "
                               f"{objectives.rpo_hours} h")
    if objectives.rto_minutes is not None and rto > objectives.rto_minutes * 60:
        result.breaches.append(f"RTO: the restore took {rto / 60:.1f} min, the objective is "
                               f"{objectives.rto_minutes} min")
    log_event("drill.finished", f"Drill {'BREACHED' if result.breaches else 'passed'}: RPO "
              f"{result.rpo_seconds:.0f} s, RTO {result.rto_seconds:.1f} s", **result.as_dict())
    return result


@contextlib.contextmanager
def _pilot_light(settings: Settings, changes: list[dict[str, Any]]) -> Iterator[None]:
    """The DR server as the failover would find it: a stopped Flexible Server is started
    for the drill (its start counts in the RTO, as in a real failover) and stopped again
    afterwards, also when the drill fails."""
    if not settings.azure.flexible_server:
        yield
        return
    from drkit.azure.flexserver import FlexibleServer

    flexible = FlexibleServer(settings)
    before, mark = flexible.state(), time.monotonic()
    started = flexible.start()
    if started:
        changes.append({"change": f"{before} -> Ready", "duration_seconds": _since(mark)})
        log_event("drill.server_started", f"Started Flexible Server {flexible.name} for the "
                  f"drill in {changes[-1]['duration_seconds']} s", **changes[-1])
    try:
        yield
    finally:
        if started:
            mark = time.monotonic()
            flexible.stop()
            changes.append({"change": "Ready -> Stopped", "duration_seconds": _since(mark)})
            log_event("drill.server_stopped", f"Stopped Flexible Server {flexible.name} again "
                      f"(it was {before} before the drill)", **changes[-1])


def _since(mark: float) -> float:
    return round(time.monotonic() - mark, 3)


def _drop(server, database: str) -> None:
    with contextlib.suppress(Exception), contextlib.closing(connect(server)) as connection, \
            connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        log_event("drill.cleanup", f"Dropped scratch database {database}", database=database)
