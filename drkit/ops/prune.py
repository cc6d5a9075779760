"""Retention: delete backups older than a cutoff, as the seed's lifecycle rule does, but safely.

Per database, the newest good backup stays whatever its age (it may be the only one proven
to restore): good is verified as it is now (the verify tag bound to the blob's and the
manifest's current ETags) with its manifest present. No backup newer than a database's
newest good one is deleted, and a database with no good backup loses nothing. A backup that
holds several databases goes only when every one of them lets it. A backup goes first, then
its manifest, so an interrupted run leaves at worst a manifest whose backup is gone, which
the next run removes.

With blob versioning on (the seed enables it), deleting a blob keeps its last state as an
earlier version, which costs as much as the blob did. So the earlier versions of what prune
deletes go too. Versions of anything else are left alone: those of a blob deleted by hand
are what can bring it back (``drkit list --versions`` shows what they cost).

With the container's version-level immutability (time-based retention), Azure refuses to
delete a version before its retention ends. Prune plans around it: what the listing shows
locked stays, named with the time its lock ends (a backup and its manifest stay together),
and a delete Azure refuses all the same is recorded as locked; neither fails the run. Prune
runs on the Azure side: a credential that cannot delete (the backup side's SAS) is refused
before anything is deleted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, BlobVersion, Catalog, load_manifest, taken_at
from drkit.binlog.records import SIDECAR, Archive, file_order
from drkit.console import log_event
from drkit.errors import BlobLockedError, ConfigError, DrkitError
from drkit.manifest import SIDECAR_SUFFIX
from drkit.ops.claim import orphan_claims

UNKNOWN = "(databases unknown)"  # a backup whose metadata names none


@dataclass
class PrunePlan:
    cutoff: datetime
    delete: list[str] = field(default_factory=list)  # blob names, backups before manifests
    keep: dict[str, str] = field(default_factory=dict)  # old backups kept -> why
    deleted: list[str] = field(default_factory=list)
    databases: dict[str, str] = field(default_factory=dict)  # database -> what protects it
    binlogs: list[str] = field(default_factory=list)  # archived binlog files no base needs
    binlog_prefix: str | None = None  # the archive: its prune mark goes there before a delete
    versions: list[str] = field(default_factory=list)  # "name?versionid=ID", already earlier
    versions_bytes: int = 0
    deleted_versions: list[str] = field(default_factory=list)
    versioning: bool = False  # the listing showed version ids: deleting leaves versions
    # blob (or "name?versionid=ID") -> until when its immutability policy keeps it
    locked: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        del data["versioning"], data["binlog_prefix"]
        return {"ok": True, **data}


def plan_prune(store: BackupStore, older_than_seconds: float,
               binlog_prefix: str | None = None) -> PrunePlan:
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    # One listing feeds the whole plan (backups, orphaned manifests, earlier versions): at
    # thousands of backups each listing is seconds of paged requests.
    listing = Catalog(store).listing(versions=True)
    entries = listing.entries
    plan = PrunePlan(cutoff=cutoff, versioning=listing.versioned, binlog_prefix=binlog_prefix)
    newest_good: dict[str, BackupEntry | None] = {}
    for database in sorted({db for e in entries for db in e.databases or [UNKNOWN]}):
        theirs = [e for e in entries if database in (e.databases or [UNKNOWN])]
        good = [e for e in theirs if e.verified == "ok" and e.has_manifest]
        newest_good[database] = good[-1] if good else None
        plan.databases[database] = (
            f"keeps {good[-1].name} (its newest verified backup) and everything newer"
            if good else "has no verified backup: none of its backups is deleted")
    for entry in entries:
        if entry.taken_at >= cutoff:
            continue
        reasons = [_reason(entry, db, newest_good[db])
                   for db in entry.databases or [UNKNOWN]]
        if any(reasons):
            plan.keep[entry.name] = "; ".join(r for r in reasons if r)
            continue
        plan.delete.append(entry.name)
        if entry.has_manifest:
            plan.delete.append(entry.name + SIDECAR_SUFFIX)
    # Each database's newest verified backup is kept also when young: named all the same.
    plan.keep = {**{newest.name: f"the newest verified backup of {database}"
                    for database, newest in newest_good.items() if newest}, **plan.keep}
    backups = {e.name for e in entries}
    for name in listing.names:
        backup = name.removesuffix(SIDECAR_SUFFIX)
        moment = taken_at(backup)
        if name.endswith(SIDECAR_SUFFIX) and backup not in backups and moment and \
                moment < cutoff:
            plan.delete.append(name)  # its backup is already gone
    # Name claims a failed backup left (the backup side marks them failed: it cannot
    # delete), whatever their age: they hold no data.
    plan.delete += [c["blob"] for c in orphan_claims(store, listing.names)
                    if c["blob"] not in plan.delete]
    if binlog_prefix:
        plan.binlogs = _binlogs_before_oldest_base(store, binlog_prefix, entries, plan.delete)
    now = datetime.now(UTC)
    plan.delete = _unlocked(plan.delete, listing.locked_until, now, plan.locked)
    plan.binlogs = _unlocked(plan.binlogs, _locked_binlogs(store, binlog_prefix, plan.binlogs),
                             now, plan.locked)
    doomed = _unlocked_versions(versions_to_delete(listing.versions or [], plan.delete),
                                now, plan.locked)
    plan.versions = [_label(v) for v in doomed]
    plan.versions_bytes = sum(v.size for v in doomed)
    return plan


def _unlocked(names: list[str], locked_until: dict[str, datetime], now: datetime,
              locked: dict[str, str]) -> list[str]:
    """``names`` less those still under retention (recorded in ``locked`` with their
    expiry); a backup and its manifest are one: while either is locked both stay."""
    def pair(name: str) -> tuple[str, str]:
        backup = name.removesuffix(SIDECAR_SUFFIX)
        return backup, backup + SIDECAR_SUFFIX

    held = {name: until for name in names if (until := locked_until.get(name)) and until > now}
    for name in names:
        if name not in held and (partner := next((held[p] for p in pair(name) if p in held),
                                                 None)):
            held[name] = partner  # kept with its locked partner
    locked.update({name: until.isoformat() for name, until in held.items()})
    return [name for name in names if name not in held]


def _unlocked_versions(versions: list[BlobVersion], now: datetime,
                       locked: dict[str, str]) -> list[BlobVersion]:
    """``versions`` less those still under retention (recorded in ``locked``)."""
    held = [v for v in versions if v.locked_until and v.locked_until > now]
    locked.update({_label(v): v.locked_until.isoformat() for v in held if v.locked_until})
    return [v for v in versions if v not in held]


def _locked_binlogs(store: BackupStore, prefix: str | None,
                    names: list[str]) -> dict[str, datetime]:
    """The immutability expiries of the archived files about to go (one listing)."""
    if not prefix or not names:
        return {}
    return Catalog(store.under(prefix)).listing(versions=True).locked_until


def _binlogs_before_oldest_base(store: BackupStore, prefix: str, entries: list[BackupEntry],
                                deleting: list[str]) -> list[str]:
    """Archived binlog files (blob and sidecar) wholly before the snapshot of the oldest
    backup that stays and can start a point-in-time restore; none if no backup that stays
    can (then every archived file may still be needed). The archive is listed first: with
    no complete file in it, no manifest is read (a catalog of thousands of backups none of
    which has exact coordinates, binlog off, read each one's)."""
    complete = [f for f in Archive(store.under(prefix)).files() if f.complete]
    if not complete:
        return []
    start = None
    for entry in (e for e in entries if e.name not in deleting and e.has_manifest):
        try:
            consistency = load_manifest(store, entry.name).consistency
        except DrkitError:
            continue  # a manifest drkit cannot read starts no restore
        if consistency.get("binlog_exact"):
            start = consistency["binlog_snapshot"]["file"]
            break
    if start is None:
        return []
    older = [f for f in complete if file_order(f.file) < file_order(start)]
    return [prefix + name for f in older for name in (f.file, f.file + SIDECAR)]


def versions_to_delete(versions: list[BlobVersion], deleting: list[str]) -> list[BlobVersion]:
    """The earlier versions of the blobs being deleted; never one of any other blob."""
    going = set(deleting)
    return [v for v in versions if v.name in going]


def _label(version: BlobVersion) -> str:
    return f"{version.name}?versionid={version.version_id}"


def _reason(entry: BackupEntry, database: str, newest_good: BackupEntry | None) -> str:
    """Why ``entry`` must stay for ``database``; empty if it may go."""
    if newest_good is None:
        return f"{database} has no verified backup"
    if entry.name == newest_good.name:
        return f"the newest verified backup of {database}"
    if (entry.taken_at, entry.name) > (newest_good.taken_at, newest_good.name):
        return f"newer than the newest verified backup of {database}"
    return ""


def execute_prune(store: BackupStore, plan: PrunePlan) -> PrunePlan:
    if not store.may_delete:
        raise ConfigError(f"This config's storage credential cannot delete in the "
                          f"{store.where} (a SAS without d: the backup side's); nothing was "
                          "deleted.", "Run drkit prune on the Azure side, with its config.")
    if plan.binlogs and plan.binlog_prefix:  # first: the index's readers pass them over
        Archive(store.under(plan.binlog_prefix)).mark_pruned(max(
            (name[len(plan.binlog_prefix):].removesuffix(SIDECAR) for name in plan.binlogs),
            key=file_order))
    for name in [*plan.delete, *plan.binlogs]:
        if _deleted(store, name, None, plan):
            plan.deleted.append(name)
            log_event("prune.deleted", f"Deleted {name}", blob=name)
    # Listed again where versioning is on: deleting a versioned blob has just made its last
    # state an earlier version. Without versioning nothing is left to list.
    deleted = versions_to_delete(Catalog(store).previous_versions(), plan.deleted) \
        if plan.versioning else []
    deleted = _unlocked_versions(deleted, datetime.now(UTC), plan.locked)
    plan.versions_bytes = sum(v.size for v in deleted)
    for version in deleted:
        if _deleted(store, version.name, version.version_id, plan):
            plan.deleted_versions.append(_label(version))
            log_event("prune.deleted_version", f"Deleted {_label(version)}",
                      blob=version.name, version_id=version.version_id)
    return plan


def _deleted(store: BackupStore, name: str, version_id: str | None, plan: PrunePlan) -> bool:
    """Delete one blob (version); False where Azure still keeps it locked (recorded, the
    run goes on)."""
    try:
        store.delete(name, version_id=version_id, missing_ok=False)
    except BlobLockedError:
        label = name if version_id is None else f"{name}?versionid={version_id}"
        plan.locked[label] = "unknown (Azure refused the delete: its retention has not ended)"
        log_event("prune.locked", f"Not deleted: {label} is locked by the container's "
                  "immutability policy", blob=name)
        return False
    return True
