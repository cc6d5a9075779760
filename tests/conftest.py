"""One sandbox (real MariaDB x2, Azurite, moto) for the whole test session, and the tiers.

Tests that need to stop or break a service start their own sandbox instead; their modules
are marked ``integration``. Every test that uses no service (no ``sandbox`` or ``arm``
fixture, no ``integration`` mark) is a ``unit`` test: ``pytest -m unit`` runs those alone,
in seconds, and a unit test that starts a sandbox fails.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkit.config import Settings, load_settings
from drkit.sandbox.estate import Sandbox

SERVICE_FIXTURES = {"sandbox", "arm"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if not uses_services and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_services(request: pytest.FixtureRequest,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is not None:
        def refuse(self: Sandbox) -> None:
            raise AssertionError(f"unit test {request.node.nodeid} started a sandbox: "
                                 "mark its module integration")
        monkeypatch.setattr(Sandbox, "up", refuse)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        box.up()
        yield box
    finally:
        box.down()


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return load_settings(sandbox.config_path)


@pytest.fixture(autouse=True)
def _no_drkit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own DRKIT_* variables must not leak into tests.
    for name in list(os.environ):
        if name.startswith("DRKIT_"):
            monkeypatch.delenv(name)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def store(settings: Settings):
    from drkit.azure.blobstore import BackupStore

    return BackupStore.from_settings(settings)


@pytest.fixture
def backup_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Sandbox settings with this test's own lock directory and run log."""
    settings.backup.state_dir = tmp_path / "state"
    settings.backup.log_file = tmp_path / "backup.log"
    return settings


@pytest.fixture
def arm(tmp_path, monkeypatch, request):
    """The ARM stand-in with a stopped DR server, and drkit's config pointed at it (its Key
    Vault too, holding the sandbox's backup identity where the test uses the sandbox)."""
    from drkit.sandbox.azure_standin import ArmStandIn

    standin = ArmStandIn(tmp_path).start()
    standin.add_server("drkit-dr", state="Stopped")
    for name, value in {
        "AUTH": "service-principal", "CLIENT_ID": "00000000-0000-4000-8000-00000000c11e",
        "CLIENT_SECRET": "env:DRKIT_TEST_CLIENT_SECRET", "RESOURCE_GROUP": "dr-rg",
        "FLEXIBLE_SERVER": "drkit-dr", "ARM_ENDPOINT": standin.url,
        "AUTHORITY": standin.url, "CA_BUNDLE": str(standin.ca_bundle), "POLL_SECONDS": "0.05",
    }.items():
        monkeypatch.setenv(f"DRKIT_AZURE__{name}", value)
    monkeypatch.setenv("DRKIT_TEST_CLIENT_SECRET", "client-secret-for-the-standin")
    if "sandbox" in request.fixturenames:  # its encrypted backups open with this vault's key
        from drkit.sandbox.azure_control import IDENTITY_SECRET, VAULT_SECRETS

        sandbox = request.getfixturevalue("sandbox")
        standin.vault[IDENTITY_SECRET] = sandbox.age_identity("restore")
        # And the Azure-side credentials the sandbox's config reads from its vault alone.
        for key, name in VAULT_SECRETS.items():
            standin.vault[name] = sandbox.azure_secrets()[key]
        monkeypatch.setenv("DRKIT_AZURE__KEY_VAULT_URL", VAULT_URL)
        monkeypatch.setenv("DRKIT_AZURE__KEY_VAULT_PROXY", standin.proxy_url)
    yield standin
    standin.stop()


VAULT_URL = "https://drkit-dr.vault.azure.net"
# Each Azure-side credential: the seed's AWS secret first, the DR region's Key Vault next;
# the account key and the DR target's password only in the vault (as the sandbox keeps them).
AZURE_SIDE = {"STORAGE__ACCOUNT": "azure_storage_account", "STORAGE__KEY": "azure_storage_key",
              "TARGET__PASSWORD": "azure_mysql_password",
              "AZURE__SUBSCRIPTION_ID": "azure_subscription_id"}


@pytest.fixture
def keyvault(sandbox, arm, monkeypatch):
    """The Azure-side secrets in the Key Vault stand-in, reached through the network's HTTPS
    proxy, and drkit's config listing them after the AWS references (what a failover reads
    when AWS is gone). The Azure login itself (tenant, client secret) is never in AWS."""
    secret = sandbox.secret()
    for setting, key in AZURE_SIDE.items():
        arm.vault[key.replace("_", "-")] = sandbox.azure_secrets()[key]
        monkeypatch.setenv(f"DRKIT_{setting}", json.dumps(
            [*([f"secret:{key}"] if key in secret else []), f"keyvault:{key.replace('_', '-')}"]))
    arm.tenant = secret["azure_tenant_id"]
    monkeypatch.setenv("DRKIT_AZURE__TENANT_ID", secret["azure_tenant_id"])
    monkeypatch.setenv("DRKIT_AZURE__KEY_VAULT_URL", VAULT_URL)
    monkeypatch.setenv("DRKIT_AZURE__KEY_VAULT_PROXY", arm.proxy_url)
    yield arm


@pytest.fixture
def aws_gone(monkeypatch):
    """AWS does not answer: its endpoint refuses connections, as a dead region's would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("DRKIT_AWS__ENDPOINT_URL", f"http://127.0.0.1:{port}")


@pytest.fixture
def fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `crontab` on PATH that keeps the table in a file, so tests never touch the real one;
    returns that file (absent until something is installed)."""
    table = tmp_path / "crontab.txt"
    program = tmp_path / "bin" / "crontab"
    program.parent.mkdir()
    program.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-l" ]; then
          [ -f {table} ] && exec cat {table}
          echo "no crontab for $(id -un)" >&2; exit 1
        fi
        cat > {table}
        """))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{program.parent}:{os.environ['PATH']}")
    return table
