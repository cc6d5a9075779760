"""``drkit show BACKUP``: one backup on one screen (Barman's show-backup): its manifest,
its verification, how far a point-in-time restore reaches from it, its earlier versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from tests import dbtools
from tests.helpers import run_cli
from tests.test_pitr import pitr  # noqa: F401 (the fixture, reused)


@pytest.mark.integration
@pytest.mark.usefixtures("pitr")
def test_show_names_the_manifest_the_verification_and_the_reach_of_a_backup(sandbox):
    name = json.loads(run_cli("backup", "--json").stdout)["backup"]
    unverified = json.loads(run_cli("show", name, "--json").stdout)
    assert unverified["verified"] is None and unverified["ok"] is True
    assert unverified["pitr"] is None
    assert unverified["pitr_note"] == "the binlog archive holds no event after it"

    assert run_cli("verify", name).exit_code == 0
    dbtools.query(sandbox, "source", "INSERT INTO shop.pitr_log VALUES (NOW(6), 'show')")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    newest = json.loads(run_cli("binlog", "status", "--json").stdout)["newest_event_at"]

    shown = json.loads(run_cli("show", "latest", "--json").stdout)
    assert shown["backup"] == name and shown["verified"] == "ok"
    assert shown["binlog_exact"] and shown["binlog_start"].startswith("binlog.")
    assert shown["tables"] > 0 and shown["sql_bytes"] > shown["compressed_bytes"] > 0
    assert shown["pitr"]["until"] == newest and shown["pitr"]["cut_by"] is None
    assert shown["earlier_versions"] == []  # Azurite keeps no versions

    text = run_cli("show", name)
    assert text.exit_code == 0, text.stderr
    rows = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert rows["backup"] == name
    assert rows["verified"] == f"ok, {shown['verified_at']}"
    assert rows["binlog"].startswith(f"{shown['binlog_start']} (exact: ")
    assert rows["PITR"] == (f"from {shown['pitr']['from']} until {newest}: to the archive's "
                            "newest event")
    assert rows["databases"].startswith("shop: ") and rows["versions"] == \
        "no earlier version kept"
    missing = run_cli("show", "backup-20000101-000000.sql.gz")
    assert missing.exit_code == 24 and "No backup matches" in missing.stderr


def test_earlier_versions_are_those_of_the_backup_and_its_manifest_only():
    import contextlib

    from drkit.azure.catalog import Catalog

    now = datetime.now(UTC)
    name = "b/backup-20200101-030000.sql.gz"

    def blob(blob_name: str, version: str, current: bool | None) -> SimpleNamespace:
        return SimpleNamespace(name=blob_name, version_id=version, is_current_version=current,
                               size=10, last_modified=now)

    blobs = [blob(name, "v1", None), blob(name, "v2", True),
             blob(name + ".manifest.json", "v3", None),
             blob(name + ".manifest.json", "v4", True),
             blob(name + ".other", "v5", None)]  # shares the prefix, is not the backup's
    store = SimpleNamespace(container=SimpleNamespace(
        list_blobs=lambda name_starts_with, include: iter(blobs)),
        translated_errors=contextlib.nullcontext)
    assert [v.version_id for v in Catalog(store).earlier_versions_of(name)] == ["v1", "v3"]
