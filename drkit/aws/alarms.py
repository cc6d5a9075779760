"""CloudWatch alarms on the backups: failure, and the newest verified backup older than the RPO.

The seed's only alarm watched the EC2 instance, not the backups. These fire when backups stop
succeeding or get older than the recovery point objective; missing data counts as breaching,
because no data means nothing is running.
"""

from __future__ import annotations

import math
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.clients import boto_client
from drkit.config import Settings
from drkit.errors import AwsRefusedError
from drkit.units import duration


def install_alarms(settings: Settings, environment: str, backup_interval: timedelta,
                   rpo: timedelta, sns_topic: str | None = None) -> list[str]:
    """Alarms per database: no successful backup within ``backup_interval``, and the newest
    verified backup older than ``rpo``."""
    # A period may not exceed a day; longer intervals are spread over several periods.
    seconds = max(60, math.ceil(backup_interval.total_seconds() / 60) * 60)
    period, periods = min(seconds, 86400), math.ceil(seconds / 86400)
    actions = {"AlarmActions": [sns_topic], "OKActions": [sns_topic]} if sns_topic else {}
    cloudwatch = boto_client(settings.aws, "cloudwatch")
    names = []
    for database in settings.source.databases:
        dimensions = [{"Name": "Database", "Value": database},
                      {"Name": "Environment", "Value": environment}]
        alarms = [
            {"AlarmName": f"drkit-{environment}-{database}-backup-failure",
             "AlarmDescription": f"No successful backup of {database} in the last "
                                 f"{duration(seconds)} (a failure, or no run at all).",
             "MetricName": "BackupSuccess", "Statistic": "Sum", "Period": period,
             "EvaluationPeriods": periods, "Threshold": 1,
             "ComparisonOperator": "LessThanThreshold"},
            {"AlarmName": f"drkit-{environment}-{database}-rpo",
             "AlarmDescription": f"The newest verified backup of {database} is older than the "
                                 f"RPO of {duration(rpo.total_seconds())}.",
             "MetricName": "NewestVerifiedBackupAgeSeconds", "Statistic": "Maximum",
             "Period": period, "EvaluationPeriods": periods,
             "Threshold": rpo.total_seconds(), "ComparisonOperator": "GreaterThanThreshold"},
        ]
        if settings.binlog.enabled:  # the point-in-time recovery point
            alarms.append(
                {"AlarmName": f"drkit-{environment}-{database}-binlog-lag",
                 "AlarmDescription": f"The binlog archive of {database} is more than "
                                     f"{duration(settings.binlog.lag_alarm_seconds)} behind "
                                     "(or the streamer stopped).",
                 "MetricName": "BinlogArchiveLagSeconds", "Statistic": "Maximum",
                 "Period": 60, "EvaluationPeriods": 5,
                 "Threshold": settings.binlog.lag_alarm_seconds,
                 "ComparisonOperator": "GreaterThanThreshold"})
        for alarm in alarms:
            try:
                cloudwatch.put_metric_alarm(Namespace=settings.metrics.namespace,
                                            Dimensions=dimensions, TreatMissingData="breaching",
                                            **alarm, **actions)
            except ClientError as exc:
                raise AwsRefusedError(f"CloudWatch refused alarm {alarm['AlarmName']}: {exc}.",
                                      "Grant cloudwatch:PutMetricAlarm (drkit doctor "
                                      "--print-policy).") from None
            except BotoCoreError as exc:
                raise AwsRefusedError(f"CloudWatch did not answer for alarm "
                                      f"{alarm['AlarmName']}: {exc}.",
                                      "Check aws.region and aws.endpoint_url in the config, and "
                                      "the network to AWS.") from None
            names.append(alarm["AlarmName"])
    return names
