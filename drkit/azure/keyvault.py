"""``keyvault:NAME``: a secret in Azure Key Vault, for the day AWS cannot be asked.

The failover runs when an AWS region is down, so every credential it needs (storage key,
Flexible Server password) can also live in a Key Vault in the DR region. The vault is read
with the same azure-identity login as Flexible Server control (``azure.*``), over TLS
verified against ``azure.ca_bundle`` when set, through ``azure.key_vault_proxy`` when set,
and gives up after ``secret_timeout_seconds`` so a setting's next reference is tried within
seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from drkit.azure.network import network_cause
from drkit.errors import SecretError, SecretStoreUnreachable
from drkit.secrets import resolver_for

if TYPE_CHECKING:
    from drkit.config import Settings


class KeyVaultSecrets:
    """Reads secrets from ``azure.key_vault_url``; each name at most once per run."""

    def __init__(self, settings: Settings) -> None:
        azure = settings.azure
        if not azure.key_vault_url:  # a SecretError: a list's next reference is tried
            raise SecretError("A setting refers to 'keyvault:...' but azure.key_vault_url is "
                              "not configured.",
                              "Set azure.key_vault_url (e.g. https://drkit-dr.vault.azure.net).")
        from azure.keyvault.secrets import SecretClient

        from drkit.azure.flexserver import credential

        self.url = azure.key_vault_url
        options = {"connection_timeout": settings.secret_timeout_seconds,
                   "read_timeout": settings.secret_timeout_seconds, "retry_total": 1}
        if azure.ca_bundle:
            options["connection_verify"] = str(azure.ca_bundle)
        self.proxy = azure.key_vault_proxy
        if self.proxy:
            options["proxies"] = {"https": self.proxy}
        self.client = SecretClient(self.url, credential(azure, resolver_for(settings)), **options)
        self._values: dict[str, str] = {}

    def lookup(self, name: str) -> str:
        if name not in self._values:
            self._values[name] = self._fetch(name)
        return self._values[name]

    def _fetch(self, name: str) -> str:
        try:
            value = self.client.get_secret(name).value
        except ResourceNotFoundError:
            raise SecretError(f"Key Vault {self.url} has no secret {name!r}.",
                              f"Add it: az keyvault secret set --vault-name VAULT --name {name} "
                              "--file VALUE_FILE.") from None
        except ClientAuthenticationError as exc:
            raise SecretError(f"Azure refused the login for Key Vault {self.url} "
                              f"({_reason(exc)}).",
                              "Check azure.auth, azure.client_id and azure.tenant_id, and that "
                              "the identity has the 'Key Vault Secrets User' role.") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            through = f" through proxy {self.proxy}" if self.proxy else ""
            cause = network_cause(exc) or type(exc).__name__
            raise SecretStoreUnreachable(
                f"Cannot reach Key Vault {self.url}{through} ({cause}).",
                "Check the network path to the vault (azure.key_vault_url, "
                "azure.key_vault_proxy or HTTPS_PROXY).") from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise SecretError(f"Key Vault {self.url} denied reading secret {name!r}.",
                                  "Give the identity the 'Key Vault Secrets User' role on the "
                                  "vault.") from None
            raise SecretError(f"Key Vault {self.url} answered {exc.status_code} for secret "
                              f"{name!r} ({_reason(exc)}).") from None
        if value is None:
            raise SecretError(f"Key Vault secret {name!r} in {self.url} has no value.")
        return value


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0][:200]
