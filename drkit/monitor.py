"""Monitoring of what matters: the age of the newest (verified) backup, and alarms on it.

The seed's only alarm watched the EC2 instance, not the backups. Here runs publish the
backup ages, ``drkit monitor publish`` can too (from cron or a health check), and
``install-alarms`` creates CloudWatch alarms that fire when backups stop succeeding or get
older than the recovery point objective; missing data counts as breaching, because no data
means nothing is running.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from drkit import aws, metrics
from drkit.blobstore import BackupStore
from drkit.catalog import Catalog
from drkit.config import Settings
from drkit.errors import DrkitError
from drkit.runbooks import load_runbook, schedule_interval
from drkit.secrets import SecretResolver


def backup_ages(settings: Settings) -> dict[str, float]:
    store = BackupStore.from_settings(settings, SecretResolver(settings))
    entries = Catalog(store).entries()
    now = datetime.now(UTC)
    ages = {}
    if entries:
        ages["NewestBackupAgeSeconds"] = (now - entries[-1].taken_at).total_seconds()
    verified = [e for e in entries if e.verified == "ok"]
    if verified:
        ages["NewestVerifiedBackupAgeSeconds"] = (now - verified[-1].taken_at).total_seconds()
    return ages


def publish_ages(settings: Settings) -> dict[str, float]:
    ages = backup_ages(settings)
    metrics.publish(settings, list(settings.source.databases),
                    {name: (value, "Seconds") for name, value in ages.items()})
    return ages


def rpo_limit(settings: Settings, environment: str) -> timedelta:
    """The drill's RPO objective for the environment, else one backup interval plus an hour."""
    drill = load_runbook("restore-drill")
    hours = drill.parameters_for(environment, {}).get("rpo_hours") \
        if environment in drill.environments else None
    if hours:
        return timedelta(hours=hours)
    interval = schedule_interval("nightly-backup", environment) or timedelta(days=1)
    return interval + timedelta(hours=1)


def install_alarms(settings: Settings, environment: str,
                   sns_topic: str | None = None) -> list[str]:
    interval = schedule_interval("nightly-backup", environment) or timedelta(days=1)
    # A period may not exceed a day; longer intervals are spread over several periods.
    seconds = max(60, math.ceil(interval.total_seconds() / 60) * 60)
    period, periods = min(seconds, 86400), math.ceil(seconds / 86400)
    rpo = rpo_limit(settings, environment)
    actions = {"AlarmActions": [sns_topic], "OKActions": [sns_topic]} if sns_topic else {}
    cloudwatch = aws.client(settings.aws, "cloudwatch")
    names = []
    for database in settings.source.databases:
        dimensions = [{"Name": "Database", "Value": database},
                      {"Name": "Environment", "Value": environment}]
        alarms = [
            {"AlarmName": f"drkit-{environment}-{database}-backup-failure",
             "AlarmDescription": f"No successful backup of {database} in the last "
                                 f"{seconds // 60} minutes (a failure, or no run at all).",
             "MetricName": "BackupSuccess", "Statistic": "Sum", "Period": period,
             "EvaluationPeriods": periods, "Threshold": 1,
             "ComparisonOperator": "LessThanThreshold"},
            {"AlarmName": f"drkit-{environment}-{database}-rpo",
             "AlarmDescription": f"The newest verified backup of {database} is older than the "
                                 f"RPO of {rpo.total_seconds() / 3600:g} h.",
             "MetricName": "NewestVerifiedBackupAgeSeconds", "Statistic": "Maximum",
             "Period": period, "EvaluationPeriods": periods,
             "Threshold": rpo.total_seconds(), "ComparisonOperator": "GreaterThanThreshold"},
        ]
        for alarm in alarms:
            try:
                cloudwatch.put_metric_alarm(Namespace=settings.metrics.namespace,
                                            Dimensions=dimensions, TreatMissingData="breaching",
                                            **alarm, **actions)
            except (BotoCoreError, ClientError) as exc:
                raise DrkitError(f"CloudWatch refused alarm {alarm['AlarmName']}: {exc}.",
                                 "Grant cloudwatch:PutMetricAlarm (drkit doctor "
                                 "--print-policy).") from None
            names.append(alarm["AlarmName"])
    return names
