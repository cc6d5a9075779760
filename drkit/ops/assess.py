"""Failover assessment: is the primary down, what would we restore, can the DR side take it.

One go/no-go table for the person deciding, built from the primary's RDS status and a
login, the newest verified backup and its age (the data a failover now would lose), the
DR server's state, and its standby where it has one (how far behind the archive, or why it
would not be promoted).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drkit.aws.rds import instance_status
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.checks import CRITICAL, OK, WARNING, Check
from drkit.config import Settings
from drkit.errors import DrkitError
from drkit.mysql.connection import connect, source_server, target_server
from drkit.ops.failover_standby import StandbyChoice, examine
from drkit.units import duration


@dataclass
class Assessment:
    decision: str  # GO or NO-GO
    reason: str
    primary_down: bool
    backup: str | None
    backup_age_seconds: float | None
    standby_lag_seconds: float | None = None  # a standby the failover would promote
    checks: list[Check] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [c.as_dict() for c in self.checks] + [
            {"name": "decision", "status": self.decision, "detail": self.reason, "fix": ""}]


def assess(settings: Settings) -> Assessment:
    checks = []
    rds_status = instance_status(settings)
    checks.append(Check("primary RDS instance", OK if rds_status == "available" else CRITICAL,
                        f"{settings.source.rds_instance_id or 'not configured'}: "
                        f"{rds_status or 'not configured'}"))
    try:
        with contextlib.closing(connect(source_server(settings))):
            reachable, detail = True, f"login to {settings.source.host} works"
    except DrkitError as error:
        reachable, detail = False, error.message
    checks.append(Check("primary login", OK if reachable else CRITICAL, detail))
    primary_down = not reachable or rds_status not in (None, "available")

    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    verified = [e for e in entries if e.verified == "ok"]
    newest = verified[-1] if verified else None
    age = (datetime.now(UTC) - newest.taken_at).total_seconds() if newest else None
    checks.append(Check(
        "newest verified backup", OK if newest else CRITICAL,
        f"{newest.name}, taken {duration(age)} ago: a failover now loses the writes since"
        if newest else "none: verify a backup first (drkit verify)"))
    if entries and newest and entries[-1].name != newest.name:
        checks.append(Check("newer unverified backup", WARNING,
                            f"{entries[-1].name} is newer but not verified"))

    dr_ok, dr_detail, dr_running = _dr_side(settings)
    checks.append(Check("DR server", OK if dr_ok else CRITICAL, dr_detail))
    standby = _standby(settings, newest, dr_running) if dr_ok else None
    if standby:
        checks.append(standby[0])
    promoted = standby[1] if standby else None

    if not newest:
        decision, reason = "NO-GO", "there is no verified backup to restore"
    elif not dr_ok:
        decision, reason = "NO-GO", "the DR server cannot take the restore"
    elif not primary_down:
        decision, reason = "NO-GO", "the primary looks healthy; failing over would lose data"
    elif promoted:
        decision, reason = "GO", (f"the primary is down and the standby "
                                  f"{promoted.names()} ({_lag(promoted)} behind the archive) "
                                  "can be caught up and promoted")
    else:
        decision, reason = "GO", "the primary is down and a verified backup can be restored"
    return Assessment(decision=decision, reason=reason, primary_down=primary_down,
                      backup=newest.name if newest else None, backup_age_seconds=age,
                      standby_lag_seconds=promoted.lag_seconds if promoted else None,
                      checks=checks)


def _standby(settings: Settings, newest: BackupEntry | None,
             dr_running: bool) -> tuple[Check, StandbyChoice | None] | None:
    """The target's standby, if it has one, and whether the failover would promote it (a
    standby is examined only on a running server: the assessment changes nothing)."""
    if not dr_running:
        return Check("standby", OK, "the DR server does not run yet: a standby on it is "
                     "examined once the failover has started it"), None
    try:
        databases = load_manifest(BackupStore.from_settings(settings), newest.name).databases \
            if newest else []
        standby = examine(settings, target_server(settings), databases)
    except DrkitError as error:
        return Check("standby", WARNING, f"cannot be examined: {error.message}"), None
    if standby.at is None:
        return None
    if standby.at.promoted:
        return Check("standby", OK, f"{standby.names()} was promoted by "
                     f"{standby.at.promoted}: the failover keeps it"), None
    if standby.promotable:
        return Check("standby", OK, f"{standby.names()} at {standby.at.file}:"
                     f"{standby.at.offset}, {_lag(standby)} behind the archive's newest "
                     "event: the failover catches it up and promotes it"), standby
    return Check("standby", WARNING, f"{standby.names()} cannot be promoted: "
                 f"{standby.why_not}; the failover restores the backup and the archive "
                 "instead"), None


def _lag(standby: StandbyChoice) -> str:
    return "-" if standby.lag_seconds is None else duration(standby.lag_seconds)


def _dr_side(settings: Settings) -> tuple[bool, str, bool]:
    """Whether the DR server can take the restore, as a sentence, and whether it runs."""
    if settings.azure.flexible_server:
        from drkit.azure.flexserver import FlexibleServer

        try:
            state = FlexibleServer(settings).state()
        except DrkitError as error:
            return False, error.message, False
        startable = state in ("Ready", "Stopped", "Starting")
        return startable, f"{settings.azure.flexible_server}: {state}" + (
            " (will be started)" if state == "Stopped" else ""), state == "Ready"
    try:
        with contextlib.closing(connect(target_server(settings))):
            return True, f"{settings.target.host}:{settings.target.port} answers", True
    except DrkitError as error:
        return False, error.message, False
