"""One secret resolver per run: every adapter takes its credentials from ``resolver_for(settings)``,
so the seed's secret is fetched from Secrets Manager once, however many parts need it."""

from __future__ import annotations

import json

import pytest

from drkit.aws import secrets as aws_secrets
from drkit.azure.blobstore import BackupStore
from drkit.config import Settings
from drkit.errors import SecretError
from drkit.mysql.connection import source_server, target_server
from drkit.secrets import resolver_for

SECRET = {"rds_password": "pw-rds", "azure_storage_account": "acct01",
          "azure_storage_key": "a2V5a2V5a2V5", "azure_mysql_password": "pw-target"}


class FakeSecretsManager:
    calls = 0

    def get_secret_value(self, SecretId: str) -> dict:  # noqa: N803 - boto3's name
        FakeSecretsManager.calls += 1
        return {"SecretString": json.dumps(SECRET)}


@pytest.fixture
def settings(monkeypatch) -> Settings:
    FakeSecretsManager.calls = 0
    monkeypatch.setattr(aws_secrets, "boto_client",
                        lambda aws, service, timeout=None: FakeSecretsManager())
    return Settings(source={"host": "db.internal", "databases": ["shop"]},
                    target={"host": "dr.mysql.database.azure.com", "user": "drkitadmin"},
                    aws={"secret_id": "backup-credentials-test"},
                    storage={"endpoint": "http://127.0.0.1:1/acct01"})


def test_every_adapter_shares_the_runs_resolver_and_the_secret_is_read_once(settings):
    assert resolver_for(settings) is resolver_for(settings)
    store = BackupStore.from_settings(settings)
    audit = BackupStore.from_settings(settings, container="dr-audit")
    source, target = source_server(settings), target_server(settings)
    assert (store.account, audit.account) == ("acct01", "acct01")
    assert source.password.get_secret_value() == "pw-rds"
    assert target.password.get_secret_value() == "pw-target"
    assert FakeSecretsManager.calls == 1


def test_an_unknown_reference_scheme_is_named(settings):
    with pytest.raises(SecretError, match="'vault' is not a kind of secret reference"):
        resolver_for(settings).resolve("vault:rds")
