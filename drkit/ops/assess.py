"""Failover assessment: is the primary down, what would we restore, can the DR side take it.

One go/no-go table for the person deciding, built from the primary's RDS status and a
login, the newest verified backup and its age (the data a failover now would lose), and
the DR server's state.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from drkit.aws.rds import instance_status
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.checks import CRITICAL, OK, WARNING, Check
from drkit.config import Settings
from drkit.errors import DrkitError
from drkit.mysql.connection import connect, source_server, target_server


@dataclass
class Assessment:
    decision: str  # GO or NO-GO
    reason: str
    primary_down: bool
    backup: str | None
    backup_age_seconds: float | None
    checks: list[Check] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [asdict(c) for c in self.checks] + [
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
        f"{newest.name}, taken {age / 60:.0f} min ago: a failover now loses the writes since"
        if newest else "none: verify a backup first (drkit verify)"))
    if entries and newest and entries[-1].name != newest.name:
        checks.append(Check("newer unverified backup", WARNING,
                            f"{entries[-1].name} is newer but not verified"))

    dr_ok, dr_detail = _dr_side(settings)
    checks.append(Check("DR server", OK if dr_ok else CRITICAL, dr_detail))

    if not newest:
        decision, reason = "NO-GO", "there is no verified backup to restore"
    elif not dr_ok:
        decision, reason = "NO-GO", "the DR server cannot take the restore"
    elif not primary_down:
        decision, reason = "NO-GO", "the primary looks healthy; failing over would lose data"
    else:
        decision, reason = "GO", "the primary is down and a verified backup can be restored"
    return Assessment(decision=decision, reason=reason, primary_down=primary_down,
                      backup=newest.name if newest else None, backup_age_seconds=age,
                      checks=checks)


def _dr_side(settings: Settings) -> tuple[bool, str]:
    if settings.azure.flexible_server:
        from drkit.azure.flexserver import FlexibleServer

        try:
            state = FlexibleServer(settings).state()
        except DrkitError as error:
            return False, error.message
        startable = state in ("Ready", "Stopped", "Starting")
        return startable, f"{settings.azure.flexible_server}: {state}" + (
            " (will be started)" if state == "Stopped" else "")
    try:
        with contextlib.closing(connect(target_server(settings))):
            return True, f"{settings.target.host}:{settings.target.port} answers"
    except DrkitError as error:
        return False, error.message
