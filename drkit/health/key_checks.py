"""``drkit doctor --for failover``: the identity this host can read opens the newest backup
and the binlog archive since it.

The manifest and the archive's records name the recipients each backup and each archived
range were encrypted to (fingerprints: drkit.stream.encryption.fingerprint); the identity's
own recipients are compared with them, and the newest backup's sealed digests are opened
(a real age decryption, a few hundred bytes, without reading the backup). A rotation that
left the failover host with only the new key is found here, not in the middle of a failover.

Also plain ``drkit doctor``'s ``encryption in use`` (:func:`coverage_checks`): where the config
lists recipients, that the newest backup and the archive since it were written encrypted.
"""

from __future__ import annotations

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, load_manifest
from drkit.binlog.records import Archive, ArchivedFile, file_order
from drkit.checks import CRITICAL, OK, WARNING, Check
from drkit.config import Settings
from drkit.errors import DrkitError, ManifestMismatchError
from drkit.manifest import Manifest
from drkit.stream.encryption import fingerprint

NAME = "encryption keys"
_FIX = ("Point encryption.identity at the key of one of those recipients (after a rotation "
        "the Key Vault secret's older version holds the old key; the break-glass key opens "
        "what was encrypted to it), or take a new backup to the current recipients.")


def key_checks(settings: Settings) -> list[Check]:
    store = BackupStore.from_settings(settings)
    newest = next((e for e in reversed(Catalog(store).entries()) if e.has_manifest), None)
    if newest is None:
        return [Check(NAME, OK, "no backup yet")]
    manifest = load_manifest(store, newest.name)
    files = _archived_since(settings, manifest)
    encrypted = [f for f in files if f.recipients]
    if not manifest.encryption and not encrypted:
        return [Check(NAME, OK, f"backup {manifest.name} and the archive since it are not "
                                "encrypted")]
    try:
        mine = store.keyring.fingerprints(f"backup {manifest.name}" if manifest.encryption
                                          else f"archived binlog {encrypted[0].file}")
    except DrkitError as error:
        return [Check(NAME, CRITICAL, error.message, error.fix or "")]
    reference = settings.encryption.identity
    if manifest.encryption:
        wanted = manifest.encryption.get("fingerprints") or \
            [fingerprint(r) for r in manifest.encryption.get("recipients", [])]
        if not mine & set(wanted):
            return [Check(NAME, CRITICAL, f"the identity {reference} opens none of the "
                          f"recipients backup {manifest.name} was encrypted to "
                          f"({', '.join(wanted)})", _FIX)]
    for archived in encrypted:
        if shut := next((to for to in archived.recipients if not mine & set(to)), None):
            return [Check(NAME, CRITICAL, f"the identity {reference} opens none of the "
                          f"recipients archived binlog {archived.file} was encrypted to "
                          f"({', '.join(shut)})", _FIX)]
    try:
        load_manifest(store, manifest.name, digests=True)  # a real decryption: its digests
    except ManifestMismatchError as error:  # the key opens it; the manifest is what is wrong
        return [Check("newest backup manifest", CRITICAL, error.message, error.fix or "")]
    except DrkitError as error:
        return [Check(NAME, CRITICAL, error.message, error.fix or "")]
    return [Check(NAME, OK, f"the identity {reference} opens backup {manifest.name} and the "
                            f"{len(encrypted)} encrypted archived file(s) since it")]


def _archived_since(settings: Settings, manifest: Manifest) -> list[ArchivedFile]:
    """The archive's files a restore from ``manifest`` on may read (summaries, one listing)."""
    snapshot = manifest.consistency.get("binlog_snapshot")
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    return [f for f in archive.files()
            if snapshot is None or file_order(f.file) >= file_order(snapshot["file"])]


COVERAGE = "encryption in use"
_DOWNGRADE_FIX = ("The backup side writes what its own config says: list the same "
                  "encryption.recipients in the backup side's config (drkit-backup.yaml) as in "
                  "this one, then take a new backup (the binlog streamer encrypts its next "
                  "ranges once restarted with it).")


def coverage_checks(settings: Settings) -> list[Check]:
    """Where the config lists recipients: the newest backup and the archive since its
    snapshot were written encrypted. The backup host writes what its own config says, so a
    config there without recipients writes in clear and nothing else would tell. Cheap:
    the catalog's listing, one manifest, the archive's listing and the newest file's record."""
    if not settings.encryption.recipients:
        return []
    store = BackupStore.from_settings(settings)
    newest = next((e for e in reversed(Catalog(store).entries()) if e.has_manifest), None)
    if newest is None:
        return []
    manifest = load_manifest(store, newest.name)
    files = _archived_since(settings, manifest)
    if files:  # the file being written: a downgrade shows in its ranges before it rotates
        archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
        files[-1] = archive.full(files[-1])
    return [coverage_check(manifest, files)]


def coverage_check(manifest: Manifest, files: list[ArchivedFile]) -> Check:
    """WARNING naming the newest backup if it is in clear, and the archived files since its
    snapshot holding ranges in clear (``files``: summaries, or records with their ranges)."""
    found = []
    if not manifest.encryption:
        found.append(f"the newest backup {manifest.name} is not encrypted")
    snapshot = manifest.consistency.get("binlog_snapshot")
    if clear := [f.file for f in files if _holds_clear_ranges(f, snapshot)]:
        found.append(f"archived binlog {', '.join(clear)} "
                     f"{'holds ranges' if len(clear) == 1 else 'hold ranges'} in clear")
    if found:
        return Check(COVERAGE, WARNING, f"encryption.recipients are listed here, but "
                     f"{'; '.join(found)}", _DOWNGRADE_FIX)
    return Check(COVERAGE, OK, f"backup {manifest.name} and the {len(files)} archived "
                               "file(s) since it are encrypted")


def _holds_clear_ranges(archived: ArchivedFile, snapshot: dict | None) -> bool:
    """Whether ``archived`` holds binlog in clear after ``snapshot`` (a summary knows only
    whether any range was encrypted; a record knows each range)."""
    if archived.partial:
        return archived.size > 0 and not archived.recipients
    after = snapshot["position"] if snapshot and snapshot["file"] == archived.file else 0
    return any("to" not in r for r in archived.ranges if r["end"] > after)
