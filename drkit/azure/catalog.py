"""The backups in a store, newest last, and how a user names one.

Time comes from the blob name (``backup-YYYYMMDD-HHMMSS``, UTC), which the seed's
``sort_by([].name, &lastModified)`` query got wrong. The verification outcome is kept in
the blob's index tags, which, unlike metadata, do not change its Last-Modified time and so
do not postpone the lifecycle rule's deletion. The backup side can write those tags too, so
an ``ok`` counts only when the Azure side's signature checks (drkit.azure.verdicts): every
``verified`` an entry carries is the checked one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from azure.core.exceptions import ResourceNotFoundError

from drkit.azure.blobstore import BackupStore
from drkit.azure.verdicts import SIGNATURE_TAG, UNCHECKED, Verdict, VerdictKeys
from drkit.errors import (
    BackupNotFoundError,
    ManifestMismatchError,
    ManifestMissingError,
    ParameterError,
)
from drkit.manifest import SIDECAR_SUFFIX, Manifest, decode_names
from drkit.stream import sealeddigests

CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours another writer's clock may be
_NAME = re.compile(r"(?:^|/)backup-(\d{8}-\d{6})\.sql\.(gz|zst)(?:\.age)?$")  # .age: encrypted
_COMPRESSION = {"gz": "gzip", "zst": "zstd"}
VERIFIED_TAG = "drkit_verified"
VERIFIED_AT_TAG = "drkit_verified_at"
# What the verification saw: the blob's and its manifest's ETags. Tags leave the ETag alone,
# so a blob or manifest written after its verification no longer matches: "stale".
VERIFIED_BLOB_TAG = "drkit_verified_blob"
VERIFIED_MANIFEST_TAG = "drkit_verified_manifest"
STALE = "stale"
# The backup side's read-back of a backup it cannot open (it holds no identity): the stored
# bytes' size and sha256 match the manifest. It says nothing of the content, so it is not
# "verified": latest-verified, prune, the alarms and the standby count only "ok", and a
# restore verifies such a backup as one never verified.
CIPHERTEXT_OK = "ciphertext-ok"
# Outcomes that hold nothing against a backup (all but a failed check and a forged "ok"):
# verified, checked as ciphertext, never verified, changed since, or an "ok" this side
# cannot check. A point-in-time base may be any of them (verified before it is restored
# unless "ok").
NOT_FAILED = ("ok", CIPHERTEXT_OK, None, STALE, UNCHECKED)


def fresh_verdicts(side: str) -> tuple[str, ...]:
    """What the newest-verified freshness figures (doctor's check, the published age) count
    on ``side``: "ok"; on the backup side, which holds no identity, also the Azure side's
    verdicts it cannot check ("unchecked"). Nothing chooses, restores or deletes by this."""
    return ("ok", UNCHECKED) if side == "backup" else ("ok",)


@dataclass
class BackupEntry:
    name: str
    taken_at: datetime
    size: int
    compression: str
    databases: list[str]
    has_manifest: bool
    # "ok" (its signature checked), "ciphertext-ok" (the backup side's check), the failed
    # outcome, "stale" (blob or manifest changed since, or a tag of a drkit that did not
    # bind it), "unchecked" (an "ok" where no identity is held) or "forged" (an "ok" the
    # Azure side did not sign): only "ok" counts as verified.
    verified: str | None = None
    verified_at: str | None = None
    etag: str = ""
    manifest_etag: str = ""

    def as_dict(self) -> dict:
        """drkit's JSON vocabulary (README, "JSON output"): ``backup``, ``*_bytes``."""
        data = asdict(self)
        return {"backup": data.pop("name"), "taken_at": self.taken_at.isoformat(),
                "compressed_bytes": data.pop("size"),
                **{k: v for k, v in data.items() if k != "taken_at"}}


@dataclass(frozen=True)
class BlobVersion:
    """An earlier version of a blob, kept by blob versioning (the seed turns it on)."""

    name: str
    version_id: str
    size: int
    last_modified: datetime
    locked_until: datetime | None = None  # its version-level immutability policy's expiry


def locked_until(blob: object) -> datetime | None:
    """When a listed blob version's immutability policy (time-based retention) expires;
    None where it has none (or Azurite, which has no immutability, listed it)."""
    policy = getattr(blob, "immutability_policy", None)
    return getattr(policy, "expiry_time", None) if policy is not None else None


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


@dataclass(frozen=True)
class Listing:
    """One List Blobs of the prefix, as a command reads it: its backups, every current blob
    name (manifests whose backup is gone among them) and, if asked for, earlier versions.
    A command that needs several of these takes them from one listing: at 5,000 backups a
    listing is seconds of paged requests."""

    entries: list[BackupEntry]
    names: list[str]
    versions: list[BlobVersion] | None  # None: not asked for
    versioned: bool  # a blob carried a version id: deleting one leaves an earlier version
    # Current blobs whose version-level immutability policy has an expiry (asked for with
    # versions): name -> expiry. Azure refuses to delete them before it.
    locked_until: dict[str, datetime] = field(default_factory=dict)


class Catalog:
    def __init__(self, store: BackupStore) -> None:
        self.store = store

    @cached_property
    def verdicts(self) -> VerdictKeys:
        """How this config signs and checks verdicts (its keyring's identity)."""
        return VerdictKeys(self.store.keyring)

    def entries(self) -> list[BackupEntry]:
        """Every backup under the prefix, oldest first."""
        return self.listing().entries

    def listing(self, *, versions: bool = False) -> Listing:
        """The prefix listed once (with earlier versions if ``versions``); never cached:
        a command keeps the listing it needs, and the next command lists afresh."""
        include = ["metadata", "tags",
                   *(["versions", "immutabilitypolicy"] if versions else [])]
        with self.store.translated_errors():
            blobs = list(self.store.container.list_blobs(name_starts_with=self.store.prefix,
                                                         include=include))
        # With versions, List Blobs returns every version of a blob, the current one marked
        # IsCurrentVersion; only that one (or the only one, unversioned) is the blob.
        is_earlier = [versions and bool(b.version_id) and not b.is_current_version
                      for b in blobs]
        current = [b for b, earlier in zip(blobs, is_earlier, strict=True) if not earlier]
        return Listing(
            entries=_entries(current, self.verdicts), names=[b.name for b in current],
            versions=[BlobVersion(b.name, b.version_id, b.size, b.last_modified,
                                  locked_until(b))
                      for b, earlier in zip(blobs, is_earlier, strict=True) if earlier]
            if versions else None,
            versioned=any(b.version_id for b in blobs),
            locked_until={b.name: until for b in current if (until := locked_until(b))})

    def earlier_versions_of(self, name: str) -> list[BlobVersion]:
        """The earlier versions of a backup's blob and of its manifest (one listing of the
        name: the two blobs share it as a prefix)."""
        with self.store.translated_errors():
            blobs = list(self.store.container.list_blobs(name_starts_with=name,
                                                         include=["versions"]))
        return [BlobVersion(b.name, b.version_id, b.size, b.last_modified, locked_until(b))
                for b in blobs
                if b.name in (name, name + SIDECAR_SUFFIX) and b.version_id
                and not b.is_current_version]

    def previous_versions(self) -> list[BlobVersion]:
        """Every earlier (not current) version under the prefix; none where versioning is
        off. A deleted blob's last state is such a version too: it still costs storage."""
        return self.listing(versions=True).versions or []

    def select(self, spec: str, entries: list[BackupEntry] | None = None) -> BackupEntry:
        """``latest``, ``latest-verified``, a time (newest at or before it), or a name;
        among ``entries`` if the caller has listed them already."""
        # A backup's name (a drill, a failover or a point-in-time restore passes on the one
        # it chose) is looked up alone: listing the catalog again costs seconds at
        # thousands of backups. The listing below still finds any other spelling.
        if entries is None and taken_at(spec) is not None and (entry := self._lookup(
                spec if spec.startswith(self.store.prefix) else self.store.prefix + spec)):
            return entry
        entries = self.entries() if entries is None else entries
        # A name in the future (a writer's clock ahead) is never "the newest".
        believable = [e for e in entries if e.taken_at <= datetime.now(UTC) + CLOCK_SKEW]
        if spec == "latest":
            chosen = believable[-1:]
        elif spec == "latest-verified":
            chosen = [e for e in believable if e.verified == "ok"][-1:]
        elif re.match(r"^\d{4}-\d{2}-\d{2}", spec):
            try:
                moment = parse_time(spec)
            except ValueError:
                raise ParameterError(f"{spec!r} is not a time.",
                                     "Write it as 2026-11-26T03:00 (UTC).") from None
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

    def _lookup(self, name: str) -> BackupEntry | None:
        """The entry of the backup ``name`` from its own and its manifest's properties, as
        a listing would give it; None if there is no such blob."""
        container = self.store.container
        with self.store.translated_errors():
            try:
                blob = container.get_blob_client(name).get_blob_properties()
                blob.tags = container.get_blob_client(name).get_blob_tags() if blob.tag_count \
                    else {}
            except ResourceNotFoundError:
                return None
            try:
                sidecar = [container.get_blob_client(name + SIDECAR_SUFFIX)
                           .get_blob_properties()]
            except ResourceNotFoundError:
                sidecar = []
        found = _entries([blob, *sidecar], self.verdicts)
        return found[0] if found else None

    def record_verification(self, entry: BackupEntry, outcome: str) -> None:
        """Tag the outcome, bound to the ETags of the blob and manifest that were read, and
        signed where this config holds the identity (the tags replace all earlier ones)."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tags = {VERIFIED_TAG: outcome, VERIFIED_AT_TAG: stamp,
                VERIFIED_BLOB_TAG: entry.etag, VERIFIED_MANIFEST_TAG: entry.manifest_etag,
                SIGNATURE_TAG: self.verdicts.sign(
                    Verdict(entry.name, entry.etag, entry.manifest_etag, outcome, stamp))}
        with self.store.translated_errors():
            self.store.container.get_blob_client(entry.name).set_blob_tags(
                {key: value for key, value in tags.items() if value})  # no empty tag values


def _bare(etag: str | None) -> str:
    """An ETag as a tag value may hold it (no quotes)."""
    return (etag or "").strip('"')


def _entries(blobs: list, verdicts: VerdictKeys) -> list[BackupEntry]:
    """The backups among current blobs, oldest first, each bound to its manifest's ETag,
    their verdicts as ``verdicts`` checks them."""
    etags = {b.name: _bare(b.etag) for b in blobs}
    entries = []
    for blob in blobs:
        moment = taken_at(blob.name)
        if moment is None:
            continue
        metadata = blob.metadata or {}
        tags = blob.tags or {}
        etag, manifest_etag = etags[blob.name], etags.get(blob.name + SIDECAR_SUFFIX, "")
        bound = (tags.get(VERIFIED_BLOB_TAG), tags.get(VERIFIED_MANIFEST_TAG)) == \
            (etag, manifest_etag)
        verified = tags.get(VERIFIED_TAG)
        if verified and bound:
            verified = verdicts.checked(Verdict(blob.name, etag, manifest_etag, verified,
                                                tags.get(VERIFIED_AT_TAG, "")),
                                        tags.get(SIGNATURE_TAG))
        entries.append(BackupEntry(
            name=blob.name,
            taken_at=moment,
            size=blob.size,
            compression=_COMPRESSION[_NAME.search(blob.name).group(2)],
            databases=decode_names(metadata.get("databases", "")),
            has_manifest=bool(manifest_etag),
            # An outcome describes the blob and manifest it read, good or bad: once
            # either changed, it describes nothing.
            verified=STALE if verified and not bound else verified,
            verified_at=tags.get(VERIFIED_AT_TAG),
            etag=etag,
            manifest_etag=manifest_etag,
        ))
    return sorted(entries, key=lambda e: (e.taken_at, e.name))


def load_manifest(store: BackupStore, name: str, digests: bool = False) -> Manifest:
    """Backup ``name``'s manifest; with ``digests``, its content digests opened with the
    store's identity if they are sealed (what compares content needs them; list, prune and
    doctor do not)."""
    found = store.read_if_present(name + SIDECAR_SUFFIX)
    if found is None:
        raise ManifestMissingError(
            f"Backup {name} has no manifest ({name}{SIDECAR_SUFFIX}), so it cannot be checked.",
            "It was not made by drkit or its manifest was deleted; take a new backup.")
    data = found[0]
    try:
        manifest = Manifest.model_validate_json(data)
    except ValueError:  # there but unreadable: cut short or altered, not missing
        raise ManifestMismatchError(
            f"The manifest of backup {name} ({name}{SIDECAR_SUFFIX}) is damaged: it is not "
            "drkit's JSON, so the backup cannot be checked against it.",
            "Restore the manifest from its earlier blob version, or use another backup "
            "(drkit list).") from None
    if _base_name(manifest.name) != _base_name(name):
        # drkit writes each manifest once, beside its own blob: one naming another backup
        # was copied here, as one holding the backup side's credential could.
        raise ManifestMismatchError(
            f"The manifest of backup {name} describes another backup ({manifest.name}), so "
            "it cannot vouch for this blob.",
            "Treat the storage as tampered with: check the backup side's credential (drkit "
            "doctor) and use another backup (drkit list).")
    return sealeddigests.with_digests(manifest, store.keyring) if digests else manifest


def _base_name(name: str) -> str:
    """A blob's name without its folder (a storage prefix may be moved)."""
    return name.rsplit("/", 1)[-1]
