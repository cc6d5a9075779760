"""The backup container's time-based retention (immutability) policy, read from Resource
Manager: with version-level immutability and versioning on, no blob version can be deleted
or changed before its retention ends, whoever holds a storage credential.

Blob Storage itself does not say whether a container's policy is locked; Resource Manager's
``blobServices/default/containers/C/immutabilityPolicies/default`` does (Azurite has no
immutability: the sandbox's Resource Manager stand-in answers this read).
"""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import AzureError

from drkit.azure.flexserver import arm_get, storage_account_resource
from drkit.config import Settings
from drkit.errors import AzureControlError, ConfigError

API_VERSION = "2023-05-01"


@dataclass(frozen=True)
class RetentionPolicy:
    days: int  # immutabilityPeriodSinceCreationInDays
    state: str  # "Locked" or "Unlocked" (an unlocked one can be shortened or deleted)

    @property
    def locked(self) -> bool:
        return self.state == "Locked"


def container_policy(settings: Settings, container: str) -> RetentionPolicy | None:
    """The container's retention policy; None where it has none (ARM answers 404, or a
    policy in state Deleted). ConfigError without a resource group to look in;
    AzureControlError where Resource Manager refused or failed."""
    account = storage_account_resource(settings)
    if account is None:
        raise ConfigError("The immutability policy cannot be read: no resource group names "
                          "where the storage account is.",
                          "Set storage.resource_group (or azure.resource_group).")
    try:
        found = arm_get(settings, f"{account}/blobServices/default/containers/{container}/"
                                  "immutabilityPolicies/default", API_VERSION)
    except AzureError as exc:
        raise AzureControlError(f"Resource Manager did not give container {container}'s "
                                f"immutability policy ({type(exc).__name__}: "
                                f"{getattr(exc, 'reason', '') or exc}).",
                                "Give the Azure side's login Reader on the storage account "
                                "(Microsoft.Storage/storageAccounts/blobServices/containers/"
                                "immutabilityPolicies/read).") from None
    properties = (found or {}).get("properties") or {}
    if not found or properties.get("state") == "Deleted":
        return None
    return RetentionPolicy(int(properties.get("immutabilityPeriodSinceCreationInDays") or 0),
                           str(properties.get("state") or "Unlocked"))
