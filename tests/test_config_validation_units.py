"""What a configuration may say, checked when it is read (drkit.config): credentials only as
references, names the servers and Azure accept, the Azure login never from Key Vault."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drkit.config import (
    AzureSettings,
    BinlogSettings,
    SourceSettings,
    StorageSettings,
    load_settings,
)
from drkit.errors import ConfigError


@pytest.mark.parametrize("password", [
    "secret:rds_password", "env:DRKIT_RDS_PASSWORD", "keyvault:rds-password",
    "file:/run/credentials/drkit/rds-password",
    ["secret:rds_password", "keyvault:rds-password"]])  # tried in this order
def test_a_credential_is_a_reference_or_a_list_of_them(password):
    assert SourceSettings(host="db", databases=["shop"], password=password).password == password


@pytest.mark.parametrize("password", [
    "hunter2", "secret:", "vault:rds", "keyvault:rds_password", "keyvault:" + "x" * 128,
    ["secret:rds_password", "hunter2"], []])
def test_a_credential_given_inline_or_misspelt_is_refused(password):
    with pytest.raises(ValidationError, match="secret values are not accepted inline"):
        SourceSettings(host="db", databases=["shop"], password=password)


def test_a_file_reference_needs_an_absolute_path_and_says_so():
    with pytest.raises(ValidationError, match="needs an absolute path, e.g. file:/run/"):
        SourceSettings(host="db", databases=["shop"], password="file:creds/rds")


def test_a_plain_setting_may_be_a_value_or_a_checked_reference():
    assert StorageSettings(account="bloberry01").account == "bloberry01"
    assert StorageSettings(account="secret:azure_storage_account").account == \
        "secret:azure_storage_account"
    with pytest.raises(ValidationError, match="expected a reference"):
        StorageSettings(account="secret:no spaces")


@pytest.mark.parametrize("database", ["shop", "a.b", "with space inside", "商店", "x" * 64])
def test_database_names_are_what_mysql_accepts(database):
    assert SourceSettings(host="db", databases=[database]).databases == [database]


@pytest.mark.parametrize("database", ["", "x" * 65, "trailing ", "nul\x00", "emoji\U0001F600"])
def test_database_names_mysql_refuses_are_refused(database):
    with pytest.raises(ValidationError, match="a database name has 1 to 64 characters"):
        SourceSettings(host="db", databases=[database])


@pytest.mark.parametrize(("database", "character"), [
    ("\uff53hop", "'\uff53' (U+FF53)"), ("\ufb01les", "'\ufb01' (U+FB01)"),
    ("a\u3000b", "'\\u3000' (U+3000)"), ("shop\uff11", "'\uff11' (U+FF11)")])
def test_a_database_name_with_a_lookalike_of_a_plain_character_is_refused(database, character):
    """A full-width 's' from an input method names a database that is not the one meant."""
    with pytest.raises(ValidationError, match="in a database name is a lookalike of") as refused:
        SourceSettings(host="db", databases=[database])
    assert character in str(refused.value)


@pytest.mark.parametrize("database", ["shop\u200b", "sh\u200dop", "\ufeffshop", "shop\u202e",
                                      "sh\u00adop"])
def test_a_database_name_with_an_invisible_character_is_refused(database):
    """A zero-width space, a joiner, a byte-order mark, a bidi override or a soft hyphen
    shows as nothing: 'shop\u200b' reads as shop everywhere and is another database."""
    with pytest.raises(ValidationError, match="no control or invisible characters"):
        SourceSettings(host="db", databases=[database])


@pytest.mark.parametrize("database", ["caf\u00e9", "Stra\u00dfe", "\uc0c1\uc810",
                                      "\u30b7\u30e7\u30c3\u30d7"])
def test_a_name_in_another_script_is_no_lookalike(database):
    assert SourceSettings(host="db", databases=[database]).databases == [database]


def test_at_least_one_database_is_backed_up():
    with pytest.raises(ValidationError, match="databases"):
        SourceSettings(host="db", databases=[])


@pytest.mark.parametrize(("container", "valid"), [
    ("mysql-backups", True), ("abc", True), ("a" * 63, True), ("ab", False),
    ("a" * 64, False), ("My-Backups", False), ("-backups", False), ("backups-", False),
    ("$web", False)])
def test_the_backup_container_is_a_name_azure_accepts(container, valid):
    if valid:
        assert StorageSettings(container=container).container == container
    else:
        with pytest.raises(ValidationError, match="container"):
            StorageSettings(container=container)


@pytest.mark.parametrize(("prefix", "valid"), [
    ("backups/", True), ("", True), ("a/b/", True), ("backups", False), ("/backups/", False),
    ("a//b/", False)])
def test_a_blob_prefix_is_folders_ending_in_a_slash(prefix, valid):
    if valid:
        assert StorageSettings(prefix=prefix).prefix == prefix
    else:
        with pytest.raises(ValidationError, match="prefix"):
            StorageSettings(prefix=prefix)


def test_the_binlog_archive_has_a_folder_of_its_own():
    with pytest.raises(ValidationError, match="prefix"):
        BinlogSettings(prefix="")


@pytest.mark.parametrize("setting", ["tenant_id", "client_secret"])
def test_the_azure_login_never_comes_from_key_vault(setting):
    with pytest.raises(ValidationError, match=f"azure.{setting} cannot be a keyvault: "
                                              "reference"):
        AzureSettings(**{setting: ["env:DRKIT_X", "keyvault:azure-login"]})
    assert AzureSettings(**{setting: "secret:azure_login"})  # the AWS secret may hold it


@pytest.mark.parametrize(("runner", "interval"), [("systemd", 7.0), ("cron", 60.0)])
def test_heartbeats_are_as_far_apart_as_the_runner_makes_them(runner, interval):
    assert BinlogSettings(runner=runner, heartbeat_seconds=7).beat_interval == interval


@pytest.mark.parametrize(("field", "value"), [
    ("flush_seconds", 0), ("flush_seconds", 3601), ("heartbeat_seconds", 0),
    ("lag_alarm_seconds", 59), ("snapshot_lock_seconds", -1), ("replica_id", 0),
    ("replica_id", 2 ** 32)])
def test_binlog_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        BinlogSettings(**{field: value})


@pytest.mark.parametrize("variable", ["DRKIT_NOSUCH__X", "DRKIT_SOURCEX__HOST",
                                      "drkit_nosuch__x", "DRKIT_ENVIRONMENT__X"])
def test_an_override_of_no_section_is_refused_as_one_of_no_field_is(tmp_path, monkeypatch,
                                                                    variable):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError, match=f"The environment variable {variable} names no "
                                          r"section of the config \(aws, azure, backup, "):
        load_settings(config)


def test_variables_drkit_reads_that_are_no_settings_are_left_alone(tmp_path, monkeypatch,
                                                                   capsys):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    for variable in ("DRKIT_FLEET", "DRKIT_DEBUG", "DRKIT_FAILPOINT", "DRKIT_FAILPOINT_LOG",
                     "DRKIT_RUNBOOKS", "DRKIT_RDS_PASSWORD", "_DRKIT_COMPLETE"):
        monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    monkeypatch.setenv("DRKIT_STORAGE__CONTAINER", "dr-backups")  # a section's field, as before
    assert load_settings(config).storage.container == "dr-backups"
    assert capsys.readouterr().err == ""  # nor warned about


@pytest.mark.parametrize(("variable", "meant"), [
    ("DRKIT_BACKUP_STATE_DIR", "DRKIT_BACKUP__STATE_DIR"),
    ("DRKIT_BACKUPSTATE_DIR", "DRKIT_BACKUP__STATE_DIR"),
    ("drkit_source_host", "DRKIT_SOURCE__HOST"), ("DRKIT_SIDES", "DRKIT_SIDE"),
    ("DRKIT_ENVIROMENT", "DRKIT_ENVIRONMENT"),
    ("DRKIT_CONFG", "DRKIT_CONFIG"), ("DRKIT_FLET", "DRKIT_FLEET"),
    ("DRKIT_STORAGE_NOSUCH", None)])
def test_an_override_without_its_double_underscore_is_warned_about_once(
        tmp_path, monkeypatch, capsys, variable, meant):
    """pydantic-settings ignores it: the setting silently keeps its value from the file."""
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv(variable, "x")
    monkeypatch.setattr("drkit.config._warned_variables", set())
    assert load_settings(config).source.host == "db"  # still loads
    load_settings(config)  # a fleet loads many configs: said once
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith(
        f"drkit: warning: the environment variable {variable} is ignored: it names no setting")
    assert (f"did you mean {meant}?" in warning) if meant else "did you mean" not in warning


def test_a_variable_the_config_reads_through_env_is_no_misspelt_override(
        tmp_path, monkeypatch, capsys):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop], "
                      "password: 'env:DRKIT_SOURCE_PASSWORD'}\n")
    monkeypatch.setenv("DRKIT_SOURCE_PASSWORD", "x")
    monkeypatch.setattr("drkit.config._warned_variables", set())
    load_settings(config)
    assert capsys.readouterr().err == ""


def test_a_list_override_that_is_not_json_is_named_by_its_own_variable(tmp_path, monkeypatch):
    """DRKIT_SOURCE__DATABASES=shop: the field's variable is named, not its section's."""
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv("DRKIT_SOURCE__DATABASES", "shop")
    with pytest.raises(ConfigError, match="override DRKIT_SOURCE__DATABASES cannot be parsed") \
            as refused:
        load_settings(config)
    assert "A list is written as JSON" in refused.value.fix
