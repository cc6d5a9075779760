"""CloudWatch metrics per database. Publishing never fails a backup: it only warns."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.clients import boto_client
from drkit.config import Settings
from drkit.console import log_event


def publish(settings: Settings, databases: list[str], values: dict[str, tuple[float, str]],
            timeout: float | None = None) -> bool:
    """Put ``{metric: (value, unit)}`` for each database; return whether CloudWatch took them.
    ``timeout``: give up within seconds (one try) where waiting would hold other work up."""
    if not settings.metrics.enabled:
        return False
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": "Database", "Value": database},
                           {"Name": "Environment", "Value": settings.environment}],
            "Value": value,
            "Unit": unit,
        }
        for database in databases
        for name, (value, unit) in values.items()
    ]
    try:
        boto_client(settings.aws, "cloudwatch", timeout).put_metric_data(
            Namespace=settings.metrics.namespace, MetricData=data)
    except (BotoCoreError, ClientError) as exc:
        log_event("metrics.failed", f"CloudWatch metrics were not published: {exc}",
                  logging.WARNING)
        return False
    return True
