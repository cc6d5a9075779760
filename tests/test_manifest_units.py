"""A backup's manifest: its summary on the blob, the names in it, the sidecar beside it
(drkit.manifest)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from drkit.azure.catalog import BackupEntry
from drkit.manifest import Digest, Manifest, TableEntry, decode_names, encode_names
from drkit.ops.verify import _content_differences, label_difference
from drkit.stream.dumpscan import DumpScanner

_AT = {"file": "binlog.000001", "position": 4, "gtid": "0-1-5"}


def _manifest(**changes) -> Manifest:
    fields = dict(
        name="backups/shop-20261207-010203.sql.zst", drkit_version="0.3.0",
        started_at=datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC),
        finished_at=datetime(2026, 12, 7, 1, 4, 5, tzinfo=UTC), duration_seconds=122.0,
        source={"flavour": "mariadb"}, databases=["shop", "crm"],
        consistency={"binlog_exact": True, "binlog_snapshot": _AT}, dump={"program": "mysqldump"},
        compression={"codec": "zstd", "level": 3},
        compressed=Digest(size=1234, sha256="c" * 64), sql=Digest(size=98765, sha256="s" * 64),
        tables={"shop.orders": TableEntry(rows=40, sha256="o" * 64),
                "crm.people": TableEntry(rows=2, sha256="p" * 64, engine="InnoDB")},
        objects={"view": ["shop.v"]})
    return Manifest(**{**fields, **changes})


def test_the_blobs_summary_holds_the_figures_in_ascii_text():
    metadata = _manifest().metadata()
    assert metadata == {
        "drkit_manifest": "shop-20261207-010203.sql.zst.manifest.json",
        "drkit_version": "0.3.0", "databases": "shop,crm", "compression": "zstd",
        "started_at": "2026-12-07T01:02:03+00:00", "finished_at": "2026-12-07T01:04:05+00:00",
        "size": "1234", "sha256": "c" * 64, "sql_size": "98765", "sql_sha256": "s" * 64,
        "tables": "2", "rows": "42"}
    assert all(value.isascii() for value in metadata.values())


def test_the_sidecar_lies_beside_the_backup():
    assert _manifest().sidecar_name == "backups/shop-20261207-010203.sql.zst.manifest.json"


@pytest.mark.parametrize("names", [
    ["shop"], ["a,b", "c"], ["über", "商店"], ["50%", "a b", "x/y"], []])
def test_database_names_survive_the_metadata_header(names):
    encoded = encode_names(names)
    assert encoded.isascii() and encoded.count(",") == max(len(names) - 1, 0)
    assert decode_names(encoded) == names


def test_all_of_its_databases_asked_for_is_the_manifest_itself():
    manifest = _manifest()
    assert manifest.only(["crm", "shop", "other"]) is manifest


def test_a_manifest_of_another_format_is_refused():
    with pytest.raises(ValidationError, match="drkit-manifest/1"):
        _manifest(format="drkit-manifest/2")


def test_a_manifest_written_before_definitions_and_time_zones_still_reads():
    data = _manifest().model_dump(mode="json")
    del data["definitions"], data["time_zones"]
    old = Manifest.model_validate(data)
    assert old.definitions == {} and old.time_zones == []
    assert Manifest.model_validate_json(_manifest().model_dump_json()) == _manifest()


@pytest.mark.parametrize("consistency", [
    {"binlog_exact": True}, {"binlog_exact": True, "binlog_snapshot": "binlog.000001:4"},
    {"binlog_exact": False, "binlog_snapshot": None, "binlog_before": {"file": 1}},
    {"binlog_snapshot": {"file": "binlog.000001", "position": "4"}}])
def test_a_manifest_whose_binlog_coordinates_are_not_coordinates_is_refused(consistency):
    """Rewritten so, a restore --until or show would stop with an internal error (1) where
    they read them; refused, load_manifest calls it damaged (33)."""
    with pytest.raises(ValidationError, match="consistency"):
        _manifest(consistency=consistency)


def test_a_manifest_of_a_source_without_a_binary_log_holds_none():
    off = {"file": None, "position": None, "unavailable": "binary logging is off"}
    assert _manifest(consistency={"binlog_exact": False, "binlog_snapshot": None,
                                  "binlog_before": off, "binlog_after": off}
                     ).consistency["binlog_exact"] is False


def _entry(databases: list[str]) -> BackupEntry:
    return BackupEntry(name="backups/shop-20261207-010203.sql.zst", size=1234,
                       taken_at=datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC),
                       compression="zstd", databases=databases, has_manifest=True)


def test_verify_refuses_a_backup_whose_metadata_names_databases_its_manifest_does_not():
    """The backup host's SAS can relabel a backup of shop as "shop,crm": verified so, it
    would be crm's newest verified backup, and prune would delete crm's real ones."""
    manifest = _manifest()  # shop, crm
    assert label_difference(_entry(["crm", "shop"]), manifest) is None
    assert label_difference(_entry([]), manifest) is None  # metadata of an older drkit
    assert label_difference(_entry(["shop", "crm", "billing"]), manifest) == (
        "is labelled as holding shop, crm, billing (its blob's metadata), its manifest "
        "says shop, crm")


def test_verify_finds_a_database_the_manifest_names_and_the_dump_does_not_hold():
    """A manifest rewritten to name crm beside shop (no crm table: no table check fails)
    would make a verified backup of shop crm's newest."""
    scanner = DumpScanner()
    scanner.feed(b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`;\nUSE `shop`;\n"
                 b"CREATE DATABASE `we``ird`;\n")
    scanner.close()
    assert scanner.databases == {"shop", "we`ird"}
    manifest = _manifest(databases=["shop", "crm", "we`ird"], tables={})
    assert "database crm is not in the dump" in _content_differences(
        manifest, scanner, manifest.sql.size, manifest.sql.sha256)
