"""Retention: delete backups older than a cutoff, as the seed's lifecycle rule does, but safely.

Never deletes the newest verified backup (whatever its age: it may be the only one proven
to restore), and never a manifest while its backup stays. A backup goes first, then its
manifest, so an interrupted run leaves at worst a manifest whose backup is gone, which the
next run removes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import AzureError

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, taken_at
from drkit.console import log_event
from drkit.manifest import SIDECAR_SUFFIX


@dataclass
class PrunePlan:
    cutoff: datetime
    delete: list[str] = field(default_factory=list)  # blob names, backups before manifests
    keep: dict[str, str] = field(default_factory=dict)  # old backups kept -> why
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


def plan_prune(store: BackupStore, older_than_seconds: float) -> PrunePlan:
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    entries = Catalog(store).entries()
    verified = [e for e in entries if e.verified == "ok"]
    protected = verified[-1].name if verified else None
    plan = PrunePlan(cutoff=cutoff)
    for entry in entries:
        if entry.taken_at >= cutoff:
            continue
        if entry.name == protected:
            plan.keep[entry.name] = "the newest verified backup"
            continue
        plan.delete.append(entry.name)
        if entry.has_manifest:
            plan.delete.append(entry.name + SIDECAR_SUFFIX)
    backups = {e.name for e in entries}
    for blob in store.container.list_blobs(name_starts_with=store.prefix):
        backup = blob.name.removesuffix(SIDECAR_SUFFIX)
        moment = taken_at(backup)
        if blob.name.endswith(SIDECAR_SUFFIX) and backup not in backups and moment and \
                moment < cutoff:
            plan.delete.append(blob.name)  # its backup is already gone
    return plan


def execute_prune(store: BackupStore, plan: PrunePlan) -> PrunePlan:
    for name in plan.delete:
        try:
            store.container.delete_blob(name)
        except AzureError as exc:
            raise store.error(exc) from None
        plan.deleted.append(name)
        log_event("prune.deleted", f"Deleted {name}", blob=name)
    return plan
