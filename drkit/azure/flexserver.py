"""Azure Database for MySQL Flexible Server control, through azure-mgmt-rdbms.

The pilot light: the DR server is kept stopped and brought to life for a failover or a
drill. Every operation is a long-running ARM operation; each is awaited with a timeout and
each failure becomes one sentence with the fix.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.mgmt.rdbms.mysql_flexibleservers import MySQLManagementClient
from azure.mgmt.rdbms.mysql_flexibleservers.models import (
    Database,
    FirewallRule,
    ServerForUpdate,
    Sku,
    Storage,
)

from drkit.azure.network import network_cause
from drkit.config import AzureSettings, Settings
from drkit.console import log_event
from drkit.errors import AzureControlError, ConfigError, ControlTimeoutError, DrkitError
from drkit.secrets import SecretResolver, resolver_for

_SCOPE = "https://management.azure.com/.default"


def credential(azure: AzureSettings, resolver: SecretResolver) -> Any:
    """An azure-identity credential as configured (service principal, managed identity...)."""
    import azure.identity as identity

    tenant = resolver.value(azure.tenant_id)
    common: dict[str, Any] = {}
    if azure.authority:
        # A private or sovereign authority: do not ask the public cloud to validate it.
        common.update(authority=azure.authority, disable_instance_discovery=True)
    if azure.ca_bundle:
        common["connection_verify"] = str(azure.ca_bundle)
    if azure.auth == "service-principal":
        if not azure.client_id or not azure.client_secret:
            raise ConfigError("azure.auth is service-principal but azure.client_id or "
                              "azure.client_secret is missing.",
                              "Set both (the secret as a reference, e.g. "
                              "secret:azure_client_secret).")
        return identity.ClientSecretCredential(
            tenant, azure.client_id, resolver.resolve(azure.client_secret).get_secret_value(),
            **common)
    if azure.auth == "managed-identity":
        return identity.ManagedIdentityCredential(client_id=azure.client_id)
    if azure.auth == "cli":
        return identity.AzureCliCredential(tenant_id=tenant)
    return identity.DefaultAzureCredential(**common)


class FlexibleServer:
    """One Flexible Server (``azure.resource_group`` / ``azure.flexible_server``)."""

    def __init__(self, settings: Settings) -> None:
        azure = settings.azure
        if not (azure.flexible_server and azure.resource_group):
            raise ConfigError("No Flexible Server is configured.",
                              "Set azure.resource_group and azure.flexible_server.")
        self.azure = azure
        self.group = azure.resource_group
        self.name = azure.flexible_server
        options: dict[str, Any] = {"polling_interval": azure.poll_seconds,
                                   "credential_scopes": [_SCOPE]}
        if azure.ca_bundle:
            options["connection_verify"] = str(azure.ca_bundle)
        self.client = MySQLManagementClient(
            credential(azure, resolver_for(settings)),
            resolver_for(settings).value(azure.subscription_id),
            base_url=azure.arm_endpoint, **options)

    def _call(self, what: str, operation, *args, **kwargs) -> Any:
        try:
            return operation(*args, **kwargs)
        except ClientAuthenticationError as exc:
            if cause := network_cause(exc):  # the login endpoint did not answer: no refusal
                raise AzureControlError(
                    f"Cannot reach the Azure login endpoint "
                    f"({self.azure.authority or 'login.microsoftonline.com'}) to {what}: "
                    f"{cause}.",
                    "Check network access to Entra ID and azure.authority.") from None
            raise AzureControlError(
                f"Azure refused the credentials for {what} ({_code(exc)}).",
                "Check azure.auth and the tenant, client id and secret.") from None
        except ResourceNotFoundError:
            raise AzureControlError(
                f"Flexible Server {self.name} in resource group {self.group} was not found "
                f"({what}).", "Check azure.resource_group and azure.flexible_server.") from None
        except HttpResponseError as exc:
            code = _code(exc)
            fix = ("Grant the identity the drkit-flexible-server-operator role printed by "
                   "drkit doctor --print-policy (or Contributor) on the server."
                   if exc.status_code == 403
                   else "Look at the server in the Azure portal; try again when it is idle.")
            raise AzureControlError(f"Azure refused to {what} Flexible Server {self.name} "
                                    f"({exc.status_code} {code}).", fix) from None
        except ServiceRequestError as exc:
            raise AzureControlError(f"Cannot reach Azure Resource Manager to {what}: {exc}.",
                                    "Check network access to management.azure.com.") from None

    def state(self) -> str:
        """``Ready``, ``Stopped``, ``Starting``, ``Stopping``, ``Updating``..."""
        server = self._call("read", self.client.servers.get, self.group, self.name)
        return str(server.state)

    def describe(self) -> dict[str, Any]:
        server = self._call("read", self.client.servers.get, self.group, self.name)
        return {"name": server.name, "state": str(server.state),
                "host": server.fully_qualified_domain_name, "version": str(server.version),
                "sku": server.sku.name if server.sku else None,
                "storage_gb": server.storage.storage_size_gb if server.storage else None}

    def _wait(self, poller, what: str, timeout: float) -> None:
        self._call(what, poller.result, timeout=timeout)
        if not poller.done():
            raise ControlTimeoutError(
                f"Azure did not finish to {what} Flexible Server {self.name} within "
                f"{timeout:.0f} s.", "Look at the server in the Azure portal, then rerun; "
                "steps already done are skipped.")

    def start(self) -> bool:
        """Start the server unless it is already Ready; wait until Ready. True if started.
        A server in a transition is waited out first; one that cannot be started fails."""
        state = self._settled("start")
        if state == "Ready":
            return False
        poller = self._call("start", self.client.servers.begin_start, self.group, self.name)
        self._wait(poller, "start", self.azure.start_timeout_seconds)
        self.wait_for("Ready")
        return True

    def wait_ready(self) -> None:
        self.wait_for("Ready")

    def wait_for(self, *wanted: str) -> str:
        """Poll until the state is one of ``wanted``; a state that will not change fails."""
        deadline = time.monotonic() + self.azure.start_timeout_seconds
        while (state := self.state()) not in wanted:
            if state in DEAD_STATES:
                raise AzureControlError(
                    f"Flexible Server {self.name} is {state}; it cannot be started or stopped.",
                    "Look at the server in the Azure portal (a disabled server needs its "
                    "subscription or the support team).")
            if time.monotonic() > deadline:
                raise ControlTimeoutError(
                    f"Flexible Server {self.name} is still {state} after "
                    f"{self.azure.start_timeout_seconds} s.",
                    "Look at the server in the Azure portal, then rerun.")
            time.sleep(self.azure.poll_seconds)
        return state

    def stop(self) -> bool:
        """Stop the server unless it is already Stopped; wait until Stopped. True if stopped."""
        if self._settled("stop") == "Stopped":
            return False
        poller = self._call("stop", self.client.servers.begin_stop, self.group, self.name)
        self._wait(poller, "stop", self.azure.start_timeout_seconds)
        self.wait_for("Stopped")
        return True

    def _settled(self, action: str) -> str:
        """The state once any transition (Starting, Stopping, Updating) has ended."""
        state = self.state()
        if state in DEAD_STATES:
            raise AzureControlError(f"Flexible Server {self.name} is {state}; drkit cannot "
                                    f"{action} it.", "Look at the server in the Azure portal.")
        if state not in ("Ready", "Stopped"):
            log_event("flexserver.waiting", f"Flexible Server {self.name} is {state}; waiting "
                      f"for it to settle before it is told to {action}", state=state)
            state = self.wait_for("Ready", "Stopped")
        return state

    def scale_for_restore(self) -> bool:
        """Apply azure.restore_sku / restore_storage_gb if set and not already applied."""
        azure = self.azure
        current = self.describe()
        update = ServerForUpdate()
        if azure.restore_sku and azure.restore_sku != current["sku"]:
            update.sku = Sku(name=azure.restore_sku, tier=azure.restore_sku_tier or
                             "GeneralPurpose")
        if azure.restore_storage_gb and azure.restore_storage_gb > (current["storage_gb"] or 0):
            update.storage = Storage(storage_size_gb=azure.restore_storage_gb)
        if update.sku is None and update.storage is None:
            return False
        poller = self._call("scale", self.client.servers.begin_update, self.group, self.name,
                            update)
        self._wait(poller, "scale", azure.start_timeout_seconds)
        return True

    def allow_ip(self, rule: str, ip: str) -> None:
        poller = self._call("add a firewall rule to", self.client.firewall_rules
                            .begin_create_or_update, self.group, self.name, rule,
                            FirewallRule(start_ip_address=ip, end_ip_address=ip))
        self._wait(poller, "add a firewall rule to", 300)

    def create_database(self, name: str) -> None:
        poller = self._call("create a database on", self.client.databases
                            .begin_create_or_update, self.group, self.name, name,
                            Database(charset="utf8mb4", collation="utf8mb4_unicode_ci"))
        self._wait(poller, "create a database on", 300)


# States a server does not leave by waiting: act at once, naming them.
DEAD_STATES = frozenset({"Disabled", "Dropping"})


def _code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) or exc.reason or type(exc).__name__





def arm_get(settings: Settings, resource: str, api_version: str) -> dict | None:
    """GET one Resource Manager resource of the subscription (``resource`` from
    ``resourceGroups/...`` on) as JSON; None where it does not exist (404). Other failures
    raise AzureError or DrkitError (the login, a secret)."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
    from azure.core.rest import HttpRequest

    azure, resolver = settings.azure, resolver_for(settings)
    client = PipelineClient(
        azure.arm_endpoint,
        connection_verify=str(azure.ca_bundle) if azure.ca_bundle else True,
        policies=[RetryPolicy(retry_total=1),
                  BearerTokenCredentialPolicy(credential(azure, resolver), _SCOPE)])
    response = client.send_request(HttpRequest(
        "GET", f"{azure.arm_endpoint.rstrip('/')}/subscriptions/"
               f"{resolver.value(azure.subscription_id)}/{resource}",
        params={"api-version": api_version}), timeout=settings.secret_timeout_seconds)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def storage_account_resource(settings: Settings) -> str | None:
    """The storage account's Resource Manager path (``resourceGroups/G/providers/...``);
    None without a resource group to find it in."""
    group = settings.storage.resource_group or settings.azure.resource_group
    if not group:
        return None
    account = resolver_for(settings).value(settings.storage.account)
    return f"resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{account}"


def website_endpoint(settings: Settings) -> str | None:
    """The storage account's static-website endpoint (``primaryEndpoints.web``) from Resource
    Manager: it has a zone in its host name (``ACCOUNT.z13.web.core.windows.net``) that no
    other setting gives. None when it cannot be read; the caller says what to set."""
    try:
        resource = storage_account_resource(settings)
        account = arm_get(settings, resource, "2023-05-01") if resource else None
        return account["properties"]["primaryEndpoints"].get("web") if account else None
    except (AzureError, DrkitError, KeyError, ValueError, TypeError):
        return None
