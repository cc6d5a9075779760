"""Doctor's checks of who can destroy backups: the side a config serves with the storage
credential it holds, and the container's immutability policy (docs/immutability.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drkit.azure.credentials import BACKUP_SIDE_PERMISSIONS, storage_credential
from drkit.checks import CRITICAL, OK, WARNING, Check
from drkit.config import Settings
from drkit.secrets import resolver_for

_SPLIT = ("Give the backup host a config of its own with side: backup, storage.auth: sas and "
          f"storage.sas naming a SAS without delete (sp={BACKUP_SIDE_PERMISSIONS}); keep the "
          "account key only where the Azure side runs (drkit doctor --print-policy).")
_SAS_RENEWAL = timedelta(days=14)


def storage_side_checks(settings: Settings) -> list[Check]:
    """Which side ``settings`` serve, and whether its storage credential can delete."""
    resolver = resolver_for(settings)
    credential = storage_credential(settings, resolver, resolver.value(settings.storage.account))
    held = {"key": "the storage account key", "aad": "an Entra ID login",
            "sas": f"a SAS (sp={credential.permissions})"}[credential.kind]
    checks = []
    if settings.side == "azure":
        checks.append(Check("storage side", OK, f"Azure side (prune, drills, failover, the "
                            f"maintenance page) with {held}"))
    elif credential.deletes == "yes":
        where = "the backup side" if settings.side == "backup" else \
            "one config for both sides (side: both), so the backup host"
        checks.append(Check("storage side", WARNING, f"{where} holds {held}, which can delete "
                            "and overwrite every backup: an attacker in the AWS account can "
                            "destroy them", _SPLIT))
    elif credential.deletes == "unknown":
        checks.append(Check("storage side", OK, f"side {settings.side} with {held}: its role "
                            "decides; drkit-backup-writer (--print-policy) cannot delete"))
    else:
        checks.append(Check("storage side", OK, f"side {settings.side} with {held}: cannot "
                            "delete backups, manifests or archived files"))
    if credential.expires is not None:
        left = credential.expires - datetime.now(UTC)
        if left < _SAS_RENEWAL:
            status = CRITICAL if left.total_seconds() <= 0 else WARNING
            checks.append(Check("storage SAS expiry", status,
                                f"the SAS expires {credential.expires:%Y-%m-%d %H:%M} UTC",
                                "Issue a new one and store it where storage.sas refers to."))
    return checks


def immutability_checks(settings: Settings) -> list[Check]:
    """The container's retention policy, as Resource Manager gives it (the Azure side's
    login reads it; the backup host needs no Azure login)."""
    if settings.side == "backup":
        return []
    from drkit.azure.immutability import container_policy

    container = settings.storage.container
    policy = container_policy(settings, container)
    how = ("Turn on blob versioning and version-level immutability on the container, set "
           "its time-based retention (e.g. 30 days) and lock it: docs/immutability.md.")
    if policy is None or policy.days <= 0:
        return [Check("immutable retention", CRITICAL, f"container {container} has no "
                      "time-based retention policy: anyone holding a storage credential that "
                      "can delete removes backups for good", how)]
    if not policy.locked:
        return [Check("immutable retention", WARNING, f"container {container} keeps every "
                      f"version {policy.days} days, but the policy is unlocked: an owner of "
                      "the account can shorten or remove it", "Lock it (az storage container "
                      "immutability-policy lock): docs/immutability.md.")]
    return [Check("immutable retention", OK, f"container {container}: every version kept "
                  f"{policy.days} days, policy Locked")]
