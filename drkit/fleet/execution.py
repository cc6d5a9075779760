"""One fleet step for one member, without Dagster: hold a slot of the member's source (a
verify reads only the storage: none), run the kind's runbook as ``drkit run`` does, and say
how it went, with whether a retry may help.

Only failures of reach are retried: the server, the storage or the secret store not
answering, another run holding the database's lock. What a retry cannot change never is: a
corrupt backup, a failed proof, a refused consent, a bad config.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from drkit.console import log_event
from drkit.errors import DrkitError
from drkit.exitstatus import ExitStatus
from drkit.fleet.description import RUNBOOKS, Fleet, Member
from drkit.fleet.limits import source_slot

TRANSIENT = frozenset({ExitStatus.SECRET_STORE_UNREACHABLE, ExitStatus.SERVER_UNREACHABLE,
                       ExitStatus.STORAGE_FAILED, ExitStatus.LOCK_HELD})
KINDS = ("backup", "verify", "drill")


@dataclass
class StepOutcome:
    member: str
    kind: str
    exit_code: int
    message: str
    run_id: str | None = None
    record: str | None = None
    record_url: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)  # the run's numeric results
    results: dict[str, Any] = field(default_factory=dict)  # the run's results, all of them
    # The catalog's verification outcome of the backup the step wrote or read back
    # (BackupEntry.verified): only "ok" is verified, not the backup side's "ciphertext-ok".
    verified: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitStatus.OK

    @property
    def transient(self) -> bool:
        return self.exit_code in TRANSIENT


def run_step(fleet: Fleet, member_name: str, kind: str) -> StepOutcome:
    """Run ``kind`` for one member inside its source's slot (dumps and restores only: a
    verify reads the storage, not the source)."""
    member = fleet.member(member_name)
    try:
        if kind == "verify":
            return _runbook(fleet, member_name, kind)
        with source_slot(fleet.fleet.state_dir, member.source_key(),
                         fleet.fleet.per_source_concurrency):
            return _runbook(fleet, member_name, kind)
    except DrkitError as error:  # before the runbook ran: its config, its runbook folder
        return StepOutcome(member_name, kind, error.exit_code, str(error))


def _runbook(fleet: Fleet, member_name: str, kind: str) -> StepOutcome:
    from drkit.runbooks.runbook import load_runbook, runbook_dirs
    from drkit.runbooks.runner import RunRequest, run_runbook

    member = fleet.member(member_name)
    settings = member.settings
    runbook = load_runbook(RUNBOOKS[kind], runbook_dirs(settings))
    outcome = run_runbook(settings, member.config, RunRequest(
        runbook, settings_env={"DRKIT_BACKUP__LOCKS": fleet.fleet.locks}))
    run_file = outcome.record / "run.json"
    results = json.loads(run_file.read_text()).get("results") or {} if run_file.exists() \
        else {}
    backup = results.get("backup") if kind in ("backup", "verify") and outcome.exit_code == 0 \
        else None
    return StepOutcome(member_name, kind, outcome.exit_code, outcome.message,
                       run_id=outcome.run_id, record=str(outcome.record),
                       record_url=outcome.record_url, results=results,
                       figures={k: v for k, v in results.items()
                                if isinstance(v, int | float) and not isinstance(v, bool)},
                       verified=catalog_verification(member, backup) if backup else None)


def catalog_verification(member: Member, backup: str) -> str | None:
    """How the catalog holds ``backup`` verified (``BackupEntry.verified``), read after the
    step recorded it; None when the storage cannot be read now (the step itself stands, its
    check does not pass)."""
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import Catalog

    try:
        return Catalog(BackupStore.from_settings(member.settings)).select(backup).verified
    except DrkitError as error:
        log_event("fleet.verification_unread", f"{backup}: its verification could not be "
                  f"read: {error}", logging.WARNING)
        return None
