"""The fleet's sensors (no ``from __future__ import annotations``: Dagster reads the context
annotations):

- ``drkit_run_failure``: once per failed run (Dagster's cursor), the verdict sentence (the
  failed step's, as ``drkit fleet run`` prints it) posted as JSON to ``fleet.failure_webhook``
  and counted in the member's CloudWatch metrics (``FleetRunFailure``, beside the
  ``BackupFailure`` a failed backup publishes itself);
- ``drkit_archive_lag``: every minute, each member's binlog archive lag against its
  objective, reported as the ``archive_lag`` check of ``backup`` (failed past it). The
  streamers are long-running services outside Dagster (``drkit schedule unit``); this only
  watches what they archived.
"""

import json
import logging
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime

import dagster as dg

from drkit.console import log_event
from drkit.errors import ConfigError, DrkitError
from drkit.fleet.description import Fleet
from drkit.fleet.state import MemberState, member_state

FAILURE_SENSOR = "drkit_run_failure"
LAG_SENSOR = "drkit_archive_lag"
LAG_CHECK = "archive_lag"
WEBHOOK_TIMEOUT = 10  # seconds: an alert that cannot be posted is logged, never retried


def failure_sensor(fleet: Fleet) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name=FAILURE_SENSOR, default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Posts each failed run's verdict to the fleet's "
                                       "webhook and counts it in the member's metrics.")
    def report_failure(context: dg.RunFailureSensorContext) -> None:
        member = context.dagster_run.tags.get("dagster/partition")
        sentence = verdict(context.dagster_run.job_name, member, _step_failure(context))
        context.log.info(sentence)
        post_verdict(fleet, {"text": sentence, "member": member,
                             "job": context.dagster_run.job_name,
                             "run_id": context.dagster_run.run_id})
        if member in fleet.members:
            _count_failure(fleet, member)

    return report_failure


def verdict(job: str, member: str | None, failure: str) -> str:
    """The one sentence a person reads: which job failed for whom, and drkit's reason."""
    kind = job.removesuffix("_job")
    return f"drkit fleet: {kind} failed for {member or 'the fleet'}: {failure}"


def _step_failure(context: dg.RunFailureSensorContext) -> str:
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return data.user_failure_data.description  # drkit's: "member: sentence (exit N)"
        if data.error:
            return data.error.message.strip()
    return context.failure_event.message or "the run failed"


def post_verdict(fleet: Fleet, payload: dict[str, str | None]) -> bool:
    """POST ``payload`` as JSON to the fleet's webhook; False (logged, never raised) when
    there is none or it did not take it. The URL is never logged: it is a credential."""
    url = webhook_url(fleet)
    if url is None:
        return False
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "code", None) or type(exc).__name__
        log_event("fleet.webhook_failed", f"The fleet's failure webhook did not take the "
                  f"verdict ({reason}); it is in Dagster's log", logging.WARNING)
        return False
    return True


def webhook_url(fleet: Fleet) -> str | None:
    """``fleet.failure_webhook``: the URL, or ``env:NAME`` for one kept out of fleet.yaml."""
    configured = fleet.fleet.failure_webhook
    if configured is None or not configured.startswith("env:"):
        return configured
    name = configured.removeprefix("env:")
    if not os.environ.get(name):
        raise ConfigError(f"fleet.failure_webhook names the environment variable {name}, "
                          "which is not set.", f"Set {name} where Dagster runs.")
    return os.environ[name]


def _count_failure(fleet: Fleet, member: str) -> None:
    from drkit.aws import metrics

    try:
        settings = fleet.members[member].settings
    except DrkitError as error:  # its config is what failed: the webhook said so
        log_event("fleet.metrics_skipped", f"{member}: no failure metric: {error}",
                  logging.WARNING)
        return
    metrics.publish(settings, list(settings.source.databases),
                    {"FleetRunFailure": (1, "Count")}, timeout=WEBHOOK_TIMEOUT)


def lag_check(fleet: Fleet) -> dg.AssetChecksDefinition:
    """The ``archive_lag`` check, run by ``archive_lag_job`` or reported by the sensor."""

    @dg.asset_check(asset="backup", name=LAG_CHECK,
                    description="Every streaming member's binlog archive is within its lag "
                                "objective.")
    def archive_lag() -> dg.AssetCheckResult:
        evaluation = lag_evaluation(fleet)
        return dg.AssetCheckResult(passed=evaluation.passed, severity=evaluation.severity,
                                   description=evaluation.description,
                                   metadata=evaluation.metadata)

    return archive_lag


def lag_sensor(fleet: Fleet) -> dg.SensorDefinition:
    @dg.sensor(name=LAG_SENSOR, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Reads each member's binlog archive lag; fails archive_lag past "
                           "its objective.")
    def watch_lag() -> dg.SensorResult:
        return dg.SensorResult(asset_events=[lag_evaluation(fleet)])

    return watch_lag


def lag_evaluation(fleet: Fleet) -> dg.AssetCheckEvaluation:
    """Every member with a binlog archive against its lag objective, read from storage."""
    now = datetime.now(UTC)
    states = [member_state(name, member, True, now)
              for name, member in sorted(fleet.members.items())]
    streaming = [s for s in states if s.lag_objective_seconds is not None]
    behind = {s.member: s.lag_problem for s in streaming if s.lag_problem}
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("backup"), check_name=LAG_CHECK, passed=not behind,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("behind: " + ", ".join(behind)) if behind else "all within objective",
        metadata={"behind": dg.MetadataValue.json(behind),
                  "lag_seconds": dg.MetadataValue.json(_lags(streaming)),
                  "members_checked": dg.MetadataValue.int(len(streaming))})


def _lags(states: list[MemberState]) -> dict[str, float | None]:
    return {s.member: s.archive_lag_seconds for s in states}
