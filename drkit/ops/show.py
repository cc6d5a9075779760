"""``drkit show BACKUP``: one backup on one screen, as Barman's ``show-backup``.

What its manifest says (when, what, how big, where in the source's binary log it stands),
its verification, how far a point-in-time restore reaches from it (the binlog archive's
cheap check, :mod:`drkit.ops.binlog_verify`: one listing and the records' GETs), and the
earlier versions of its blobs that blob versioning keeps (and bills).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import (
    CIPHERTEXT_OK,
    NOT_FAILED,
    STALE,
    BackupEntry,
    BlobVersion,
    Catalog,
    load_manifest,
)
from drkit.azure.verdicts import FORGED, UNCHECKED
from drkit.config import Settings
from drkit.manifest import Manifest, binlog_coordinates
from drkit.ops import binlog_verify
from drkit.units import duration, human_size


@dataclass
class BackupShown:
    entry: BackupEntry
    manifest: Manifest | None  # None: its manifest is missing
    pitr: dict[str, Any] | None  # {"from", "until", "cut_by"}: the times it restores to
    pitr_note: str  # what the reach means, or why there is none
    earlier_versions: list[BlobVersion]

    def as_dict(self) -> dict[str, Any]:
        entry, manifest = self.entry, self.manifest
        shown: dict[str, Any] = {
            "ok": True, "backup": entry.name, "taken_at": entry.taken_at.isoformat(),
            "databases": entry.databases, "compression": entry.compression,
            "compressed_bytes": entry.size, "verified": entry.verified,
            "verified_at": entry.verified_at, "has_manifest": manifest is not None}
        if manifest is not None:
            snapshot = manifest.consistency.get("binlog_snapshot")
            shown.update({
                "sql_bytes": manifest.sql.size, "sha256": manifest.compressed.sha256,
                "duration_seconds": manifest.duration_seconds,
                "tables": len(manifest.tables),
                "rows": sum(t.rows for t in manifest.tables.values()),
                "objects": {kind: len(names) for kind, names in manifest.objects.items()},
                "time_zones": manifest.time_zones, "source": manifest.source,
                "drkit_version": manifest.drkit_version,
                "binlog_start": binlog_coordinates(snapshot) if snapshot else None,
                "binlog_exact": bool(manifest.consistency.get("binlog_exact")),
                "binlog_method": manifest.consistency.get("binlog_method")})
        shown.update({
            "pitr": self.pitr, "pitr_note": self.pitr_note,
            "earlier_versions": [{"name": v.name, "version_id": v.version_id,
                                  "size_bytes": v.size,
                                  "last_modified": v.last_modified.isoformat()}
                                 for v in self.earlier_versions],
            "earlier_versions_bytes": sum(v.size for v in self.earlier_versions)})
        return shown

    def rows(self) -> list[tuple[str, str]]:
        """The text screen: a label and what it says, one line each."""
        entry, manifest = self.entry, self.manifest
        age = duration((datetime.now(UTC) - entry.taken_at).total_seconds())
        rows = [("backup", entry.name),
                ("taken", f"{entry.taken_at:%Y-%m-%d %H:%M:%S} UTC, {age} ago")]
        if manifest is None:
            rows.append(("manifest", "missing: nothing can be proven or restored from it"))
        else:
            rows += _manifest_rows(manifest)
        rows += [("verified", _verification(entry)),
                 ("PITR", _reach_text(self.pitr, self.pitr_note)),
                 ("versions", _versions_text(self.earlier_versions))]
        return rows


def show_backup(settings: Settings, spec: str) -> BackupShown:
    catalog = Catalog(BackupStore.from_settings(settings))
    entry = catalog.select(spec)
    manifest = load_manifest(catalog.store, entry.name) if entry.has_manifest else None
    pitr, note = _reach(settings, entry, manifest)
    return BackupShown(entry, manifest, pitr, note, catalog.earlier_versions_of(entry.name))


def _reach(settings: Settings, entry: BackupEntry,
           manifest: Manifest | None) -> tuple[dict[str, Any] | None, str]:
    """The times a point-in-time restore from this backup reaches, or why it reaches none."""
    if manifest is None:
        return None, "not a base: its manifest is missing"
    consistency = manifest.consistency
    if not (consistency.get("binlog_exact") and consistency.get("binlog_snapshot")):
        return None, (f"not a base: its binlog coordinates are not exact "
                      f"({consistency.get('binlog_method')})")
    if entry.verified not in NOT_FAILED:  # as binlog_verify's bases
        return None, f"not a base: its verification failed ({entry.verified})"
    verification = binlog_verify.verify(settings)
    window = next((w for w in verification.windows() if w["backup"] == entry.name), None)
    if window is None or window["until"] is None:
        return None, "the binlog archive holds no event after it"
    reach = {"from": window["from"], "until": window["until"], "cut_by": window["cut_by"]}
    if window["cut_by"]:
        return reach, f"the archive breaks at {window['cut_by']} (drkit binlog verify)"
    return reach, "to the archive's newest event"


def _manifest_rows(manifest: Manifest) -> list[tuple[str, str]]:
    source = manifest.source
    objects = ", ".join(f"{len(names)} {kind.removesuffix('s') if len(names) == 1 else kind}"
                        for kind, names in manifest.objects.items() if names)
    zones = f"; time zones {', '.join(manifest.time_zones)}" if manifest.time_zones else ""
    snapshot = manifest.consistency.get("binlog_snapshot")
    exact = manifest.consistency.get("binlog_exact")
    return [
        ("dump", f"took {duration(manifest.duration_seconds)} (drkit "
                 f"{manifest.drkit_version}, {manifest.dump.get('client', 'mysqldump')})"),
        ("source", f"{source.get('flavour')} {source.get('version')} at "
                   f"{source.get('host')}:{source.get('port')}"),
        ("databases", f"{', '.join(manifest.databases)}: {len(manifest.tables)} tables, "
                      f"{sum(t.rows for t in manifest.tables.values())} rows"
                      + (f"; {objects}" if objects else "") + zones),
        ("size", f"{human_size(manifest.compressed.size)} {manifest.compression['codec']}, "
                 f"{human_size(manifest.sql.size)} of SQL; sha256 "
                 f"{manifest.compressed.sha256[:16]}..."),
        ("binlog", (f"{binlog_coordinates(snapshot)}" if snapshot else "no coordinates")
         + f" ({'exact' if exact else 'not exact'}: {manifest.consistency.get('binlog_method')})"),
    ]


def _verification(entry: BackupEntry) -> str:
    if entry.verified == "ok":
        return f"ok, {entry.verified_at}"
    if entry.verified is None:
        return "never (drkit verify reads it back and checks it)"
    if entry.verified == STALE:
        return "stale: the blob or its manifest changed since it was verified"
    if entry.verified == CIPHERTEXT_OK:
        return (f"as ciphertext only (size and sha256), {entry.verified_at}: drkit verify "
                "on the Azure side reads the content back")
    if entry.verified == UNCHECKED:
        return (f"ok by its tags, {entry.verified_at}, unchecked: this config holds no "
                "identity to check the Azure side's signature")
    if entry.verified == FORGED:
        return (f"FORGED: tagged ok ({entry.verified_at}) without the Azure side's "
                "signature; not verified (drkit verify reads it back and signs anew)")
    return f"FAILED ({entry.verified}), {entry.verified_at}: restores refuse it"


def _reach_text(pitr: dict[str, Any] | None, note: str) -> str:
    if pitr is None:
        return note
    return f"from {pitr['from']} until {pitr['until']}: {note}"


def _versions_text(versions: list[BlobVersion]) -> str:
    if not versions:
        return "no earlier version kept"
    return (f"{len(versions)} earlier version{'s' * (len(versions) > 1)} kept by blob "
            f"versioning, {human_size(sum(v.size for v in versions))}")
