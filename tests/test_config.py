"""Loading, validating and overriding the settings; resolving and redacting secrets."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from drkit.config import load_settings
from drkit.console import Environment, log_event
from drkit.errors import ConfigError, SecretError
from drkit.secrets import SecretResolver, resolver_for

MINIMAL = "source:\n  host: db.example.com\n  databases: [shop]\n"


def write(tmp_path, text: str):
    path = tmp_path / "drkit.yaml"
    path.write_text(text)
    return path


def test_minimal_file_gets_the_seed_defaults(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.source.port == 3306
    assert settings.source.password == "secret:rds_password"
    assert settings.storage.container == "mysql-backups"
    assert settings.storage.prefix == "backups/"
    assert settings.storage.key == "secret:azure_storage_key"
    assert settings.backup.compression == "gzip"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL + "storage:\n  container: from-file\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(path))
    monkeypatch.setenv("DRKIT_SOURCE__PORT", "3307")
    monkeypatch.setenv("DRKIT_STORAGE__CONTAINER", "from-env")
    settings = load_settings()
    assert settings.source.port == 3307
    assert settings.storage.container == "from-env"
    assert settings.source.host == "db.example.com"  # the rest of the section stays


@pytest.mark.parametrize("text,expected", [
    (MINIMAL.replace("db.example.com", "db\n  port: abc"),
     "source.port: Input should be a valid integer"),
    ("source:\n  databases: [shop]\n", "source.host: Field required"),
    (MINIMAL + "storage:\n  container: My_Backups\n", "storage.container: String should match"),
    (MINIMAL + "storage:\n  prefix: backups\n", "storage.prefix"),
    (MINIMAL + "backup:\n  compression: lz4\n",
     "backup.compression: Input should be 'gzip' or 'zstd'"),
    (MINIMAL + "colour: blue\n", "colour: unknown setting"),
    ("source: [\n", "not valid YAML at line"),
])
def test_invalid_config_names_the_field_and_the_form(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert expected in str(caught.value)
    assert caught.value.exit_code == 3


def test_inline_password_is_refused_without_echoing_it(tmp_path):
    path = write(tmp_path, MINIMAL.replace("databases", "password: hunter2-plain\n  databases"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "source.password: expected a reference 'secret:KEY'" in str(caught.value)
    assert "hunter2-plain" not in str(caught.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read config file .*missing.yaml"):
        load_settings(tmp_path / "missing.yaml")


def test_seed_secret_loads_from_moto(settings, sandbox):
    expected, resolver = sandbox.secret(), resolver_for(settings)
    for key in ("rds_password", "azure_storage_sas", "azure_tenant_id", "azure_subscription_id"):
        assert resolver.resolve(f"secret:{key}").get_secret_value() == expected[key]
    # The AWS secret, which the backup side reads, holds nothing only the Azure side needs.
    assert not {"azure_storage_key", "azure_mysql_password"} & set(expected)
    assert resolver.value(settings.storage.account) == "bloberry01"


def test_missing_secret_key_is_named(settings):
    with pytest.raises(SecretError) as caught:
        SecretResolver(settings).resolve("secret:no_such_key")
    message = str(caught.value)
    assert "has no key 'no_such_key'" in message
    assert "rds_password" in message  # lists the keys present, never their values


def test_missing_secret_is_named(settings):
    settings.aws.secret_id = "backup-credentials-nowhere"
    with pytest.raises(SecretError, match="Secret backup-credentials-nowhere does not exist"):
        SecretResolver(settings).resolve("secret:rds_password")


def test_env_reference(settings, monkeypatch):
    monkeypatch.setenv("DRKIT_TEST_PASSWORD", "from-the-environment")
    assert SecretResolver(settings).resolve("env:DRKIT_TEST_PASSWORD").get_secret_value() == (
        "from-the-environment")
    with pytest.raises(SecretError, match="Environment variable NOT_SET_ANYWHERE is not set"):
        SecretResolver(settings).resolve("env:NOT_SET_ANYWHERE")


def test_resolved_secrets_never_show_in_repr_logs_or_errors(settings, sandbox):
    password = SecretResolver(settings).resolve("secret:rds_password")
    value = password.get_secret_value()
    assert value not in repr(password) and value not in str(password)

    stream = io.StringIO()
    Environment(stdout=io.StringIO(), stderr=stream).configure_logging()
    log_event("test.leak", f"connecting with {value}", password=value)
    assert value not in stream.getvalue()
    assert json.loads(stream.getvalue().splitlines()[-1])["password"] == "***"
    logging.getLogger("drkit").handlers.clear()

    error = SecretError(f"login failed for password {value}")
    assert value not in str(error)
    # Every value of the seed secret is registered, not only the keys drkit asked for.
    sas = sandbox.secret()["azure_storage_sas"]
    assert sas not in SecretError(f"sas {sas}").message


def test_a_config_that_is_not_text_or_an_override_that_does_not_parse_is_named(tmp_path,
                                                                                  monkeypatch):
    binary = tmp_path / "drkit.yaml"
    binary.write_bytes(b"source: \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(binary)
    good = tmp_path / "good.yaml"
    good.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv("DRKIT_SOURCE", "{bad")
    with pytest.raises(ConfigError, match="override DRKIT_SOURCE cannot be parsed"):
        load_settings(good)


def test_no_configuration_at_all_says_where_one_comes_from(monkeypatch):
    for key in list(os.environ):
        if key.upper().startswith("DRKIT_"):
            monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match=r"No configuration: pass --config FILE or set "
                                          r"DRKIT_CONFIG \(drkit sandbox up writes one\)"):
        load_settings()


def test_an_invalid_override_names_its_variable(tmp_path, monkeypatch):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv("DRKIT_SOURCE__PORT", "seventy")
    with pytest.raises(ConfigError, match=r"source.port \(from DRKIT_SOURCE__PORT\)"):
        load_settings(config)


def test_file_reference_reads_an_owner_only_file_and_refuses_others(tmp_path):
    settings = load_settings(write(tmp_path, f"{MINIMAL}  password: file:"
                                   f"{tmp_path / 'admin-password'}\n"))
    secret = tmp_path / "admin-password"
    with pytest.raises(SecretError, match="Cannot read secret file .*admin-password"):
        SecretResolver(settings).resolve(settings.source.password)
    secret.write_text("from-a-mounted-file\n")
    secret.chmod(0o644)
    with pytest.raises(SecretError, match="can be read by other users") as refused:
        SecretResolver(settings).resolve(settings.source.password)
    assert refused.value.fix == f"Run: chmod 600 {secret}"
    assert "from-a-mounted-file" not in str(refused.value)
    secret.chmod(0o600)
    assert SecretResolver(settings).resolve(settings.source.password).get_secret_value() == (
        "from-a-mounted-file")
    with pytest.raises(ConfigError, match="needs an absolute path"):  # relative: where?
        load_settings(write(tmp_path, f"{MINIMAL}  password: file:admin-password\n"))


def test_file_references_refuse_what_would_hang_or_garble(tmp_path):
    fifo, garbled = tmp_path / "fifo", tmp_path / "garbled"
    os.mkfifo(fifo, 0o600)
    garbled.write_bytes(b"\xff\xfe\x00x")
    garbled.chmod(0o600)
    for path, message in ((fifo, "is not a regular file"), (garbled, "is not UTF-8 text")):
        settings = load_settings(write(tmp_path, f"{MINIMAL}  password: file:{path}\n"))
        with pytest.raises(SecretError, match=message):
            SecretResolver(settings).resolve(settings.source.password)
    spaced = tmp_path / "spaced"
    spaced.write_text("  pass word \n")
    spaced.chmod(0o600)
    settings = load_settings(write(tmp_path, f"{MINIMAL}  password: file:{spaced}\n"))
    assert SecretResolver(settings).resolve(settings.source.password).get_secret_value() == (
        "  pass word ")  # only the line end goes: spaces may be part of a password
    with pytest.raises(ConfigError, match="needs an absolute path"):
        load_settings(write(tmp_path, f"{MINIMAL}  password: file:./pw\n"))
