"""Immutable retention and a backup side that cannot delete, over listings shaped like
Azure's (Azurite has no immutability): prune deletes only what the policy allows and says
until when the rest is locked; a backup side's failed claim is marked, not deleted; doctor
tells the sides and their credentials apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobProperties, ImmutabilityPolicy

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import VERIFIED_BLOB_TAG, VERIFIED_MANIFEST_TAG, VERIFIED_TAG
from drkit.azure.credentials import sas_fields
from drkit.config import Settings
from drkit.errors import BackupExistsError, ConfigError
from drkit.health.side_checks import storage_side_checks
from drkit.manifest import SIDECAR_SUFFIX
from drkit.ops.claim import NameClaim, orphan_claims
from drkit.ops.prune import execute_prune, plan_prune

NOW = datetime.now(UTC)
OLD = "p/backup-20200101-030000.sql.gz.age"  # under retention until tomorrow
OLDER = "p/backup-20191201-030000.sql.gz.age"  # its retention has ended
NEWEST = "p/backup-20200201-030000.sql.gz.age"  # verified: kept


def _version(name: str, version: str, *, current: bool, until: datetime | None,
             tags: dict | None = None) -> BlobProperties:
    """One entry of List Blobs with include=versions,immutabilitypolicy, as the SDK gives it."""
    blob = BlobProperties(name=name, metadata={"databases": "shop"})
    blob.version_id, blob.is_current_version, blob.tags = version, current or None, tags
    blob.size, blob.etag, blob.last_modified = 100, f'"e-{name}"', NOW
    if until is not None:
        blob.immutability_policy = ImmutabilityPolicy(expiry_time=until, policy_mode="Locked")
    return blob


class _Container:
    """A container client's listing and deletes: what Azure would answer."""

    container_name, url = "mysql-backups", "https://acct.blob.core.windows.net/mysql-backups"

    def __init__(self, blobs: list[BlobProperties], refused: set[str] = frozenset()) -> None:
        self.blobs, self.refused, self.deleted = blobs, refused, []

    def list_blobs(self, name_starts_with: str = "", include=None):
        return [b for b in self.blobs if b.name.startswith(name_starts_with)
                and ("versions" in (include or []) or b.is_current_version)]

    def download_blob(self, name: str):
        [blob] = [b for b in self.blobs if b.name == name and b.is_current_version]
        return SimpleNamespace(readall=lambda: blob.content)

    def delete_blob(self, name: str, version_id: str | None = None, timeout: int = 0) -> None:
        if name in self.refused:  # Azure's answer to a delete under retention
            error = HttpResponseError(message="This operation is not permitted as the blob is "
                                      "immutable due to a policy.")
            error.status_code, error.error_code = 409, "BlobImmutableDueToPolicy"
            raise error
        self.deleted.append((name, version_id))
        self.blobs = [b for b in self.blobs if not (b.name == name and (
            version_id is None and b.is_current_version or b.version_id == version_id))]


def _estate(refused: set[str] = frozenset()) -> BackupStore:
    def verified(name: str) -> dict:
        return {VERIFIED_TAG: "ok", VERIFIED_BLOB_TAG: f"e-{name}",
                VERIFIED_MANIFEST_TAG: f"e-{name}{SIDECAR_SUFFIX}"}
    tomorrow, yesterday = NOW + timedelta(days=1), NOW - timedelta(days=1)
    blobs = [_version(OLDER, "v1", current=True, until=yesterday),
             _version(OLDER + SIDECAR_SUFFIX, "v1", current=True, until=yesterday),
             _version(OLDER, "v0", current=False, until=tomorrow),  # an earlier, still locked
             _version(OLD, "v2", current=True, until=tomorrow),
             _version(OLD + SIDECAR_SUFFIX, "v2", current=True, until=yesterday),
             _version(NEWEST, "v3", current=True, until=NOW + timedelta(days=30),
                      tags=verified(NEWEST)),
             _version(NEWEST + SIDECAR_SUFFIX, "v3", current=True, until=None)]
    return BackupStore(_Container(blobs, refused), "p/", "acct")  # type: ignore[arg-type]


def test_prune_deletes_what_retention_allows_and_names_until_when_the_rest_is_locked():
    store = _estate()
    plan = plan_prune(store, 0)
    assert plan.delete == [OLDER, OLDER + SIDECAR_SUFFIX]
    # The locked backup stays with its manifest (unlocked itself: the pair goes together),
    # each named with its lock's end; so does the earlier version of the deleted backup.
    tomorrow = _version(OLD, "x", current=True, until=NOW + timedelta(days=1))
    until = tomorrow.immutability_policy.expiry_time.isoformat()
    assert plan.locked == {OLD: until, OLD + SIDECAR_SUFFIX: until,
                           f"{OLDER}?versionid=v0": until}
    assert plan.versions == []
    execute_prune(store, plan)
    assert store.container.deleted == [(OLDER, None), (OLDER + SIDECAR_SUFFIX, None)]


def test_a_delete_azure_refuses_for_retention_is_recorded_and_the_run_goes_on():
    store = _estate(refused={OLDER})
    plan = execute_prune(store, plan_prune(store, 0))
    assert plan.deleted == [OLDER + SIDECAR_SUFFIX]
    assert "Azure refused the delete" in plan.locked[OLDER]
    assert plan.as_dict()["ok"] is True


def test_prune_deletes_a_claim_its_failed_backup_marked_however_young():
    store = _estate()
    claim = f"p/backup-{NOW:%Y%m%d-%H%M%S}.sql.gz.age{SIDECAR_SUFFIX}"
    blob = _version(claim, "v9", current=True, until=None)
    blob.content = json.dumps({"format": "drkit-claim/1", "host": "backup-host", "pid": 7,
                               "claimed_at": NOW.isoformat(), "failed_at": NOW.isoformat()})
    store.container.blobs.append(blob)
    assert claim in plan_prune(store, 30 * 86400).delete


def test_prune_with_a_credential_that_cannot_delete_refuses_before_deleting_anything():
    store = _estate()
    store.may_delete = False
    with pytest.raises(ConfigError, match="cannot delete") as refused:
        execute_prune(store, plan_prune(store, 0))
    assert refused.value.fix == "Run drkit prune on the Azure side, with its config."
    assert store.container.deleted == []


class _ClaimStore:
    """What a name claim asks of a store: conditional writes, reads, a listing."""

    prefix, where, may_delete = "p/", "container c", False

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}

    def exists(self, name: str) -> bool:
        return name in self.blobs

    def put_json(self, name: str, value: dict, *, replacing: str | None = None) -> str:
        if (replacing is None) == (name in self.blobs) or (
                replacing and self.blobs[name][1] != replacing):
            raise BackupExistsError(f"{name}: condition failed")
        etag = f"e{len(self.blobs)}-{replacing}"
        self.blobs[name] = (json.dumps(value).encode(), etag)
        return etag

    def delete(self, name: str) -> None:
        raise AssertionError("the backup side never tries to delete")

    def read(self, name: str) -> bytes:
        return self.blobs[name][0]


def test_a_failed_backup_on_the_backup_side_marks_its_claim_failed_for_prune():
    store = _ClaimStore()
    claim = NameClaim(store, NOW, "gzip", ["shop"])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), claim:
        raise RuntimeError("the dump failed")
    note = json.loads(store.read(claim.name + SIDECAR_SUFFIX))
    assert note["failed_at"] and note["databases"] == ["shop"]
    # doctor and prune find it at once, whoever's and however young it is
    found = orphan_claims(store, list(store.blobs))  # type: ignore[arg-type]
    assert [c["blob"] for c in found] == [claim.name + SIDECAR_SUFFIX]
    assert found[0]["failed_at"] == note["failed_at"]


def test_sas_fields_read_permissions_and_expiry():
    assert sas_fields("?sv=2025-11-05&ss=b&srt=co&sp=racwlt&se=2099-12-31T00%3A00%3A00Z"
                      "&sig=abc") == ("racwlt", datetime(2099, 12, 31, tzinfo=UTC))
    with pytest.raises(ConfigError, match="does not hold a SAS token"):
        sas_fields("not-a-token")


def _settings(monkeypatch, side: str, auth: str, permissions: str = "racwlt") -> Settings:
    monkeypatch.setenv("TEST_STORAGE_KEY", "a2V5")
    monkeypatch.setenv("TEST_STORAGE_SAS", f"sv=2025-11-05&sp={permissions}&se=2099-01-01"
                                           "T00:00:00Z&sig=abc")
    storage = {"account": "acct", "auth": auth, "key": "env:TEST_STORAGE_KEY",
               "sas": "env:TEST_STORAGE_SAS"}
    return Settings(side=side, source={"host": "db", "databases": ["shop"]}, storage=storage)


@pytest.mark.parametrize("side,credential,status,says", [
    ("backup", "key", "WARNING", "the backup side holds the storage account key"),
    ("backup", "sas:racwdlt", "WARNING", "the backup side holds a SAS (sp=racwdlt)"),
    ("backup", "sas:racwlt", "OK", "cannot delete backups, manifests or archived files"),
    ("both", "key", "WARNING", "one config for both sides"),
    ("azure", "key", "OK", "Azure side"),
])
def test_doctor_says_the_side_and_warns_where_the_backup_host_can_delete(
        monkeypatch, side, credential, status, says):
    auth, _, permissions = credential.partition(":")
    [check] = storage_side_checks(_settings(monkeypatch, side, auth, permissions or "racwlt"))
    assert (check.name, check.status) == ("storage side", status)
    assert says in check.detail
    if status == "WARNING":
        assert "side: backup, storage.auth: sas" in check.fix and "sp=racwlt" in check.fix


def test_a_blobs_link_never_carries_the_backup_sides_sas():
    """drkit run prints and publishes its record's link: the SDK's URL held the token."""
    from azure.storage.blob import ContainerClient

    sas = "sv=2026-10-06&ss=b&srt=co&sp=racwlt&se=2099-01-01T00:00:00Z&sig=SECRETSIG"
    store = BackupStore(ContainerClient("https://acct.blob.core.windows.net", "dr-audit",
                                        credential=sas), "", "acct")
    assert store.url("run/notebook.html") == \
        "https://acct.blob.core.windows.net/dr-audit/run/notebook.html"
