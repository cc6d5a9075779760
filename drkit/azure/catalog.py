"""The backups in a store, newest last, and how a user names one.

Time comes from the blob name (``backup-YYYYMMDD-HHMMSS``, UTC), which the seed's
``sort_by([].name, &lastModified)`` query got wrong. The verification outcome is kept in
the blob's index tags, which, unlike metadata, do not change its Last-Modified time and so
do not postpone the lifecycle rule's deletion.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError

from drkit.azure.blobstore import BackupStore
from drkit.errors import BackupNotFoundError, ManifestMissingError
from drkit.manifest import SIDECAR_SUFFIX, Manifest, decode_names

_NAME = re.compile(r"(?:^|/)backup-(\d{8}-\d{6})\.sql\.(gz|zst)$")
_COMPRESSION = {"gz": "gzip", "zst": "zstd"}
VERIFIED_TAG = "drkit_verified"
VERIFIED_AT_TAG = "drkit_verified_at"


@dataclass
class BackupEntry:
    name: str
    taken_at: datetime
    size: int
    compression: str
    databases: list[str]
    has_manifest: bool
    verified: str | None = None  # "ok", or the failed outcome
    verified_at: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["taken_at"] = self.taken_at.isoformat()
        return data


def taken_at(name: str) -> datetime | None:
    """When a backup was taken, from its name; None for a blob that is not a backup."""
    match = _NAME.search(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """An ISO time (``2026-11-26T03:00``, ``2026-11-26``); naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Catalog:
    def __init__(self, store: BackupStore) -> None:
        self.store = store

    def entries(self) -> list[BackupEntry]:
        """Every backup under the prefix, oldest first."""
        try:
            blobs = list(self.store.container.list_blobs(
                name_starts_with=self.store.prefix, include=["metadata", "tags"]))
        except AzureError as exc:
            raise self.store.error(exc) from None
        names = {b.name for b in blobs}
        entries = []
        for blob in blobs:
            moment = taken_at(blob.name)
            if moment is None:
                continue
            metadata = blob.metadata or {}
            tags = blob.tags or {}
            entries.append(BackupEntry(
                name=blob.name,
                taken_at=moment,
                size=blob.size,
                compression=_COMPRESSION[blob.name.rsplit(".", 1)[1]],
                databases=decode_names(metadata.get("databases", "")),
                has_manifest=blob.name + SIDECAR_SUFFIX in names,
                verified=tags.get(VERIFIED_TAG),
                verified_at=tags.get(VERIFIED_AT_TAG),
            ))
        return sorted(entries, key=lambda e: (e.taken_at, e.name))

    def select(self, spec: str, entries: list[BackupEntry] | None = None) -> BackupEntry:
        """``latest``, ``latest-verified``, a time (newest at or before it), or a name;
        among ``entries`` if the caller has listed them already."""
        entries = self.entries() if entries is None else entries
        if spec == "latest":
            chosen = entries[-1:]
        elif spec == "latest-verified":
            chosen = [e for e in entries if e.verified == "ok"][-1:]
        elif re.match(r"^\d{4}-\d{2}-\d{2}", spec):
            moment = parse_time(spec)
            chosen = [e for e in entries if e.taken_at <= moment][-1:]
        else:
            chosen = [e for e in entries if e.name in (spec, self.store.prefix + spec)
                      or e.name.rsplit("/", 1)[-1] == spec]
        if not chosen:
            raise BackupNotFoundError(
                f"No backup matches {spec!r} in the {self.store.where} under "
                f"{self.store.prefix or '/'}.",
                "Run drkit list to see the backups there"
                + (" and drkit verify to verify one." if spec == "latest-verified" else "."),
            )
        return chosen[0]

    def record_verification(self, name: str, outcome: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.store.container.get_blob_client(name).set_blob_tags(
                {VERIFIED_TAG: outcome, VERIFIED_AT_TAG: stamp})
        except AzureError as exc:
            raise self.store.error(exc) from None


def load_manifest(store: BackupStore, name: str) -> Manifest:
    try:
        data = store.container.download_blob(name + SIDECAR_SUFFIX).readall()
    except ResourceNotFoundError:
        raise ManifestMissingError(
            f"Backup {name} has no manifest ({name}{SIDECAR_SUFFIX}), so it cannot be checked.",
            "It was not made by drkit or its manifest was deleted; take a new backup.",
        ) from None
    except AzureError as exc:
        raise store.error(exc) from None
    try:
        return Manifest.model_validate_json(data)
    except ValueError:
        raise ManifestMissingError(f"The manifest of backup {name} is not valid drkit JSON.",
                                   "Take a new backup.") from None
