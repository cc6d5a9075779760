"""The source's RDS instance as AWS reports it, for the failover's assessment."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.clients import boto_client
from drkit.config import Settings


def instance_status(settings: Settings) -> str | None:
    """The RDS status of ``source.rds_instance_id`` (``available``, ...), or what kept it
    from being read; None where no instance is configured."""
    if not settings.source.rds_instance_id:
        return None
    try:
        instances = boto_client(settings.aws, "rds", settings.secret_timeout_seconds) \
            .describe_db_instances(DBInstanceIdentifier=settings.source.rds_instance_id)[
                "DBInstances"]
    except BotoCoreError as exc:
        # The day this runs, AWS not answering is what is expected: evidence, not an error.
        return f"unknown: AWS does not answer ({exc.__class__.__name__}), a sign of the outage"
    except ClientError as exc:
        return f"not readable ({exc.__class__.__name__})"
    return instances[0]["DBInstanceStatus"] if instances else "missing"
