"""The restore drill: prove, on a schedule, that the newest backup restores in time.

select -> (start a stopped Flexible Server) -> verify -> restore into a scratch database ->
prove -> measure RPO/RTO -> compare with the environment's objectives -> drop the scratch
database and stop the server again if the drill started it (always, also on failure).

With ``mode=standby`` it drills the standby instead (:mod:`drkit.ops.standby`): (start the
server) -> catch up to the archive's newest event and prove the time reached by the
heartbeat, as a failover would (the RTO) -> check it against the living source
(:mod:`drkit.ops.standbycheck`, not in the RTO: the source is gone in a failover) ->
measure RPO/RTO -> (stop the server).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import ObjectiveBreachedError, ParameterError
from drkit.mysql.connection import connect, target_server
from drkit.ops.failover_standby import catch_up_and_prove
from drkit.ops.pitr import reached_by, resolve
from drkit.ops.restore import RestoreRequest, run_restore
from drkit.ops.standby import read_position
from drkit.ops.standbycheck import check_standby
from drkit.ops.verify import verify_backup
from drkit.units import duration

# restore: the newest backup into a scratch database; standby: the standby caught up.
DrillMode = Literal["restore", "standby"]


@dataclass
class Objectives:
    rpo_hours: float | None = None
    rto_minutes: float | None = None


class _Judged:
    """A drill's result, judged against its objectives (``breaches``)."""

    breaches: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # the subclasses are dataclasses

    def raise_for_breaches(self) -> None:
        if self.breaches:
            raise ObjectiveBreachedError(
                f"The restore drill breached its objectives: {'; '.join(self.breaches)}.",
                "Look at the backup schedule (RPO) or the restore path's speed (RTO) before "
                "an incident does.")


@dataclass
class DrillResult(_Judged):
    backup: str
    scratch_database: str
    target: str
    backup_taken_at: str
    rpo_seconds: float  # age of the newest data restored when the drill started
    data_reaches: str  # the newest data restored (ISO 8601, UTC)
    reached_by: str  # base only, or base + N transactions replayed
    backup_interval_seconds: float | None  # between the two newest backups
    rto_seconds: float  # selection through proof
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step
    verify: dict[str, Any] = field(default_factory=dict)
    restore: dict[str, Any] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    # The Flexible Server's state changes the drill made: [{"change", "duration_seconds"}]
    server_changes: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The run's key results, for its audit record."""
        return {"mode": "restore", "status": "breached" if self.breaches else "succeeded",
                "backup": self.backup, "compressed_bytes": self.restore["compressed_bytes"],
                "rpo_seconds": self.rpo_seconds, "data_reaches": self.data_reaches,
                "reached_by": self.reached_by, "rto_seconds": self.rto_seconds,
                "backup_interval_seconds": self.backup_interval_seconds, "proof": "passed",
                "breaches": self.breaches}

    def proof_tables(self) -> list[dict[str, Any]]:
        return self.restore["proof"]["tables"]


def drill_in_mode(settings: Settings, mode: str, asked: RestoreRequest,
                  objectives: Objectives) -> DrillResult | StandbyDrillResult:
    """The drill the runbook's ``mode`` names; ParameterError (2) for another mode, or for
    a backup or time given to the standby's (it has its own)."""
    check_drill_choice(mode, asked.backup, asked.until)
    if mode == "restore":
        return run_drill(settings, asked, objectives)
    return run_standby_drill(settings, objectives)


def check_drill_choice(mode: str, backup: str | None, until: str | None) -> None:
    """ParameterError (2) for a mode the drill does not have, or a backup or time given to
    the standby's drill (it drills the standby as it stands). ``drkit run`` checks this
    before papermill starts (:mod:`drkit.runbooks.parameters`), the notebook again."""
    if mode not in get_args(DrillMode):
        raise ParameterError(f"Parameter mode takes {' or '.join(get_args(DrillMode))}, not "
                             f"{mode!r}.", "Pass -p mode=restore or -p mode=standby.")
    if mode == "standby" and (until or backup not in (None, "latest")):
        raise ParameterError("mode=standby drills the standby as it stands: it takes no "
                             "backup or until.", "Leave them out, or use mode=restore.")


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
    reached = datetime.fromisoformat(restored.replay.reached) if restored.replay else \
        entry.taken_at
    result = DrillResult(
        backup=entry.name, scratch_database=scratch, target=server.address,
        backup_taken_at=entry.taken_at.isoformat(),
        rpo_seconds=round((started - reached).total_seconds(), 1),
        data_reaches=reached.isoformat(), reached_by=reached_by(restored.replay),
        backup_interval_seconds=round((newest[1] - newest[0]).total_seconds(), 1)
        if len(newest) == 2 else None,
        rto_seconds=round(rto, 3),
        steps={k: round(v, 3) for k, v in steps.items()},
        verify=verified.as_dict(), restore=restored.as_dict(), server_changes=changes,
    )
    result.breaches = _breaches(objectives, result.rpo_seconds, rto, "the restore")
    log_event("drill.finished", f"Drill {'BREACHED' if result.breaches else 'passed'}: data "
              f"reaches {result.data_reaches} ({result.reached_by}), RPO "
              f"{duration(result.rpo_seconds)}, RTO {duration(result.rto_seconds)}",
              **result.as_dict())
    return result


def _breaches(objectives: Objectives, rpo: float, rto: float, what: str) -> list[str]:
    breaches = []
    if objectives.rpo_hours is not None and rpo > objectives.rpo_hours * 3600:
        breaches.append(f"RPO: the newest data restored was {duration(rpo)} old, the "
                        f"objective is {duration(objectives.rpo_hours * 3600)}")
    if objectives.rto_minutes is not None and rto > objectives.rto_minutes * 60:
        breaches.append(f"RTO: {what} took {duration(rto)}, the objective is "
                        f"{duration(objectives.rto_minutes * 60)}")
    return breaches


@dataclass
class StandbyDrillResult(_Judged):
    """The standby drilled: what a failover to it would have lost and taken now."""

    backup: str  # the base the standby grew from
    target: str
    databases: dict[str, str]  # the source's name -> the standby's
    rpo_seconds: float  # age of the newest data it holds once caught up, at the drill's start
    data_reaches: str  # its newest data (ISO 8601, UTC): the heartbeat's when it beats
    reached_by: str
    rto_seconds: float  # (server start +) catch-up to the archive's newest event + its proof
    steps: dict[str, float] = field(default_factory=dict)
    catch_up: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)  # against the living source
    breaches: list[str] = field(default_factory=list)
    server_changes: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The run's key results, for its audit record."""
        return {"mode": "standby", "status": "breached" if self.breaches else "succeeded",
                "backup": self.backup, "rpo_seconds": self.rpo_seconds,
                "data_reaches": self.data_reaches, "reached_by": self.reached_by,
                "rto_seconds": self.rto_seconds,
                "proof": f"passed: {self.check['tables_checked']} tables equal the source's "
                         f"at {self.check['file']}:{self.check['offset']}",
                "breaches": self.breaches}

    def proof_tables(self) -> list[dict[str, Any]]:
        return self.check["tables"]


def run_standby_drill(settings: Settings, objectives: Objectives | None = None) -> \
        StandbyDrillResult:
    """Drills the standby: caught up to the archive's newest event as a failover would do
    it now (with the heartbeat on, the time it reaches proven by it), then checked against
    the living source; a standby that differs fails the drill (50)."""
    objectives = objectives or Objectives()
    server = target_server(settings)
    started, clock = datetime.now(UTC), time.monotonic()
    changes: list[dict[str, Any]] = []
    steps: dict[str, float] = {}
    with _pilot_light(settings, changes):
        if changes:
            steps["start server"] = changes[0]["duration_seconds"]
        mark = time.monotonic()
        promotion = catch_up_and_prove(settings, server)  # the failover's own step
        steps["catch up"] = time.monotonic() - mark
        rto = time.monotonic() - clock
        mark = time.monotonic()
        checked = check_standby(settings)
        steps["check"] = time.monotonic() - mark
    at = read_position(server)
    assert at is not None  # the catch-up found it
    caught_up, reached = promotion.caught_up, promotion.reached
    result = StandbyDrillResult(
        backup=at.base_backup, target=server.address, databases=at.databases,
        rpo_seconds=round(max(0.0, (started - reached).total_seconds()), 1),
        data_reaches=reached.isoformat(),
        reached_by=f"standby + {caught_up.transactions} transactions caught up"
                   f"{_PROVEN_BY.get(promotion.proven_by, f', by its {promotion.proven_by}')}",
        rto_seconds=round(rto, 3), steps={k: round(v, 3) for k, v in steps.items()},
        catch_up=caught_up.as_dict(), check=checked.as_dict(), server_changes=changes)
    result.breaches = _breaches(objectives, result.rpo_seconds, rto, "the catch-up")
    log_event("drill.finished", f"Standby drill {'BREACHED' if result.breaches else 'passed'}"
              f": data reaches {result.data_reaches} ({result.reached_by}), RPO "
              f"{duration(result.rpo_seconds)}, RTO {duration(result.rto_seconds)}",
              **{k: v for k, v in result.as_dict().items() if k != "check"})
    return result


# How the time the standby's data reaches is known (failover_standby's Promotion.proven_by).
_PROVEN_BY = {"heartbeat": ", proven by its heartbeat",
              "last transaction": "; no heartbeat: the time of its last transaction",
              "base": "; nothing since its base"}


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
