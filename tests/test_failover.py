"""The failover runbook through papermill, against the sandbox and the ARM stand-in."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from drkit.aws.clients import boto_client
from drkit.azure import maintenance
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import load_settings
from drkit.ops.backup import run_backup
from drkit.ops.verify import verify_backup
from drkit.sandbox.services import free_port
from tests import dbtools
from tests.conftest import repo_root
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def incident(sandbox, arm, tmp_path, monkeypatch):
    """The primary is down (RDS says stopped), one verified backup exists, target is empty."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    store = BackupStore.from_settings(settings)
    result = run_backup(settings)
    verify_backup(store, Catalog(store).select(result.name))
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    rds = boto_client(settings.aws, "rds")
    rds.stop_db_instance(DBInstanceIdentifier=settings.source.rds_instance_id)
    yield store
    rds.start_db_instance(DBInstanceIdentifier=settings.source.rds_instance_id)
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")


def _audit(settings, run_id: str) -> dict:
    store = BackupStore.from_settings(settings, container="dr-audit",
                                      prefix="")
    blob = next(b.name for b in store.container.list_blobs() if b.name.endswith(
        f"/{run_id}/run.json"))
    return json.loads(store.container.download_blob(blob).readall())


def test_unattended_run_without_approval_changes_nothing(sandbox, arm, incident, settings):
    result = run_cli("run", "failover", "--json")
    assert result.exit_code == 45, result.stdout
    outcome = json.loads(result.stdout)
    assert "failed at step '2. Decide'" in outcome["message"]
    assert "Not approved: start the failover" in outcome["message"]
    assert arm.servers["drkit-dr"]["state"] == "Stopped"
    assert not [p for m, p in arm.requests if m != "GET" and "/flexibleServers/" in p]
    assert not maintenance.is_up(load_settings())
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM information_schema.SCHEMATA "
                         "WHERE SCHEMA_NAME = 'shop'") == [(0,)]
    run = _audit(load_settings(), outcome["run_id"])
    assert run["results"]["status"] == "not approved"
    assert [s["name"] for s in run["results"]["timeline"]] == ["assess", "decide"]
    assert run["results"]["timeline"][0]["outcome"].startswith("GO:")


def test_full_failover_then_a_rerun_skips_what_is_done(sandbox, arm, incident):
    result = run_cli("run", "failover", "-p", "approve=true", "-p", "firewall_ip=127.0.0.1",
                     "--json")
    assert result.exit_code == 0, result.stdout
    run = _audit(load_settings(), json.loads(result.stdout)["run_id"])
    results = run["results"]
    assert results["status"] == "failed over" and results["proof"] == "passed"
    assert results["rto_seconds"] > 0
    assert [s["name"] for s in results["timeline"]] == [
        "assess", "decide", "maintenance page on", "DR server up", "restore and prove",
        "maintenance page off"]
    assert results["timeline"][-1]["outcome"] == "left up (maintenance_off=False)"
    assert arm.servers["drkit-dr"]["state"] == "Ready"
    assert arm.firewall_rules["drkit-restore-host"]["startIpAddress"] == "127.0.0.1"
    assert maintenance.is_up(load_settings())
    assert dbtools.table_fingerprint(sandbox, "target", "shop") == \
        dbtools.table_fingerprint(sandbox, "source", "shop")
    notebook = json.dumps(run)  # the connection details were shown, the password was not
    assert sandbox.azure_secrets()["azure_mysql_password"] not in notebook

    starts = sum(1 for m, p in arm.requests if p.endswith("/start"))
    again = run_cli("run", "failover", "-p", "approve=true", "-p", "maintenance_off=true",
                    "--json")
    assert again.exit_code == 0, again.stdout
    rerun = _audit(load_settings(), json.loads(again.stdout)["run_id"])["results"]
    timeline = {s["name"]: s["outcome"] for s in rerun["timeline"]}
    assert timeline["DR server up"] == "already Ready"
    assert timeline["restore and prove"].startswith("skipped: restored by an earlier run") \
        and "base only (binlog archive not used" in timeline["restore and prove"]
    # Nothing restored by this run: its restore step is not timed, and it has no RTO.
    skipped = next(s for s in rerun["timeline"] if s["name"] == "restore and prove")
    assert skipped["duration_seconds"] is None and rerun["rto_seconds"] is None
    assert rerun["reached_by"].startswith("kept") and rerun["data_loss_seconds"] > 0
    assert results["reached_by"] == "base only"
    assert timeline["maintenance page off"].startswith("removed")
    assert sum(1 for m, p in arm.requests if p.endswith("/start")) == starts
    assert not maintenance.is_up(load_settings())


def test_a_backup_damaged_after_verification_is_not_failed_over_to(sandbox, arm, incident):
    backup = Catalog(incident).select("latest-verified").name
    original = incident.container.download_blob(backup).readall()
    verified = incident.container.get_blob_client(backup).get_blob_tags()
    # Damaged after it was verified, its old "ok" tag put back: the tag no longer matches.
    incident.container.upload_blob(backup, original[: len(original) * 2 // 3], overwrite=True,
                                   tags=verified)
    failed = run_cli("run", "failover", "-p", "approve=true", "--json")
    assert failed.exit_code == 45, failed.stdout
    assert "there is no verified backup to restore" in json.loads(failed.stdout)["message"]
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'shop'") == []


def test_failure_during_restore_is_recorded_and_a_rerun_completes(sandbox, arm, incident):
    # The target rejects the rows midway (a packet limit too small for them).
    dbtools.as_root(sandbox, "target", "SET GLOBAL max_allowed_packet = 1024")
    try:
        failed = run_cli("run", "failover", "-p", "approve=true", "--json")
    finally:
        dbtools.as_root(sandbox, "target", "SET GLOBAL max_allowed_packet = 512 * 1024 * 1024")
    assert failed.exit_code == 36, failed.stdout
    outcome = json.loads(failed.stdout)
    assert "failed at step '5. Restore and prove'" in outcome["message"]
    run = _audit(load_settings(), outcome["run_id"])
    assert run["failed_cell"]["ename"] == "RestoreFailedError"
    assert run["results"]["timeline"][-1]["outcome"].startswith("failed:")
    assert arm.servers["drkit-dr"]["state"] == "Ready"  # the steps before it are done
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'shop'") == []  # no half

    rerun = run_cli("run", "failover", "-p", "approve=true", "--json")
    assert rerun.exit_code == 0, rerun.stdout
    timeline = {s["name"]: s["outcome"] for s in _audit(
        load_settings(), json.loads(rerun.stdout)["run_id"])["results"]["timeline"]}
    assert timeline["DR server up"] == "already Ready"
    assert timeline["restore and prove"].startswith("restored "), timeline
    assert dbtools.table_fingerprint(sandbox, "target", "shop") == \
        dbtools.table_fingerprint(sandbox, "source", "shop")


def test_data_drkit_did_not_put_there_is_never_overwritten(sandbox, arm, incident):
    dbtools.query(sandbox, "target", "CREATE DATABASE shop")
    dbtools.query(sandbox, "target", "CREATE TABLE shop.someone_elses (id INT)")
    result = run_cli("run", "failover", "-p", "approve=true", "--json")
    assert result.exit_code == 37
    assert "does not match backup" in json.loads(result.stdout)["message"]
    assert dbtools.query(sandbox, "target", "SELECT TABLE_NAME FROM information_schema.TABLES "
                         "WHERE TABLE_SCHEMA = 'shop'") == [("someone_elses",)]


def test_a_notebook_run_by_hand_is_published_as_a_record(sandbox, arm, incident, tmp_path):
    executed = tmp_path / "failover-by-hand.ipynb"
    ran = subprocess.run([sys.executable, "-m", "papermill", str(repo_root() / "notebooks" /
                          "failover.ipynb"), str(executed), "-k", "drkit"],
                         capture_output=True, text=True)
    assert ran.returncode != 0  # stopped at the decision: nothing approved
    never_run = run_cli("audit", "publish", str(repo_root() / "notebooks" / "failover.ipynb"))
    assert never_run.exit_code == 42 and "was never executed" in never_run.stderr
    result = run_cli("audit", "publish", str(executed), "--by", "Kim On-Call")
    assert result.exit_code == 0, result.stderr
    again = run_cli("audit", "publish", str(executed))
    assert again.exit_code == 42 and "was published already" in again.stderr
    resaved = tmp_path / "resaved.ipynb"  # JupyterLab's save: other layout, other metadata
    notebook = json.loads(executed.read_text())
    notebook["metadata"]["saved_by"] = "someone"
    resaved.write_text(json.dumps(notebook, indent=2))
    assert run_cli("audit", "publish", str(resaved)).exit_code == 42
    leaky = tmp_path / "leaky.ipynb"  # an output showing a storage key: kept back, 42 (was
    planted = base64.b64encode(b"k" * 64).decode()  # the notebook's own 45)
    next(c for c in notebook["cells"] if c.get("outputs"))["outputs"].append(
        {"output_type": "stream", "name": "stdout", "text": [f"key={planted}\n"]})
    leaky.write_text(json.dumps(notebook))
    kept = run_cli("audit", "publish", str(leaky))
    assert kept.exit_code == 42 and planted not in kept.stdout + kept.stderr, kept.stderr
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert run_cli("audit", "publish", str(tmp_path / "bad.ipynb")).exit_code == 2
    run_id = result.stdout.split(":", 1)[0]
    run = _audit(load_settings(), run_id)
    assert run["mode"] == "interactive" and run["status"] == "failed"
    assert run["published_by"]["name"] == "Kim On-Call" and run["published_by"]["os_user"]
    assert run["started_at"] and run["started_at"] <= run["ended_at"]
    assert run["failed_cell"]["step"] == "2. Decide"
    assert run["failed_cell"]["ename"] == "NotApprovedError"


def test_a_secret_in_the_incident_message_stops_the_failover_and_its_code_stands(
        sandbox, arm, incident):
    """The page would publish a storage key: the maintenance step refuses (42), nothing after
    it runs, and the record that holds the parameter is kept local, not published, without
    changing the exit code of the first failure."""
    planted = base64.b64encode(b"k" * 64).decode()  # the shape of a storage account key
    result = run_cli("run", "failover", "-p", "approve=true", "-p",
                     f"incident_message=Back soon. key={planted}", "--json")
    assert result.exit_code == 42, result.stdout
    outcome = json.loads(result.stdout)
    assert "maintenance page on" in outcome["message"].lower() or \
        "Maintenance" in outcome["message"], outcome["message"]
    assert planted not in result.stdout + result.stderr
    assert not maintenance.is_up(load_settings())
    assert arm.servers["drkit-dr"]["state"] == "Stopped"


def test_failover_with_aws_gone_reads_every_credential_from_key_vault(
        sandbox, arm, incident, keyvault, aws_gone):
    """The day the failover exists for: AWS refuses every connection. The assessment takes
    that as evidence, every Azure-side credential comes from Key Vault, and the restore is
    proven."""
    result = run_cli("run", "failover", "-p", "approve=true", "-p", "firewall_ip=127.0.0.1",
                     "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    run = _audit(load_settings(), json.loads(result.stdout)["run_id"])
    results = run["results"]
    assert results["status"] == "failed over" and results["proof"] == "passed"
    assert results["timeline"][0]["outcome"].startswith("GO:")  # AWS silent: evidence
    assert dbtools.table_fingerprint(sandbox, "target", "shop") == \
        dbtools.table_fingerprint(sandbox, "source", "shop")
    assert {"GET"} == {method for method, path in arm.requests if path.startswith("/secrets/")}
    assert sandbox.azure_secrets()["azure_storage_key"] not in json.dumps(run)


def test_the_sandbox_config_alone_fails_over_with_aws_and_the_source_gone(
        sandbox, tmp_path, monkeypatch):
    """The issue's rehearsal, with nothing but `drkit sandbox up`'s config: AWS refuses every
    connection and the source is dead; the Azure-side credentials come from the sandbox's
    Key Vault stand-in (a process of its own) and the restore is proven."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    store = BackupStore.from_settings(settings)
    verify_backup(store, Catalog(store).select(run_backup(settings).name))
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    try:
        # Nothing listens on these ports: a dead region's AWS, a dead source.
        monkeypatch.setenv("DRKIT_AWS__ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("DRKIT_SOURCE__PORT", str(free_port()))
        doctor = run_cli("doctor", "--for", "failover")
        assert doctor.exit_code == 0, doctor.stdout + doctor.stderr
        for setting in ("storage.account", "storage.key", "target.password"):
            assert f"{setting} without AWS: from keyvault:" in doctor.stdout, doctor.stdout
        result = run_cli("run", "failover", "-p", "approve=true", "--json")
        assert result.exit_code == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["ok"] is True
        assert dbtools.table_fingerprint(sandbox, "target", "shop") == \
            dbtools.table_fingerprint(sandbox, "source", "shop")
    finally:
        dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
