"""The store's one error translation and its conditional writes, against a stand-in for the
SDK's container client (what Azure answers is the SDK's own exception, raised as Azure's
answer would make the SDK raise it)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from drkit.azure.blobstore import BackupStore
from drkit.errors import (
    BackupExistsError,
    ContainerMissingError,
    DrkitError,
    ManifestMismatchError,
    ManifestMissingError,
    StorageError,
)

URL = "https://acct01.blob.core.windows.net/mysql-backups"


def _answering(error: Exception) -> SimpleNamespace:
    """A container client whose every request gets ``error`` as Azure's answer."""
    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    blob = SimpleNamespace(upload_blob=fail, get_blob_properties=fail, exists=fail)
    return SimpleNamespace(container_name="mysql-backups", url=URL, list_blobs=fail,
                           download_blob=fail, delete_blob=fail, get_container_properties=fail,
                           get_blob_client=lambda name: blob)


def _code(code: str) -> HttpResponseError:
    error = HttpResponseError(message=code)
    error.error_code = code
    return error


def test_every_store_method_says_an_azure_failure_in_one_sentence():
    store = BackupStore(_answering(_code("ContainerNotFound")), "b/", "acct01")
    calls = [store.check, store.blobs, lambda: store.read("x"), lambda: store.exists("x"),
             lambda: store.write("x", b"1"), lambda: store.metadata("x"),
             lambda: store.delete("x"), lambda: list(store.download("x"))]
    for call in calls:
        with pytest.raises(ContainerMissingError, match="container mysql-backups of storage "
                                                        "account acct01 does not exist"):
            call()


def test_a_drkit_error_inside_the_translation_passes_unchanged():
    store = BackupStore(_answering(_code("x")), "", "acct01")
    error = DrkitError("a sentence")
    with pytest.raises(DrkitError) as raised, store.translated_errors():
        raise error
    assert raised.value is error
    with pytest.raises(StorageError, match="request failed on the container mysql-backups"), \
            store.translated_errors():
        raise _code("ServerBusy")


def test_a_refused_condition_is_the_callers_to_word():
    assert BackupStore(_answering(ResourceExistsError("exists")), "", "a").write(
        "x", b"1") is None
    assert BackupStore(_answering(ResourceModifiedError("412")), "", "a").write(
        "x", b"1", replacing='"0x1"') is None
    with pytest.raises(BackupExistsError, match="already exists"):
        BackupStore(_answering(ResourceExistsError("exists")), "", "a").put_json("x", {})
    with pytest.raises(BackupExistsError, match="changed by someone else"):
        BackupStore(_answering(ResourceModifiedError("412")), "", "a").put_json(
            "x", {}, replacing='"0x1"')


def test_a_missing_blob_is_none_to_read_if_present_and_an_error_elsewhere():
    from drkit.azure.catalog import load_manifest

    store = BackupStore(_answering(ResourceNotFoundError("BlobNotFound")), "", "acct01")
    assert store.read_if_present("gaps.json") is None
    store.delete("gone")  # already gone: done
    with pytest.raises(StorageError):
        store.delete("gone", missing_ok=False)
    with pytest.raises(ManifestMissingError, match="has no manifest"):
        load_manifest(store, "backup-20261207-030000.sql.gz")


@pytest.mark.parametrize("sidecar", [b'{"name": "backup-2026', b"\x00\xff", b"[]", b"{}"])
def test_a_manifest_that_is_not_drkits_json_is_damaged_not_missing(sidecar):
    """A manifest there but unreadable was cut short or altered: 33, as damaged sealed
    digests are, with what to do; 30 would send one looking for a deleted file."""
    from drkit.azure.catalog import load_manifest

    download = SimpleNamespace(readall=lambda: sidecar, properties=SimpleNamespace(etag='"1"'))
    container = SimpleNamespace(container_name="mysql-backups", url=URL,
                                download_blob=lambda name: download)
    with pytest.raises(ManifestMismatchError) as damaged:
        load_manifest(BackupStore(container, "", "acct01"), "backup-20261207-030000.sql.gz")
    assert damaged.value.exit_code == 33 and damaged.value.outcome == "manifest-mismatch"
    assert damaged.value.message == (
        "The manifest of backup backup-20261207-030000.sql.gz "
        "(backup-20261207-030000.sql.gz.manifest.json) is damaged: it is not drkit's JSON, so "
        "the backup cannot be checked against it.")
    assert damaged.value.fix.startswith("Restore the manifest from its earlier blob version")


def test_a_manifest_naming_another_backup_is_refused_as_copied_over():
    """The attack: with the backup side's SAS, a newer backup's blob and manifest copied
    over an older, verified one; the Azure side's verify would read a good backup and sign
    it. A manifest names its own blob: one that names another was copied (33)."""
    from drkit.azure.catalog import load_manifest
    from drkit.manifest import Digest, Manifest

    def store_holding(recorded_name: str) -> BackupStore:
        manifest = Manifest(
            name=recorded_name, drkit_version="0.3.0", started_at=datetime.now(UTC),
            finished_at=datetime.now(UTC), duration_seconds=1.0, source={},
            databases=["shop"], consistency={}, dump={}, compression={"codec": "gzip"},
            compressed=Digest(size=1, sha256="c" * 64), sql=Digest(size=1, sha256="s" * 64),
            tables={}, objects={})
        download = SimpleNamespace(readall=lambda: manifest.model_dump_json().encode(),
                                   properties=SimpleNamespace(etag='"1"'))
        return BackupStore(SimpleNamespace(container_name="mysql-backups", url=URL,
                                           download_blob=lambda name: download), "p/", "a01")

    older, newer = "p/backup-20261206-030000.sql.gz", "p/backup-20261207-030000.sql.gz"
    with pytest.raises(ManifestMismatchError, match=f"describes another backup \\({newer}\\)"):
        load_manifest(store_holding(newer), older)
    assert load_manifest(store_holding(older), older).name == older
    # the same backup under a moved prefix is still itself
    assert load_manifest(store_holding("old/backup-20261206-030000.sql.gz"), older)
