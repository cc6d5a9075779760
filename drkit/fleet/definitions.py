"""The fleet as Dagster definitions: the code location ``dagster dev -m drkit.fleet`` loads
(no ``from __future__ import annotations``: Dagster reads the context annotations).

- assets ``backup``, ``verify``, ``drill``, partitioned by member: a materialisation is one
  drkit run of that member (``backup`` and ``drill`` its runbook, with the audit record;
  ``verify`` its newest backup read back), its record's URL and figures as metadata;
- asset checks: ``verified`` (the backup run's own verification) and ``proof`` (the drill's),
  ``rpo``: every member's newest verified backup against its RPO, read from storage, and
  ``archive_lag`` (:mod:`drkit.fleet.sensors`, with the run-failure sensor);
- retries: only a transient failure (:data:`drkit.fleet.execution.TRANSIENT`) asks for one,
  with a doubling backoff; any other failure fails the partition at once;
- schedules: one per runbook kind and cron, each asking for the members on that cron; runs
  carry a ``drkit/source`` tag for the run coordinator's per-source limit.
"""

import logging
from collections import defaultdict
from datetime import UTC, datetime

import dagster as dg

from drkit.console import log_event
from drkit.errors import DrkitError
from drkit.fleet.description import RUNBOOKS, Fleet, Member
from drkit.fleet.execution import KINDS, StepOutcome, run_step
from drkit.fleet.sensors import failure_sensor, lag_check, lag_sensor
from drkit.fleet.state import member_state
from drkit.runbooks.runbook import Runbook, load_runbook

SOURCE_TAG = "drkit/source"
# Every fleet step takes a slot of this Dagster pool: its limit (dagster.yaml, concurrency:
# pools) is the fleet's global limit under a daemon. The per-source limit is the run
# coordinator's, by SOURCE_TAG (a pool is an asset's, and one asset spans every source).
POOL = "drkit"
RPO_CHECK_CRON = "*/15 * * * *"  # how often every member's recovery point is looked at
_CHECKS = {"backup": ("verified", "the catalog holds the run's backup verified (read back in "
                                  "full; the backup side's ciphertext check is not)"),
           "verify": ("verified", "the catalog holds the newest backup verified"),
           "drill": ("proof", "the drill restored the backup and proved it table by table")}


def build_definitions(fleet: Fleet) -> dg.Definitions:
    partitions = dg.StaticPartitionsDefinition(sorted(fleet.members))
    assets = [_asset(fleet, kind, partitions) for kind in KINDS]
    rpo, lag = _rpo_check(fleet), lag_check(fleet)
    # A partition's run carries its asset's own checks; the fleet-wide checks read every
    # member's storage, so they run on their own (a schedule, a sensor), not in each
    # partition's run.
    fleet_wide = dg.AssetSelection.checks(rpo, lag)
    jobs = [dg.define_asset_job(f"{kind}_job", selection=dg.AssetSelection.assets(kind)
                                - fleet_wide) for kind in KINDS]
    rpo_job = dg.define_asset_job("rpo_job", selection=dg.AssetSelection.checks(rpo))
    lag_job = dg.define_asset_job("archive_lag_job", selection=dg.AssetSelection.checks(lag))
    rpo_schedule = dg.ScheduleDefinition(name="rpo_schedule", cron_schedule=RPO_CHECK_CRON,
                                         job=rpo_job, execution_timezone="UTC")
    return dg.Definitions(assets=assets, asset_checks=[rpo, lag],
                          jobs=[*jobs, rpo_job, lag_job],
                          schedules=[*_schedules(fleet, {j.name: j for j in jobs}),
                                     rpo_schedule],
                          sensors=[failure_sensor(fleet), lag_sensor(fleet)])


def _asset(fleet: Fleet, kind: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    check = _CHECKS.get(kind)
    specs = [dg.AssetCheckSpec(check[0], asset=kind, description=check[1])] if check else []

    @dg.asset(name=kind, partitions_def=partitions, check_specs=specs, group_name="drkit",
              deps=[] if kind == "backup" else ["backup"], pool=POOL,
              description=f"One member's {kind} ({RUNBOOKS.get(kind, 'drkit verify')}).")
    def materialise(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        outcome = run_step(fleet, context.partition_key, kind)
        metadata = _metadata(outcome)
        if outcome.ok:
            return dg.MaterializeResult(metadata=metadata, check_results=_check_results(
                kind, outcome))
        retry = fleet.fleet.retry
        if outcome.transient and context.retry_number < retry.max_retries:
            context.log.warning(f"{outcome.member}: {outcome.message} (exit "
                                f"{outcome.exit_code}, transient: retrying)")
            raise dg.RetryRequested(max_retries=retry.max_retries,
                                    seconds_to_wait=retry.backoff_seconds
                                    * 2 ** context.retry_number)
        raise dg.Failure(description=f"{outcome.member}: {outcome.message} "
                         f"(exit {outcome.exit_code})", metadata=metadata,
                         allow_retries=False)

    return materialise


def _metadata(outcome: StepOutcome) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "exit_code": dg.MetadataValue.int(int(outcome.exit_code)),
        "message": dg.MetadataValue.text(outcome.message)}
    if outcome.run_id:
        metadata["run_id"] = dg.MetadataValue.text(outcome.run_id)
    if outcome.record:
        metadata["record"] = dg.MetadataValue.path(outcome.record)
    if outcome.record_url:
        metadata["record_url"] = dg.MetadataValue.url(outcome.record_url)
    for name, value in outcome.figures.items():
        metadata[name] = dg.MetadataValue.float(float(value))
    return metadata


def _check_results(kind: str, outcome: StepOutcome) -> list[dg.AssetCheckResult]:
    if kind in ("backup", "verify"):
        return [verified_check(outcome.verified)]
    if kind == "drill":
        proof = outcome.results.get("proof")
        return [dg.AssetCheckResult(check_name="proof", passed=proof == "passed",
                                    metadata={"proof": str(proof)})]
    return []


def verified_check(verified: str | None) -> dg.AssetCheckResult:
    """The ``verified`` check from the catalog's outcome of the step's backup: passed when
    it is verified ("ok"); a backup only checked as ciphertext (the backup side, no
    identity) is a warning until the Azure side reads it back."""
    from drkit.azure.catalog import CIPHERTEXT_OK  # the Azure SDK: not at the location's load

    if verified == CIPHERTEXT_OK:
        return dg.AssetCheckResult(
            check_name="verified", passed=False, severity=dg.AssetCheckSeverity.WARN,
            description="checked as ciphertext on the backup side (size, sha256): not "
                        "verified until the Azure side reads it back (verify, drill)",
            metadata={"verified": verified})
    return dg.AssetCheckResult(
        check_name="verified", passed=verified == "ok",
        description=None if verified == "ok" else
        "its verification could not be read" if verified is None else
        f"the catalog holds it {verified}",
        metadata={"verified": str(verified)})


def _rpo_check(fleet: Fleet) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset="backup", name="rpo",
                    description="Every member's newest verified backup is within its RPO.")
    def rpo() -> dg.AssetCheckResult:
        states = [member_state(name, member, True, datetime.now(UTC))
                  for name, member in sorted(fleet.members.items())
                  if member.objectives.rpo_minutes is not None]
        stale = {s.member: s.rpo_problem for s in states if s.rpo_problem}
        return dg.AssetCheckResult(
            passed=not stale, severity=dg.AssetCheckSeverity.ERROR,
            description=("stale: " + ", ".join(stale)) if stale else "all within their RPO",
            metadata={"stale": dg.MetadataValue.json(stale),
                      "members_checked": dg.MetadataValue.int(len(states))})

    return rpo


def _schedules(fleet: Fleet, jobs: dict[str, dg.JobDefinition]) -> list[dg.ScheduleDefinition]:
    """One schedule per (kind, cron), asking for a run per member on that cron."""
    by_cron: dict[tuple[str, str], list[str]] = defaultdict(list)
    crons = _MemberCrons()
    for name, member in sorted(fleet.members.items()):
        for kind, runbook in RUNBOOKS.items():
            if cron := crons.of(member, runbook):
                by_cron[(kind, cron)].append(name)
    schedules = []
    for number, ((kind, cron), members) in enumerate(sorted(by_cron.items())):
        schedules.append(_schedule(fleet, f"{kind}_schedule_{number}", cron,
                                   jobs[f"{kind}_job"], members))
    return schedules


class _MemberCrons:
    """A member's cron for a runbook, as ``drkit schedule`` would write it for the member's
    config: none when the runbook is not its side's (the backup side's members schedule the
    nightly, the Azure side's the verify and the drill, a config of both sides all); else the
    member's own from fleet.yaml, else the runbook's for the member's environment (the
    seed's defaults). Each runbook is read once per folder."""

    def __init__(self) -> None:
        self._runbooks: dict[tuple[str, tuple], Runbook] = {}

    def of(self, member: Member, runbook_name: str) -> str | None:
        try:
            environment, side, folders = member.runbook_context()
        except DrkitError as error:  # one broken member never stops the code location
            log_event("fleet.member_unscheduled", f"{member.config}: not scheduled: {error}",
                      logging.WARNING)
            return None
        key = (runbook_name, tuple(folders))
        if key not in self._runbooks:
            self._runbooks[key] = load_runbook(runbook_name, folders)
        runbook = self._runbooks[key]
        if not runbook.runs_on(side):
            if runbook_name in member.schedules:
                log_event("fleet.schedule_ignored", f"{member.config}: its {runbook_name} "
                          f"schedule is ignored: the runbook runs on the {runbook.side} side "
                          f"and the member is the {side} side's", logging.WARNING)
            return None
        run = runbook.environments.get(environment)
        return member.schedules.get(runbook_name) or (run.schedule if run else None)


def _schedule(fleet: Fleet, name: str, cron: str, job: dg.JobDefinition,
              members: list[str]) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, cron_schedule=cron, job=job, execution_timezone="UTC",
                 description=f"{cron} (UTC): {', '.join(members)}")
    def requests(context: dg.ScheduleEvaluationContext):
        moment = context.scheduled_execution_time
        for member in members:
            yield dg.RunRequest(partition_key=member, run_key=f"{member}-{moment:%Y%m%dT%H%M}",
                                tags={SOURCE_TAG: fleet.member(member).source_key()})

    return requests
