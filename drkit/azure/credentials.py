"""The storage credential a config uses, and whether it can delete blobs.

One place decides what ``storage.auth`` means: the account key (deletes anything), an
Entra ID login (whatever its role allows; drkit cannot tell from here), or a SAS token,
whose ``sp`` field lists what it permits. The backup side (``side: backup``) should hold a
SAS without ``d``, ``x`` and ``y`` (delete, delete a version, delete permanently): an
attacker with the backup host then cannot remove a backup, its manifest or an archived file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from drkit.config import Settings
from drkit.errors import ConfigError
from drkit.secrets import SecretResolver

# SAS permissions that remove data: delete, delete a version, permanently delete.
DELETING_PERMISSIONS = frozenset("dxy")
# What the backup side's SAS grants: read, add, create, write, list, tags (Azure's order).
BACKUP_SIDE_PERMISSIONS = "racwlt"

Deletes = Literal["yes", "no", "unknown"]


@dataclass(frozen=True)
class StorageCredential:
    """What the SDK is given, and what it allows."""

    value: Any  # the SDK's credential: {account_name, account_key}, a token credential, a SAS
    kind: Literal["key", "aad", "sas"]
    deletes: Deletes  # "unknown": an Entra ID role, which only Azure can tell
    permissions: str = ""  # a SAS's sp
    expires: datetime | None = None  # a SAS's se

    @property
    def may_delete(self) -> bool:
        """Whether to try a delete: not where the credential is known to lack it."""
        return self.deletes != "no"


def sas_fields(token: str) -> tuple[str, datetime | None]:
    """A SAS token's permissions (``sp``) and expiry (``se``); ConfigError if it is none."""
    fields = parse_qs(token.lstrip("?"))
    if "sig" not in fields or "sp" not in fields:
        raise ConfigError("storage.sas does not hold a SAS token (no sp= and sig= fields).",
                          "Store the token itself (sv=...&sp=...&sig=...) in the secret it "
                          "names.")
    expiry = None
    if "se" in fields:
        try:
            expiry = datetime.fromisoformat(fields["se"][0].replace("Z", "+00:00"))
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
        except ValueError:
            expiry = None
    return fields["sp"][0], expiry


def storage_credential(settings: Settings, resolver: SecretResolver,
                       account: str) -> StorageCredential:
    """The configured storage credential for ``account``, with what it can do."""
    storage = settings.storage
    if storage.auth == "key":
        return StorageCredential({"account_name": account, "account_key": resolver.resolve(
            storage.key).get_secret_value()}, "key", "yes")
    if storage.auth == "sas":
        token = resolver.resolve(storage.sas or []).get_secret_value().lstrip("?")
        permissions, expires = sas_fields(token)
        deletes: Deletes = "yes" if DELETING_PERMISSIONS & set(permissions) else "no"
        return StorageCredential(token, "sas", deletes, permissions, expires)
    # The same Entra ID login (tenant, authority, client) as Flexible Server control.
    from drkit.azure.flexserver import credential as azure_login

    return StorageCredential(azure_login(settings.azure, resolver), "aad", "unknown")
