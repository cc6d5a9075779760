"""The backup side on the sandbox, with its SAS without delete (``drkit-backup.yaml``): it
backs up and streams the binlog; an attacker holding only that credential cannot delete a
backup, its manifest or an archived file; doctor tells the sides apart; the Azure side's
doctor reads the container's immutability policy through Resource Manager."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.core.exceptions import HttpResponseError

from drkit.aws.clients import boto_client
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.azure.verdicts import FORGED, UNCHECKED
from drkit.config import load_settings
from drkit.errors import DumpFailedError, StorageAuthError
from drkit.health.doctor import Doctor, check_backup_age, check_secrets, check_storage
from drkit.health.side_checks import immutability_checks, storage_side_checks
from drkit.manifest import SIDECAR_SUFFIX
from drkit.ops.claim import orphan_claims
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def backup_side(sandbox, tmp_path, monkeypatch):
    """The CLI pointed at the sandbox's backup-side config, under a prefix of its own."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.backup_config_path))
    monkeypatch.setenv("DRKIT_BINLOG__FLUSH_SECONDS", "0.5")
    return prefix


def test_the_backup_side_backs_up_and_streams_and_cannot_delete_what_it_wrote(
        sandbox, backup_side, monkeypatch):
    backup = run_cli("backup", "--json")
    assert backup.exit_code == 0, backup.stderr
    name = json.loads(backup.stdout)["backup"]
    stream = run_cli("binlog", "stream", "--once", "--json")
    assert stream.exit_code == 0, stream.stderr
    settings = load_settings()
    assert (settings.side, settings.storage.auth) == ("backup", "sas")
    attacker = BackupStore.from_settings(settings, prefix="")
    archived = [b.name for b in attacker.blobs(settings.binlog.prefix)]
    assert archived, "the stream archived nothing"
    targets = [name, name + SIDECAR_SUFFIX, *archived]
    for target in targets:
        with pytest.raises(StorageAuthError, match="denied this identity"):
            attacker.delete(target)
        with pytest.raises(HttpResponseError) as refused:  # the SDK itself, as an attacker
            attacker.container.delete_blob(target, delete_snapshots="include")
        assert refused.value.status_code == 403
    # Prune refuses on this side before it deletes anything; nor does it reach the DR
    # target, even with a target section (the sandbox writes none on this side).
    pruned = run_cli("prune", "--older-than", "0s", "--yes")
    assert pruned.exit_code == 3 and "Run drkit prune on the Azure side" in pruned.stderr
    assert "target" not in load_settings().model_fields_set
    monkeypatch.setenv("DRKIT_TARGET__HOST", "127.0.0.1")
    monkeypatch.setenv("DRKIT_TARGET__USER", "drkitadmin")
    for command in (("restore", name, "--as", "from_backup_side"), ("standby", "status")):
        refused = run_cli(*command)
        assert refused.exit_code == 3 and "backup side's (side: backup)" in refused.stderr, \
            refused.stderr
    monkeypatch.delenv("DRKIT_TARGET__HOST")
    monkeypatch.delenv("DRKIT_TARGET__USER")
    # Nor is it told to take the identity, or to run the Azure side's runbooks (which left
    # failed records, and the failover turned the maintenance page on, before failing).
    for command in (("verify", name), ("restore", name, "--check"),
                    ("run", "restore-drill"), ("run", "failover", "-p", "approve=true")):
        refused = run_cli(*command)
        assert refused.exit_code == 3, refused.stdout + refused.stderr
        assert "side" in refused.stderr and "encryption.identity" not in refused.stderr
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))  # the Azure side sees all
    azure_side = BackupStore.from_settings(load_settings(), prefix="")
    assert all(azure_side.exists(target) for target in targets)


def _backup() -> str:
    result = run_cli("backup", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["backup"]


def test_a_backup_the_attacker_overwrote_and_tagged_verified_is_not_verified(
        sandbox, backup_side, monkeypatch):
    """The attack: with only the backup side's SAS, through the SDK, overwrite the newest
    backup with damaged bytes and tag it verified, bound to its new ETags (the Azure side's
    signature copied along). Before, the Azure side took it as its newest verified backup,
    and prune, keeping only the newest verified and what is newer, deleted the good one
    before it. Now only the Azure side's signature makes a verdict: it reads "forged"."""
    older, newer = _backup(), _backup()
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))  # the Azure side verifies
    for name in (older, newer):
        assert run_cli("verify", name).exit_code == 0
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.backup_config_path))
    listed = json.loads(run_cli("list", "--json").stdout)["backups"]
    assert [e["verified"] for e in listed] == [UNCHECKED, UNCHECKED]  # no identity here
    attacker = BackupStore.from_settings(load_settings()).container  # the SAS, no delete
    blob = attacker.get_blob_client(newer)
    tags = blob.get_blob_tags()
    blob.upload_blob(b"damaged", overwrite=True)
    etags = [attacker.get_blob_client(n).get_blob_properties().etag.strip('"')
             for n in (newer, newer + SIDECAR_SUFFIX)]
    blob.set_blob_tags({**tags, "drkit_verified": "ok", "drkit_verified_blob": etags[0],
                        "drkit_verified_manifest": etags[1]})

    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    settings = load_settings()
    assert Catalog(BackupStore.from_settings(settings)).select("latest-verified").name == older
    plan = json.loads(run_cli("prune", "--older-than", "0s", "--json").stdout)
    assert older not in plan["delete"], plan
    assert plan["keep"][older].startswith("the newest verified backup of ")
    [forged] = [c for c in check_backup_age(Doctor(settings, "sandbox"))
                if c.name == "forged verdicts"]
    assert forged.status == "CRITICAL" and newer in forged.detail
    assert "drkit verify" in forged.fix
    assert Catalog(BackupStore.from_settings(settings)).select(newer).verified == FORGED
    refused = run_cli("restore", newer, "--as", "shop_forged")  # a tamper sign: never loaded
    assert refused.exit_code == 31 and "(forged)" in refused.stderr, refused.stderr


def test_a_backup_failing_on_the_backup_side_leaves_its_claim_marked_for_the_azure_side(
        sandbox, backup_side, monkeypatch):
    """Before, the failed run deleted its claim; this credential cannot, so the run marks it
    failed, doctor names it, and the Azure side's prune deletes it."""
    from drkit.mysql import inventory

    def unreadable(*_args):
        raise DumpFailedError("The source's tables could not be listed.")
    monkeypatch.setattr(inventory, "table_engines", unreadable)  # just after the claim
    failed = run_cli("backup")
    assert failed.exit_code == DumpFailedError.exit_code, failed.stderr
    assert "Traceback" not in failed.stderr
    store = BackupStore.from_settings(load_settings())
    [claim] = orphan_claims(store)
    assert claim["failed_at"]
    [named] = [c for c in check_storage(Doctor(load_settings(), "sandbox"))
               if c.name == "backup name claim"]
    assert "marked failed" in named.detail and "prune --yes deletes it" in named.fix
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    pruned = run_cli("prune", "--yes", "--json")
    assert json.loads(pruned.stdout)["deleted"] == [claim["blob"]]
    assert not store.exists(claim["blob"])


def test_doctor_names_the_side_and_the_credential_that_can_delete(sandbox, backup_side,
                                                                   monkeypatch):
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["storage side"]["status"] == "OK", checks["storage side"]
    assert "a SAS (sp=rwlact): cannot delete" in checks["storage side"]["detail"]
    assert checks["audit container"]["status"] == "OK"  # probed without a delete
    assert "immutable retention" not in checks  # read by the Azure side, with its login
    assert "Azure-side secrets in AWS" not in checks  # the sandbox keeps them in the vault
    # The seed's layout: the account key and the DR target's password in the AWS secret.
    seed = f"backup-credentials-seed-{uuid.uuid4().hex[:6]}"
    boto_client(load_settings().aws, "secretsmanager").create_secret(
        Name=seed, SecretString=json.dumps({**sandbox.secret(), **sandbox.azure_secrets()}))
    monkeypatch.setenv("DRKIT_AWS__SECRET_ID", seed)
    [_, held] = check_secrets(Doctor(load_settings(), "sandbox"))
    assert held.status == "WARNING" and held.name == "Azure-side secrets in AWS"
    assert "azure_storage_key, azure_mysql_password" in held.detail
    assert "Key Vault" in held.fix
    # The seed's layout: the backup host with the account key.
    monkeypatch.setenv("DRKIT_STORAGE__AUTH", "key")
    [check] = storage_side_checks(load_settings())
    assert check.status == "WARNING" and "storage account key" in check.detail


def test_the_azure_side_reads_the_immutability_policy_through_resource_manager(
        sandbox, arm, monkeypatch):
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    settings = load_settings()
    account = ("bloberry01", settings.storage.container)
    [none] = immutability_checks(settings)
    assert none.status == "CRITICAL" and "no time-based retention policy" in none.detail
    arm.immutability_policies[account] = {"days": 30, "state": "Unlocked"}
    [unlocked] = immutability_checks(load_settings())
    assert unlocked.status == "WARNING" and "unlocked" in unlocked.detail
    arm.immutability_policies[account] = {"days": 30, "state": "Locked"}
    [locked] = immutability_checks(load_settings())
    assert (locked.status, locked.detail) == (
        "OK", "container mysql-backups: every version kept 30 days, policy Locked")
    assert any(path.endswith("/containers/mysql-backups/immutabilityPolicies/default")
               for _, path in arm.requests)
