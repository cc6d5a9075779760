"""Each member's recovery state against its objectives, as ``drkit fleet show`` prints it.

Read from where drkit keeps the truth, whoever made it (the fleet, cron, a person): the
member's backup container (newest backup, newest verified), its binlog archive (lag) and
its local audit records (last drill). Dagster is not needed for any of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.errors import BackupNotFoundError, DrkitError
from drkit.fleet.description import Fleet, Member

OK, BREACHED, UNKNOWN = "ok", "breached", "unknown"


@dataclass
class MemberState:
    member: str
    config: str
    source: str | None = None
    databases: list[str] = field(default_factory=list)
    newest_backup: str | None = None
    newest_backup_age_seconds: float | None = None
    newest_verified: str | None = None
    newest_verified_age_seconds: float | None = None
    archive_lag_seconds: float | None = None
    last_drill: str | None = None  # its run id
    last_drill_status: str | None = None
    last_drill_age_seconds: float | None = None
    rpo_minutes: float | None = None
    drill_days: float | None = None
    rpo_problem: str | None = None  # why the RPO objective is missed
    lag_objective_seconds: float | None = None  # a member with a binlog archive
    lag_problem: str | None = None  # why the archive lag objective is missed
    status: str = UNKNOWN  # ok, breached (an objective missed) or unknown (not read)
    problems: list[str] = field(default_factory=list)
    exit_code: int | None = None  # unknown: the code of the error that kept it from being read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fleet_state(fleet: Fleet, read_storage: bool = True,
                now: datetime | None = None) -> list[MemberState]:
    """One state per member, in name order; ``read_storage=False`` lists the members and
    their objectives from fleet.yaml alone (no config read, no service touched)."""
    now = now or datetime.now(UTC)
    return [member_state(name, fleet.members[name], read_storage, now)
            for name in sorted(fleet.members)]


def member_state(name: str, member: Member, read_storage: bool, now: datetime) -> MemberState:
    state = MemberState(member=name, config=str(member.config),
                        rpo_minutes=member.objectives.rpo_minutes,
                        drill_days=member.objectives.drill_days)
    if not read_storage:
        return state
    try:
        settings = member.settings
        state.source, state.databases = member.source_key(), list(settings.source.databases)
        _read_backups(state, settings, now)
        _read_last_drill(state, settings.backup.state_dir.expanduser() / "audit", now)
        if settings.binlog.enabled:
            lag_minutes = member.objectives.archive_lag_minutes
            state.lag_objective_seconds = settings.binlog.lag_alarm_seconds \
                if lag_minutes is None else lag_minutes * 60
            _read_archive_lag(state, settings, now)
    except DrkitError as error:  # one member's broken storage never hides the others
        state.problems.append(str(error))
        state.exit_code = error.exit_code
        if state.rpo_minutes is not None:  # a recovery point nobody can see is not one
            state.rpo_problem = f"its backups cannot be read: {error}"
        return state
    judge(state)
    return state


def _read_backups(state: MemberState, settings, now: datetime) -> None:
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import Catalog

    catalog = Catalog(BackupStore.from_settings(settings))
    entries = catalog.entries()
    if entries:
        state.newest_backup = entries[-1].name.rsplit("/", 1)[-1]
        state.newest_backup_age_seconds = round((now - entries[-1].taken_at).total_seconds())
    try:  # the catalog's own notion of verified (the backup side's ciphertext check is not)
        verified = catalog.select("latest-verified", entries)
    except BackupNotFoundError:
        return
    state.newest_verified = verified.name.rsplit("/", 1)[-1]
    state.newest_verified_age_seconds = round((now - verified.taken_at).total_seconds())


def _read_archive_lag(state: MemberState, settings, now: datetime) -> None:
    from drkit.azure.blobstore import BackupStore
    from drkit.binlog.records import Archive

    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    newest = archive.indexed().newest_event_at  # a few requests, whatever the archive's size
    if newest:
        state.archive_lag_seconds = round(
            (now - datetime.fromisoformat(newest)).total_seconds(), 1)


def _read_last_drill(state: MemberState, audit: Path, now: datetime) -> None:
    """The newest finished restore-drill record in the member's local audit folder."""
    for path in sorted(audit.glob("restore-drill/*/*/*/*/run.json"),
                       key=lambda p: p.parent.name, reverse=True):  # run ids sort by time
        run = json.loads(path.read_text())
        if run.get("status") in ("succeeded", "failed") and run.get("ended_at"):
            state.last_drill, state.last_drill_status = run["run_id"], run["status"]
            state.last_drill_age_seconds = round(
                (now - datetime.fromisoformat(run["ended_at"])).total_seconds())
            return


def judge(state: MemberState) -> None:
    """``breached`` with a sentence per objective missed, else ``ok``."""
    if state.rpo_minutes is not None:
        age = state.newest_verified_age_seconds
        if age is None:
            state.rpo_problem = "no verified backup"
        elif age > state.rpo_minutes * 60:
            state.rpo_problem = (f"newest verified backup is {age / 60:.0f} min old "
                                 f"(RPO {state.rpo_minutes:g} min)")
        state.problems += [state.rpo_problem] if state.rpo_problem else []
    if state.lag_objective_seconds is not None:
        lag = state.archive_lag_seconds
        if lag is None:
            state.lag_problem = "its binlog archive is empty"
        elif lag > state.lag_objective_seconds:
            state.lag_problem = (f"binlog archive is {lag:.0f} s behind (objective "
                                 f"{state.lag_objective_seconds:g} s)")
        state.problems += [state.lag_problem] if state.lag_problem else []
    if state.drill_days is not None:
        age = state.last_drill_age_seconds
        if age is None or state.last_drill_status != "succeeded":
            state.problems.append("no good drill" if age is None else "last drill failed")
        elif age > state.drill_days * 86400:
            state.problems.append(f"last drill was {age / 86400:.1f} days ago "
                                  f"(objective {state.drill_days:g} days)")
    state.status = BREACHED if state.problems else OK
