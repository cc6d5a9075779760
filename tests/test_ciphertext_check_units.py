"""The backup side's read-back of an encrypted backup it cannot open (drkit.ops.verify): the
stored bytes against the manifest's size and sha256, recorded as ``ciphertext-ok``, which
nothing that chooses a verified backup counts and nothing that refuses a failed one refuses.
Over a container held in memory; the sandbox runs it end to end (tests/test_sas.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pyrage
import pytest
from azure.storage.blob import BlobProperties
from pyrage import x25519

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import CIPHERTEXT_OK, NOT_FAILED, VERIFIED_TAG, Catalog
from drkit.azure.verdicts import UNCHECKED
from drkit.config import Settings
from drkit.errors import BackupNotFoundError, ChecksumMismatchError, UnrestorableBackupError
from drkit.health.doctor import Doctor, check_backup_age
from drkit.manifest import SIDECAR_SUFFIX, Digest, Manifest
from drkit.ops.readback import failed_verification
from drkit.ops.show import _verification
from drkit.ops.verify import verify_written
from drkit.stream.encryption import Keyring

OLDER = "p/backup-20261206-030000.sql.gz.age"  # fully verified by the Azure side
NEWER = "p/backup-20261207-030000.sql.gz.age"  # just written by the backup host


class _Container:
    """Blobs by name, their index tags, and what a verify reads."""

    container_name, url = "mysql-backups", "https://acct.blob.core.windows.net/mysql-backups"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.tags: dict[str, dict[str, str]] = {}

    def list_blobs(self, name_starts_with: str = "", include=None):
        listed = []
        for name in sorted(n for n in self.data if n.startswith(name_starts_with)):
            blob = BlobProperties(name=name, metadata={"databases": "shop"})
            blob.size, blob.etag, blob.tags = len(self.data[name]), self._etag(name), \
                self.tags.get(name)
            listed.append(blob)
        return listed

    def download_blob(self, name: str):
        data = self.data[name]
        return SimpleNamespace(chunks=lambda: iter([data[:10], data[10:]]),
                               readall=lambda: data,
                               properties=SimpleNamespace(etag=self._etag(name)))

    def get_blob_client(self, name: str):
        return SimpleNamespace(set_blob_tags=lambda tags: self.tags.__setitem__(name, tags))

    def _etag(self, name: str) -> str:
        return f'"{hashlib.sha256(self.data[name]).hexdigest()[:8]}"'


def _store_with(blob: bytes, *, manifest_of: bytes | None = None) -> BackupStore:
    """A store holding the newer backup as ``blob``, its manifest recording ``manifest_of``
    (default: the blob itself), and an older backup the Azure side verified."""
    container = _Container()
    store = BackupStore(container, "p/", "acct")  # type: ignore[arg-type]  # no identity
    for name, data in ((OLDER, b"older"), (NEWER, blob)):
        recorded = manifest_of if name == NEWER and manifest_of is not None else data
        manifest = Manifest(
            name=name, drkit_version="0.3.0", started_at=datetime.now(UTC),
            finished_at=datetime.now(UTC), duration_seconds=1.0, source={},
            databases=["shop"], consistency={}, dump={}, compression={"codec": "gzip"},
            compressed=Digest(size=len(recorded), sha256=hashlib.sha256(recorded).hexdigest()),
            sql=Digest(size=5000, sha256="s" * 64), tables={}, objects={})
        container.data[name], container.data[name + SIDECAR_SUFFIX] = \
            data, manifest.model_dump_json().encode()
    Catalog(store).record_verification(_entry(store, OLDER), "ok")
    return store


def _entry(store: BackupStore, name: str):
    return next(e for e in Catalog(store).entries() if e.name == name)


def _newer(store: BackupStore):
    return _entry(store, NEWER)


def _sealed(data: bytes) -> bytes:
    return pyrage.encrypt(data, [x25519.Identity.generate().to_public()])


def test_the_backup_side_checks_its_backup_as_ciphertext_and_does_not_call_it_verified():
    store = _store_with(_sealed(b"-- dump\n" * 1000))
    result = verify_written(store, _newer(store))
    assert (result.outcome, result.compressed_bytes) == (CIPHERTEXT_OK, _newer(store).size)
    assert result.checked == ("checked as ciphertext: size and sha256; the full verify runs "
                              "on the Azure side")
    assert _newer(store).verified == CIPHERTEXT_OK  # bound to the blob it read
    # Never chosen as verified; never refused as failed.
    assert Catalog(store).select("latest-verified").name == OLDER
    assert Catalog(store).select("latest").name == NEWER
    assert failed_verification(CIPHERTEXT_OK) is None and CIPHERTEXT_OK in NOT_FAILED
    assert _verification(_newer(store)).startswith("as ciphertext only (size and sha256)")


def test_a_ciphertext_check_never_replaces_a_full_verify():
    store = _store_with(_sealed(b"rows"))
    Catalog(store).record_verification(_newer(store), "ok")
    verify_written(store, _newer(store))
    assert Catalog(store).select("latest-verified").name == NEWER


def test_the_backup_side_leaves_the_azure_sides_signed_verdict_it_cannot_check():
    """There the Azure side's "ok" reads "unchecked" (no identity): still never replaced."""
    identity = x25519.Identity.generate()
    secret = SimpleNamespace(get_secret_value=lambda: str(identity))
    store = _store_with(_sealed(b"rows"))
    azure_side = BackupStore(store.container, "p/", "acct", Keyring(
        "keyvault:id", SimpleNamespace(resolve=lambda _: secret), encrypting=True))
    Catalog(azure_side).record_verification(_newer(azure_side), "ok")
    backup_side = BackupStore(store.container, "p/", "acct",
                              Keyring(backup_side=True, encrypting=True))
    assert _newer(backup_side).verified == UNCHECKED
    verify_written(backup_side, _newer(backup_side))
    assert Catalog(azure_side).select("latest-verified").name == NEWER


def test_altered_bytes_fail_the_check_and_are_recorded_as_failed():
    sealed = _sealed(b"-- dump\n" * 1000)
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    store = _store_with(altered, manifest_of=sealed)
    with pytest.raises(ChecksumMismatchError, match="altered or corrupted after it was"):
        verify_written(store, _newer(store))
    assert store.container.tags[NEWER][VERIFIED_TAG] == "checksum-mismatch"  # restores refuse


def test_plaintext_named_age_fails_even_where_its_checksum_matches():
    store = _store_with(b"-- MySQL dump, not encrypted\n")
    with pytest.raises(UnrestorableBackupError, match="is not an age file"):
        verify_written(store, _newer(store))
    with pytest.raises(BackupNotFoundError):  # the only other one is the older
        Catalog(store).select("latest-verified", [_newer(store)])


@pytest.mark.parametrize(("side", "fix"), [
    ("backup", "The Azure side verifies backups (its verify-backup runbook"),
    ("both", "Run drkit run nightly-backup"),  # there the nightly verifies in full
])
def test_doctor_names_who_verifies_where_no_backup_is_verified(side, fix, monkeypatch):
    store = _store_with(_sealed(b"rows"))
    del store.container.tags[OLDER]
    verify_written(store, _newer(store))
    monkeypatch.setattr(Doctor, "store", lambda self: store)
    settings = Settings(side=side, source={"host": "db", "databases": ["shop"]},
                        storage={"account": "acct"})
    checks = {c.name: c for c in check_backup_age(Doctor(settings, "prod"))}
    assert checks["newest backup"].detail.startswith(NEWER)
    verified = checks["newest verified backup"]
    assert (verified.status, verified.detail) == ("CRITICAL", "none")
    assert verified.fix.startswith(fix)


def test_doctor_says_the_newest_backup_is_bad_when_its_verify_failed(monkeypatch):
    """On time or not, a newest backup verify found unlike its manifest is refused by
    restores: doctor says so and what to do, not "OK"."""
    store = _store_with(_sealed(b"rows"))
    Catalog(store).record_verification(_newer(store), "manifest-mismatch")
    monkeypatch.setattr(Doctor, "store", lambda self: store)
    settings = Settings(side="azure", source={"host": "db", "databases": ["shop"]},
                        storage={"account": "acct"})
    checks = {c.name: c for c in check_backup_age(Doctor(settings, "prod"))}
    newest = checks["newest backup"]
    assert newest.status == "CRITICAL"
    assert newest.detail.startswith(NEWER) and "its verify FAILED (manifest-mismatch, " in \
        newest.detail and newest.detail.endswith("restores refuse it")
    assert newest.fix.startswith("Take a new backup (drkit run nightly-backup, on the backup "
                                 "host), then see what verify found with drkit show "
                                 "backup-20261207-030000.sql.gz.age")
    assert checks["newest verified backup"].detail.startswith(OLDER)
