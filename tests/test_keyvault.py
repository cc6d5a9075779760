"""Secret references in order, with Key Vault beside AWS Secrets Manager (the stand-in, the
real azure-keyvault-secrets client)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from drkit.config import load_settings
from drkit.errors import ConfigError, SecretError
from drkit.secrets import resolver_for
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def aws_hangs(monkeypatch):
    """An AWS endpoint that takes connections and never answers; counts them."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("DRKIT_AWS__ENDPOINT_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("DRKIT_SECRET_TIMEOUT_SECONDS", "1")
    yield held
    server.close()
    for connection in held:
        connection.close()


def test_a_store_that_hangs_is_passed_over_within_seconds_and_not_asked_again(
        sandbox, keyvault, aws_hangs, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    start = time.monotonic()
    account = resolver_for(settings).value(settings.storage.account)  # AWS first, then vault
    first = time.monotonic() - start
    assert account == sandbox.azure_secrets()["azure_storage_account"]
    asked = len(aws_hangs)
    assert asked >= 1 and first < 15  # one retry of a 1 s timeout, not botocore's 4 x 60 s
    assert resolver_for(settings).value(settings.azure.subscription_id) == \
        sandbox.azure_secrets()["azure_subscription_id"]
    # The account key and the DR target's password are in the vault alone.
    assert resolver_for(settings).resolve(settings.storage.key).get_secret_value() == \
        sandbox.azure_secrets()["azure_storage_key"]
    assert len(aws_hangs) == asked  # AWS was not asked again in this run


def test_missing_everywhere_names_each_reference(sandbox, keyvault, aws_gone, tmp_path,
                                                 monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_TARGET__PASSWORD", '["secret:nope", "keyvault:nope"]')
    settings = load_settings()
    with pytest.raises(SecretError) as raised:
        resolver_for(settings).resolve(settings.target.password)
    message = str(raised.value)
    assert "secret:nope: Cannot reach AWS Secrets Manager" in message
    assert "keyvault:nope: Key Vault https://drkit-dr.vault.azure.net has no secret 'nope'" \
        in message


@pytest.mark.parametrize(("setting", "value", "error"), [
    ("DRKIT_AZURE__CLIENT_SECRET", "keyvault:client", "cannot be a keyvault: reference"),
    ("DRKIT_AZURE__TENANT_ID", '["keyvault:tenant"]', "cannot be a keyvault: reference"),
    ("DRKIT_TARGET__PASSWORD", '["secret:ok", "plain-password"]', "expected a reference"),
    ("DRKIT_TARGET__PASSWORD", "keyvault:under_score", "expected a reference"),
])
def test_references_are_checked_when_the_config_loads(tmp_path, monkeypatch, setting, value,
                                                      error):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n"
                      "target: {host: dr, user: admin}\n")
    monkeypatch.setenv(setting, value)
    with pytest.raises(ConfigError, match=error):
        load_settings(config)


def test_a_list_of_references_loads_from_yaml(tmp_path):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop], "
                      "password: [secret:rds_password, keyvault:rds-password]}\n")
    assert load_settings(config).source.password == ["secret:rds_password",
                                                     "keyvault:rds-password"]


def _doctor_for_failover() -> tuple[int, dict[str, dict]]:
    result = run_cli("doctor", "--for", "failover", "--json")
    return result.exit_code, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_for_failover_names_each_credential_that_needs_aws(sandbox, arm, tmp_path,
                                                                  monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    # The seed's way: every credential only in AWS (the sandbox lists its vault after it).
    monkeypatch.setenv("DRKIT_STORAGE__KEY", json.dumps("secret:azure_storage_key"))
    monkeypatch.setenv("DRKIT_TARGET__PASSWORD", json.dumps("secret:azure_mysql_password"))
    code, checks = _doctor_for_failover()
    assert code == 2
    assert checks["storage.key without AWS"]["status"] == "CRITICAL"
    assert checks["storage.key without AWS"]["detail"] == \
        "only in AWS Secrets Manager (secret:azure_storage_key)"
    assert "keyvault:" in checks["storage.key without AWS"]["fix"]
    assert checks["target.password without AWS"]["status"] == "CRITICAL"


def test_doctor_for_failover_passes_when_key_vault_holds_them(sandbox, keyvault, aws_gone,
                                                              tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    code, checks = _doctor_for_failover()
    assert code == 0, checks
    assert checks["storage.key without AWS"]["detail"] == "from keyvault:azure-storage-key"
    assert checks["target.password without AWS"]["detail"] == \
        "from keyvault:azure-mysql-password"
    assert checks["Flexible Server control"]["status"] == "OK"
    assert checks["backup container"]["status"] == "OK"


def test_an_empty_variable_is_not_a_password_and_a_vault_not_configured_is_passed_over(
        tmp_path, monkeypatch):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop], password: env:EMPTY}\n"
                      "target: {host: dr, user: admin, "
                      "password: [keyvault:target-password, env:TARGET_PASSWORD]}\n")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.setenv("TARGET_PASSWORD", "from-the-environment")
    settings = load_settings(config)
    with pytest.raises(SecretError, match="Environment variable EMPTY is empty"):
        resolver_for(settings).resolve(settings.source.password)
    assert resolver_for(settings).resolve(settings.target.password).get_secret_value() == \
        "from-the-environment"


def test_doctor_for_failover_checks_the_newest_backups_time_zones(sandbox, keyvault, tmp_path,
                                                                   monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    assert run_cli("backup").exit_code == 0 and run_cli("verify").exit_code == 0
    _, checks = _doctor_for_failover()
    assert checks["time zones"]["status"] == "OK"
    assert "Asia/Seoul" in checks["time zones"]["detail"]
