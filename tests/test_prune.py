"""Retention on the sandbox's blob storage."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import STALE, Catalog
from drkit.errors import BackupNotFoundError
from tests.helpers import run_cli


def mark_verified(store: BackupStore, prefix: str, name: str) -> Catalog:
    """Record an "ok" verification of ``name`` as verify does (bound to its ETags, signed
    with the sandbox's identity)."""
    catalog = Catalog(store.under(prefix))
    catalog.record_verification(catalog.select(name), "ok")
    return catalog


def test_prune_keeps_each_databases_newest_verified_and_pairs_manifests(sandbox, store,
                                                                         monkeypatch):
    """Before: one verified backup was kept for the whole container, so every backup of
    another database went, and a stale tag was trusted. Now each database keeps its newest
    verified backup (verified as it is now) and everything newer."""
    prefix = f"p-{uuid.uuid4().hex[:8]}/"
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    monkeypatch.setenv("DRKIT_STORAGE__PREFIX", prefix)
    names = {
        "shop_older": ("backup-20191231-030000.sql.gz", "shop"),
        "shop_verified": ("backup-20200101-030000.sql.gz", "shop"),
        "shop_newer_unverified": ("backup-20200102-030000.sql.gz", "shop"),
        "inv_only_unverified": ("backup-20200101-040000.sql.gz", "inv"),
        "crm_stale": ("backup-20200103-030000.sql.gz", "crm"),
        "crm_older": ("backup-20200101-050000.sql.gz", "crm"),
        "shop_recent": ("backup-29991231-030000.sql.gz", "shop"),
    }
    names = {key: (prefix + name, db) for key, (name, db) in names.items()}
    for name, database in names.values():
        store.container.upload_blob(name, b"x", metadata={"databases": database})
        store.container.upload_blob(name + ".manifest.json", b"{}")
    mark_verified(store, prefix, names["shop_verified"][0])
    mark_verified(store, prefix, names["crm_stale"][0])
    store.container.upload_blob(names["crm_stale"][0] + ".manifest.json", b'{"x": 1}',
                                overwrite=True)  # changed after its verification
    orphan = f"{prefix}backup-20190101-030000.sql.gz.manifest.json"
    store.container.upload_blob(orphan, b"{}")
    before = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))

    dry = run_cli("prune", "--older-than", "30d", "--json")
    assert dry.exit_code == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["deleted"] == []
    shop_older = names["shop_older"][0]
    assert plan["delete"] == [shop_older, shop_older + ".manifest.json", orphan]
    assert plan["keep"] == {
        names["shop_verified"][0]: "the newest verified backup of shop",
        names["shop_newer_unverified"][0]: "newer than the newest verified backup of shop",
        names["inv_only_unverified"][0]: "inv has no verified backup",
        names["crm_stale"][0]: "crm has no verified backup",
        names["crm_older"][0]: "crm has no verified backup",
    }
    assert plan["databases"]["inv"] == "has no verified backup: none of its backups is deleted"
    assert sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix)) == before

    done = run_cli("prune", "--older-than", "30d", "--yes")
    assert done.exit_code == 0
    assert "shop: keeps" in done.stdout and "inv: has no verified backup" in done.stdout
    left = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))
    assert left == sorted(set(before) - {shop_older, shop_older + ".manifest.json", orphan})


def test_bad_duration_is_a_usage_error(sandbox, monkeypatch):
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    result = run_cli("prune", "--older-than", "a month")
    assert result.exit_code == 2
    assert "is not a duration; write e.g. 30d" in result.stderr


def test_a_verification_no_longer_counts_once_blob_or_manifest_changed(store):
    prefix = f"v-{uuid.uuid4().hex[:8]}/"
    older, newer = (f"{prefix}backup-2020010{day}-030000.sql.gz" for day in (1, 2))
    for name in (older, newer):
        store.container.upload_blob(name, b"x")
        store.container.upload_blob(name + ".manifest.json", b"{}")
        catalog = mark_verified(store, prefix, name)
    assert catalog.select("latest-verified").name == newer
    store.container.upload_blob(newer + ".manifest.json", b'{"altered": 1}', overwrite=True)
    assert catalog.select("latest-verified").name == older
    assert catalog.select(newer).verified == STALE
    store.container.upload_blob(older, b"y", overwrite=True)
    with pytest.raises(BackupNotFoundError):
        catalog.select("latest-verified")
    # A tag written without the binding (by hand, or an older drkit) is not trusted either.
    store.container.get_blob_client(older).set_blob_tags({"drkit_verified": "ok"})
    assert catalog.select(older).verified == STALE


def test_versions_of_what_is_deleted_go_and_those_of_what_stays_do_not():
    """Azurite has no blob versioning, so this is the rule alone, over listings shaped as
    Azure's List Blobs (include=versions) returns them: earlier versions carry a VersionId
    and IsCurrentVersion false; a deleted blob leaves only earlier versions."""
    from drkit.azure.catalog import BlobVersion
    from drkit.ops.prune import versions_to_delete

    old = datetime.now(UTC) - timedelta(days=40)
    versions = [
        BlobVersion("b/backup-1.sql.gz", "v1", 100, old),  # pruned now
        BlobVersion("b/backup-1.sql.gz.manifest.json", "v2", 5, old),  # pruned now
        BlobVersion("b/backup-2.sql.gz.manifest.json", "v3", 5, old),  # stays: kept backup
        # Deleted by hand long ago: its version is what could bring it back. Kept.
        BlobVersion("b/backup-0.sql.gz", "v4", 90, old),
    ]
    doomed = versions_to_delete(versions, ["b/backup-1.sql.gz",
                                           "b/backup-1.sql.gz.manifest.json"])
    assert [v.version_id for v in doomed] == ["v1", "v2"]
