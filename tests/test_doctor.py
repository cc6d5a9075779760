"""drkit doctor and monitoring: each failure mode provoked on a sandbox of its own."""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
from azure.storage.blob import ContainerClient

from drkit.aws.clients import boto_client
from drkit.azure.catalog import Catalog
from drkit.config import load_settings
from drkit.sandbox.estate import Sandbox
from drkit.sandbox.services import free_port
from tests import dbtools
from tests.helpers import point_cli_at, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """A sandbox this module may break (the session's stays intact for other tests)."""
    sandbox = Sandbox(tmp_path_factory.mktemp("doctor"), demo_size=256 * 1024)
    sandbox.up()
    yield sandbox
    sandbox.down()


@pytest.fixture
def doctor_env(box, tmp_path, monkeypatch):
    point_cli_at(box, tmp_path, monkeypatch)
    return box


def doctor() -> tuple[int, dict[str, dict]]:
    result = run_cli("doctor", "--json")
    report = json.loads(result.stdout)
    checks = {}
    for check in report["checks"]:
        checks.setdefault(check["name"], check)
    assert report["status"] in ("OK", "WARNING", "CRITICAL")
    return result.exit_code, checks


def _fresh_backup(store_env) -> None:
    assert run_cli("backup").exit_code == 0
    assert run_cli("verify").exit_code == 0


def test_healthy_sandbox_is_ok_except_cron(doctor_env):
    _fresh_backup(doctor_env)
    code, checks = doctor()
    assert code == 1  # WARNING: no cron entries on a laptop
    for name in ("secrets", "source reachable", "source login", "source privileges",
                 "mysqldump", "backup container", "clock skew", "audit container",
                 "restore target", "newest backup", "newest verified backup",
                 "storage side", "immutable retention", "encryption in use"):
        assert checks[name]["status"] == "OK", checks[name]
    assert checks["cron entries"]["status"] == "WARNING"
    assert checks["cron entries"]["fix"] == "drkit schedule install --env sandbox"


def test_wrong_storage_key(doctor_env, monkeypatch):
    monkeypatch.setenv("BAD_KEY", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
    monkeypatch.setenv("DRKIT_STORAGE__KEY", "env:BAD_KEY")
    code, checks = doctor()
    assert code == 2
    check = checks["storage"]
    assert check["status"] == "CRITICAL"
    # Azure says AuthenticationFailed, Azurite AuthorizationFailure: both name the cause.
    assert check["detail"] in (
        f"Azure Storage refused the credentials for account bloberry01 ({code_name})."
        for code_name in ("AuthenticationFailed", "AuthorizationFailure"))
    assert "if the key was rotated, update it there" in check["fix"]


def test_missing_secret_key(doctor_env, monkeypatch):
    settings = load_settings()
    secret = doctor_env.secret()
    del secret["rds_password"]
    boto_client(settings.aws, "secretsmanager").create_secret(
        Name="backup-credentials-broken", SecretString=json.dumps(secret))
    monkeypatch.setenv("DRKIT_AWS__SECRET_ID", "backup-credentials-broken")
    code, checks = doctor()
    assert code == 2
    assert checks["secrets"]["status"] == "CRITICAL"
    assert checks["secrets"]["detail"] == "secret backup-credentials-broken lacks rds_password"
    assert checks["secrets"]["fix"] == "Add 'rds_password' to the secret's JSON."


def test_public_container(doctor_env, monkeypatch):
    settings = load_settings()
    endpoint = settings.storage.endpoint
    public = ContainerClient.from_container_url(
        f"{endpoint}/public-{uuid.uuid4().hex[:6]}",
        credential={"account_name": "bloberry01",
                    "account_key": doctor_env.azure_secrets()["azure_storage_key"]})
    public.create_container(public_access="blob")
    monkeypatch.setenv("DRKIT_STORAGE__CONTAINER", public.container_name)
    code, checks = doctor()
    assert code == 2
    assert "allows public read access (blob)" in checks["storage"]["detail"]
    assert "private" in checks["storage"]["fix"]


def test_stale_backup(doctor_env, monkeypatch):
    settings = load_settings()
    from drkit.azure.blobstore import BackupStore

    store = BackupStore.from_settings(settings)
    stale = f"{settings.storage.prefix}backup-20200101-030000.sql.gz"
    store.container.upload_blob(stale, b"x")
    store.container.upload_blob(stale + ".manifest.json", b"{}")
    catalog = Catalog(store)
    catalog.record_verification(catalog.select(stale), "ok")
    code, checks = doctor()
    assert code == 2
    for name in ("newest backup", "newest verified backup"):
        assert checks[name]["status"] == "CRITICAL" and stale in checks[name]["detail"]
        assert "not running on schedule" in checks[name]["fix"]


def test_no_backup_at_all(doctor_env):
    code, checks = doctor()
    assert checks["newest backup"]["status"] == "CRITICAL"
    assert checks["newest backup"]["detail"] == "none"


def test_invalid_config_is_acheck_critical(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {host: db}\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(bad))
    code, checks = doctor()
    assert code == 2 and "source.databases: Field required" in checks["config"]["detail"]


def test_print_policy(doctor_env):
    result = run_cli("doctor", "--print-policy", "--json")
    assert result.exit_code == 0
    policy = json.loads(result.stdout)
    assert policy["ok"] is True
    actions = {a for s in policy["aws_iam_policy"]["Statement"] for a in s["Action"]}
    assert {"secretsmanager:GetSecretValue", "rds:DescribeDBInstances",
            "cloudwatch:PutMetricData", "cloudwatch:PutMetricAlarm"} <= actions
    scopes = {r.get("scope") for r in policy["azure_role_assignments"]}
    # the account's name, looked up where the config refers to it (a name is no secret)
    assert "storage account bloberry01 / container mysql-backups" in scopes
    roles = {r.get("role"): r.get("scope") for r in policy["azure_role_assignments"]}
    assert roles["Key Vault Secrets User"] == "Key Vault https://drkit-sandbox.vault.azure.net"
    assert roles["drkit-flexible-server-operator"] == "Flexible Server drkit-sandbox-dr"
    definitions = {d["Name"]: d for d in policy["azure_role_definitions"]}
    assert list(definitions) == ["drkit-blob-operator", "drkit-backup-writer",
                                 "drkit-flexible-server-operator"]
    # Both sides: the backup side's role and SAS cannot delete; the sandbox's is the Azure's.
    assert not [a for a in definitions["drkit-backup-writer"]["DataActions"]
                if "delete" in a.lower()]
    assert "sp=racwlt" in policy["sides"]["backup"]["storage"]
    assert policy["sides"]["this_config"] == {"side": "azure"}

    # Without --json: text to read, each document indented under what to do with it, and
    # pasting as is.
    text = run_cli("doctor", "--print-policy").stdout.splitlines()
    assert text[0].startswith("AWS IAM policy") and text[1] == "{"
    document = text[1:text.index("}") + 1]
    assert json.loads("\n".join(document)) == policy["aws_iam_policy"]
    assert "  drkit-blob-operator on storage account bloberry01 / container mysql-backups" in text
    assert "Sides (this config: azure):" in text and "  backup side runs drkit backup, drkit " \
        "binlog stream (on the backup host, in AWS)" in text


def test_the_text_reports_first_line_is_nagios_status_with_perfdata(doctor_env):
    _fresh_backup(doctor_env)
    result = run_cli("doctor")
    first, *details = result.stdout.splitlines()
    warned = [c["name"] for c in json.loads(run_cli("doctor", "--json").stdout)["checks"]
              if c["status"] == "WARNING"]
    assert first.startswith(f"DRKIT WARNING - {len(warned)} warning"
                            f"{'s' * (len(warned) > 1)}: {', '.join(warned)} | "), first
    assert re.search(r"\| newest_backup_age=\d+s;\d+;\d+ newest_verified_backup_age=\d+s;"
                     r"\d+;\d+$", first), first
    assert details[0] == "OK       config: valid (sandbox)"


def test_monitor_publish_and_alarms(doctor_env, monkeypatch):
    _fresh_backup(doctor_env)
    published = run_cli("monitor", "publish", "--json")
    assert published.exit_code == 0
    ages = json.loads(published.stdout)
    assert 0 <= ages["newest_verified_backup_age_seconds"] < 600
    settings = load_settings()
    cloudwatch = boto_client(settings.aws, "cloudwatch")
    metrics = cloudwatch.list_metrics(Namespace="drkit/Backup",
                                      MetricName="NewestVerifiedBackupAgeSeconds")["Metrics"]
    assert metrics

    installed = run_cli("monitor", "install-alarms", "--env", "prod", "--sns-topic",
                        "arn:aws:sns:us-east-1:123456789012:dr-oncall")
    assert installed.exit_code == 0, installed.stderr
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(
        AlarmNamePrefix="drkit-prod-")["MetricAlarms"]}
    assert set(alarms) == {"drkit-prod-shop-backup-failure", "drkit-prod-shop-rpo"}
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "breaching"
        assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:dr-oncall"]
    assert alarms["drkit-prod-shop-rpo"]["Threshold"] == 26 * 3600  # the drill's prod RPO
    assert alarms["drkit-prod-shop-backup-failure"]["Period"] == 86400  # daily at 03:00

    # With a binlog archive kept, its lag is the recovery point: an alarm of its own.
    os.environ["DRKIT_BINLOG__ENABLED"] = "true"
    try:
        assert run_cli("monitor", "install-alarms", "--env", "prod").exit_code == 0
    finally:
        del os.environ["DRKIT_BINLOG__ENABLED"]
    lag = cloudwatch.describe_alarms(AlarmNames=["drkit-prod-shop-binlog-lag"])["MetricAlarms"]
    assert lag[0]["MetricName"] == "BinlogArchiveLagSeconds" and lag[0]["Threshold"] == 300

    # CloudWatch gone: a sentence and a setup code of its own, not an internal error (1).
    monkeypatch.setenv("DRKIT_AWS__ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    unreachable = run_cli("monitor", "install-alarms", "--env", "prod")
    assert unreachable.exit_code == 9, unreachable.stderr
    assert "CloudWatch did not answer for alarm drkit-prod-shop-backup-failure" in \
        unreachable.stderr and "aws.endpoint_url" in unreachable.stderr


def test_stopped_source(doctor_env):
    doctor_env.stop_service("source")
    try:
        code, checks = doctor()
        assert code == 2
        check = checks["source reachable"]
        assert check["status"] == "CRITICAL" and "ERROR 2003" in check["detail"]
        assert "security group" in check["fix"]
    finally:
        doctor_env.up()


def check_broken(doctor):
    raise KeyError("a bug in a check")


def check_critical(doctor):
    from drkit.checks import CRITICAL, Check

    return [Check("disk", CRITICAL, "full")]


@pytest.mark.parametrize(("checks", "code", "status"), [
    ([check_broken], 3, "UNKNOWN"),                   # Nagios: the plug-in could not check
    ([check_broken, check_critical], 2, "CRITICAL"),  # a finding still pages
])
def test_a_bug_inside_doctor_is_unknown_not_drkits_internal_error(tmp_path, monkeypatch,
                                                                   checks, code, status):
    from drkit.health import doctor as doctor_module

    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db.internal, databases: [shop]}\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    monkeypatch.setattr(doctor_module, "CHECKS", {"all": checks})
    result = run_cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert (result.exit_code, report["status"]) == (code, status)
    broken = next(c for c in report["checks"] if c["name"] == "broken")
    assert broken["status"] == "UNKNOWN" and "internal error: KeyError" in broken["detail"]


def test_databases_interrupted_runs_left_on_the_target_are_named(doctor_env):
    """A restore --replace or a drill killed outright (kill -9, a reboot) cannot clean up:
    doctor names what it left, each kind with what to do about it."""
    left = ("drkit_restore_20260101000000_ab12_0", "drkit_replaced_20260101000000_ab12_0",
            "drkit_drill_20260101000000")
    for database in left:
        dbtools.as_root(doctor_env, "target", f"CREATE DATABASE {database}")
    try:
        _, checks = doctor()
        assert checks["restore leftovers"]["status"] == "WARNING"
        assert left[0] in checks["restore leftovers"]["detail"]
        assert left[1] in checks["restore leftovers"]["detail"]
        assert left[2] not in checks["restore leftovers"]["detail"]
        assert checks["drill leftovers"]["status"] == "WARNING"
        assert left[2] in checks["drill leftovers"]["detail"]
        assert "DROP DATABASE" in checks["drill leftovers"]["fix"]
    finally:
        for database in left:
            dbtools.as_root(doctor_env, "target", f"DROP DATABASE {database}")
