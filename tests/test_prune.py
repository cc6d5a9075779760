"""Retention on the sandbox's blob storage."""

from __future__ import annotations

import json
import uuid

from drkit.azure.catalog import VERIFIED_TAG
from tests.helpers import run_cli


def test_prune_keeps_the_newest_verified_and_pairs_manifests(sandbox, store, monkeypatch):
    prefix = f"p-{uuid.uuid4().hex[:8]}/"
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    monkeypatch.setenv("DRKIT_STORAGE__PREFIX", prefix)
    names = {
        "old_verified": f"{prefix}backup-20200101-030000.sql.gz",
        "older": f"{prefix}backup-20191231-030000.sql.gz",
        "old_unverified": f"{prefix}backup-20200102-030000.sql.gz",
        "recent": f"{prefix}backup-29991231-030000.sql.gz",
    }
    for name in names.values():
        store.container.upload_blob(name, b"x")
        store.container.upload_blob(name + ".manifest.json", b"{}")
    store.container.get_blob_client(names["old_verified"]).set_blob_tags({VERIFIED_TAG: "ok"})
    orphan = f"{prefix}backup-20190101-030000.sql.gz.manifest.json"
    store.container.upload_blob(orphan, b"{}")
    before = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))

    dry = run_cli("prune", "--older-than", "30d", "--json")
    assert dry.exit_code == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["deleted"] == []
    assert plan["keep"] == {names["old_verified"]: "the newest verified backup"}
    assert plan["delete"] == [names["older"], names["older"] + ".manifest.json",
                              names["old_unverified"], names["old_unverified"] + ".manifest.json",
                              orphan]
    assert sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix)) == before

    done = run_cli("prune", "--older-than", "30d", "--yes")
    assert done.exit_code == 0
    left = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))
    assert left == sorted([names["old_verified"], names["old_verified"] + ".manifest.json",
                           names["recent"], names["recent"] + ".manifest.json"])


def test_bad_duration_is_a_usage_error(sandbox, monkeypatch):
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    result = run_cli("prune", "--older-than", "a month")
    assert result.exit_code == 2
    assert "is not a duration; write e.g. 30d" in result.stderr
