"""The age of the newest backup and of the newest verified one, published as metrics.

Runs publish these after each backup; ``drkit monitor publish`` can too (from cron or a
health check), so the alarms of :mod:`drkit.aws.alarms` see the real recovery point. The
backup side cannot check the Azure side's signed verdicts; it publishes the age of the
newest one all the same (drkit.azure.catalog.fresh_verdicts).
"""

from __future__ import annotations

from datetime import UTC, datetime

from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, fresh_verdicts
from drkit.config import Settings


def backup_ages(settings: Settings) -> dict[str, float]:
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    now = datetime.now(UTC)
    ages = {}
    if entries:
        ages["NewestBackupAgeSeconds"] = (now - entries[-1].taken_at).total_seconds()
    verified = [e for e in entries if e.verified in fresh_verdicts(settings.side)]
    if verified:
        ages["NewestVerifiedBackupAgeSeconds"] = (now - verified[-1].taken_at).total_seconds()
    return ages


def publish_ages(settings: Settings) -> dict[str, float]:
    ages = backup_ages(settings)
    metrics.publish(settings, list(settings.source.databases),
                    {name: (value, "Seconds") for name, value in ages.items()})
    return ages
