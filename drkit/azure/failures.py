"""What an Azure Storage failure means: one sentence, with the fix where the cause is known.

The one translation of the Storage SDK's exceptions into drkit's errors; a store applies it
to everything it does (:meth:`drkit.azure.blobstore.BackupStore.translated_errors`).
"""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
)

from drkit.errors import (
    BlobLockedError,
    ContainerMissingError,
    DrkitError,
    StorageAuthError,
    StorageError,
)


def storage_failure(exc: AzureError, account: str, where: str, endpoint: str) -> DrkitError:
    """``exc`` as a drkit error: ``where`` names the container (and account) asked,
    ``endpoint`` the service's address."""
    code = getattr(exc, "error_code", None) or ""
    code = str(getattr(code, "value", code))  # the SDK hands some codes over as enums
    text = str(getattr(exc, "message", "") or exc)
    # Three causes Azure reports alike (Azure Storage REST error codes): the clock, the
    # key, the permission. Each has its own fix.
    if code == "AuthenticationFailed" and ("Request date header" in text
                                           or "time range" in text):
        return StorageAuthError(
            f"Azure Storage refused a request to account {account}: this machine's "
            "clock is too far from Azure's (signed requests allow 15 minutes).",
            "Run NTP (chrony or systemd-timesyncd) and check the time zone setting.")
    if code == "AuthorizationPermissionMismatch":
        return StorageAuthError(
            f"Azure Storage denied this identity an operation on the {where} "
            f"({code}).",
            "Assign drkit's role on the container (drkit doctor --print-policy shows it; "
            "blob index tags need tags read/write).")
    # (Azurite answers a wrong key with AuthorizationFailure.)
    if isinstance(exc, ClientAuthenticationError) or code in ("AuthenticationFailed",
                                                              "AuthorizationFailure"):
        return StorageAuthError(
            f"Azure Storage refused the credentials for account {account} "
            f"({code or 'AuthenticationFailed'}).",
            "Compare the account key with the one the config's storage.key refers to; if "
            "the key was rotated, update it there.",
        )
    if code == "BlobImmutableDueToPolicy":  # version-level immutability (time-based retention)
        return BlobLockedError(f"Azure Storage keeps a blob in the {where} locked by its "
                               "immutability policy; it was not deleted.",
                               "It can be deleted once its retention ends.")
    if code == "ContainerNotFound":
        return ContainerMissingError(
            f"The {where} does not exist.",
            "Create it as a private container, or fix storage.container in the config.",
        )
    if isinstance(exc, ServiceRequestError):
        return StorageError(
            f"Cannot reach Azure Storage at {endpoint}.",
            "Check the network path (HTTPS egress) and storage.endpoint.",
        )
    status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
    return StorageError(f"Azure Storage request failed on the {where}: "
                        f"{code or status or type(exc).__name__}.")
