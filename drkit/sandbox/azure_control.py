"""The sandbox's ``azure`` service: Entra ID, Resource Manager and Key Vault on one port.

It is :mod:`drkit.sandbox.azure_standin` run as a process. Its Key Vault holds the Azure-side
credentials (storage account and key, the restore admin's password, the subscription), so the
sandbox's config can list them after the AWS references and a failover rehearsed with AWS
stopped reads them from here, as the real one reads them from the DR region's vault.
"""

from __future__ import annotations

import os
import secrets
import ssl
import sys
import urllib.request
from typing import Any

from drkit.sandbox.azure_standin import SANDBOX_SERVER, SANDBOX_TENANT
from drkit.sandbox.host import ServiceHost
from drkit.sandbox.services import Service

VAULT_URL = "https://drkit-sandbox.vault.azure.net"
CLIENT_ID = "00000000-0000-4000-8000-00000000c11e"
# The Azure-side keys of the seed's secret, and their names in the vault.
VAULT_SECRETS = {"azure_storage_account": "azure-storage-account",
                 "azure_storage_key": "azure-storage-key",
                 "azure_mysql_password": "azure-mysql-password",
                 "azure_subscription_id": "azure-subscription-id"}
# The age identity that opens the sandbox's backups (encryption.identity): only in the vault.
IDENTITY_SECRET = "backup-age-identity"


class AzureControl(Service):
    name = "azure"
    role = "Azure Entra ID, Resource Manager and Key Vault (stand-in)"
    program = None  # drkit's own Python

    def __init__(self, sandbox: ServiceHost) -> None:
        super().__init__(sandbox)
        self.client_secret_file = sandbox.directory / "private" / "azure-client-secret"
        self.ca_bundle = self.home / "standin.pem"

    def prepare(self) -> None:
        if not self.client_secret_file.exists():
            self.client_secret_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.client_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "drkit.sandbox.azure_standin", str(port), str(self.home),
                str(self.client_secret_file)]

    def url(self, port: int) -> str:
        return f"https://127.0.0.1:{port}"

    def answers(self, port: int) -> bool:
        try:  # the certificate may be half written while the process starts
            context = ssl.create_default_context(cafile=str(self.ca_bundle))
            urllib.request.urlopen(f"{self.url(port)}/{SANDBOX_TENANT}/v2.0/.well-known/"
                                   "openid-configuration", timeout=2, context=context)
        except (OSError, ssl.SSLError, ValueError):
            return False
        return True

    def settings(self, port: int) -> dict[str, Any]:
        """The config's ``azure`` section: a service principal at the stand-in."""
        return {"auth": "service-principal", "tenant_id": SANDBOX_TENANT,
                "subscription_id": ["secret:azure_subscription_id",
                                    f"keyvault:{VAULT_SECRETS['azure_subscription_id']}"],
                "client_id": CLIENT_ID, "client_secret": f"file:{self.client_secret_file}",
                "resource_group": "drkit-sandbox-rg", "flexible_server": SANDBOX_SERVER,
                "poll_seconds": 0.2, "arm_endpoint": self.url(port), "authority": self.url(port),
                "ca_bundle": str(self.ca_bundle), "key_vault_url": VAULT_URL,
                "key_vault_proxy": f"http://127.0.0.1:{port}"}

    def _client(self, port: int):
        from azure.identity import ClientSecretCredential
        from azure.keyvault.secrets import SecretClient

        credential = ClientSecretCredential(
            SANDBOX_TENANT, CLIENT_ID, self.client_secret_file.read_text().strip(),
            authority=self.url(port), disable_instance_discovery=True,
            connection_verify=str(self.ca_bundle))
        return SecretClient(VAULT_URL, credential, connection_verify=str(self.ca_bundle),
                            proxies={"https": f"http://127.0.0.1:{port}"})

    def healthy(self, port: int) -> tuple[bool, str]:
        from azure.core.exceptions import AzureError

        try:
            self._client(port).get_secret(VAULT_SECRETS["azure_storage_key"])
        except AzureError as exc:
            return False, type(exc).__name__
        return True, f"Key Vault {VAULT_URL}"

    def seed(self, port: int) -> None:
        # The stand-in keeps secrets in memory: after a restart they are set again.
        client = self._client(port)
        values = self.sandbox.azure_secrets()
        for key, name in VAULT_SECRETS.items():
            client.set_secret(name, values[key])
        client.set_secret(IDENTITY_SECRET, self.sandbox.age_identity("restore"))

