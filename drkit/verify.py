"""Reading a backup back and checking it against its manifest, without touching disk.

The outcome ("ok" or what failed) is recorded on the blob's index tags, which is what
``latest-verified`` selects on.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from azure.core.exceptions import AzureError, ResourceNotFoundError

from drkit.blobstore import BackupStore
from drkit.catalog import BackupEntry, Catalog
from drkit.compression import CODECS, CorruptStreamError, TruncatedStreamError
from drkit.console import Environment, Progress, log_event
from drkit.dumpscan import DumpScanner
from drkit.errors import (
    ChecksumMismatchError,
    ManifestMismatchError,
    ManifestMissingError,
    TruncatedBackupError,
)
from drkit.manifest import SIDECAR_SUFFIX, Manifest

OUTCOMES = {
    ManifestMissingError: "manifest-missing",
    ChecksumMismatchError: "checksum-mismatch",
    TruncatedBackupError: "truncated",
    ManifestMismatchError: "manifest-mismatch",
}


@dataclass
class VerifyResult:
    name: str
    outcome: str
    compressed_bytes: int
    sql_bytes: int
    tables: int
    rows: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


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


def download(store: BackupStore, name: str) -> Iterator[bytes]:
    try:
        yield from store.container.download_blob(name).chunks()
    except AzureError as exc:
        raise store.error(exc) from None


class CountingReader:
    """Passes chunks on while counting and hashing them (the compressed object's check)."""

    def __init__(self, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        self._chunks = chunks
        self._progress = progress
        self.size = 0
        self.sha256 = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            self.sha256.update(chunk)
            if self._progress:
                self._progress.update(self.size)
            yield chunk


def verify_backup(store: BackupStore, entry: BackupEntry,
                  env: Environment | None = None) -> VerifyResult:
    """Check ``entry`` fully; record and return the outcome, or record and raise it."""
    env = env or Environment()
    catalog = Catalog(store)
    try:
        result = _verify(store, entry, env)
    except tuple(OUTCOMES) as error:
        catalog.record_verification(entry.name, OUTCOMES[type(error)])
        log_event("verify.failed", f"Verify FAILED: {error}", backup=entry.name,
                  outcome=OUTCOMES[type(error)])
        raise
    catalog.record_verification(entry.name, "ok")
    log_event("verify.ok", f"Verified {entry.name}: {result.tables} tables, {result.rows} rows, "
              f"{result.compressed_bytes} bytes match the manifest", **result.as_dict())
    return result


def _verify(store: BackupStore, entry: BackupEntry, env: Environment) -> VerifyResult:
    manifest = load_manifest(store, entry.name)
    clock = time.monotonic()
    scanner = DumpScanner()
    sql_sha256, sql_size = hashlib.sha256(), 0
    with env.progress(f"verify {entry.name}", manifest.compressed.size) as progress:
        reader = CountingReader(download(store, entry.name), progress)
        with read_back(manifest, reader, lambda: scanner.complete, _NEW_BACKUP) as pieces:
            for piece in pieces:
                sql_sha256.update(piece)
                sql_size += len(piece)
                scanner.feed(piece)
    differences = _content_differences(manifest, scanner, sql_size, sql_sha256.hexdigest())
    if differences:
        raise ManifestMismatchError(
            f"Backup {entry.name} does not contain what its manifest says: "
            f"{'; '.join(differences[:5])}.",
            "Treat the manifest as unreliable; take a new backup.")
    return VerifyResult(
        name=entry.name, outcome="ok", compressed_bytes=reader.size, sql_bytes=sql_size,
        tables=len(scanner.tables), rows=sum(t.rows for t in scanner.tables.values()),
        seconds=round(time.monotonic() - clock, 3))


@contextlib.contextmanager
def read_back(manifest: Manifest, reader: CountingReader, complete: Callable[[], bool],
              fix: str) -> Iterator[Iterator[bytes]]:
    """Decompressed pieces of a backup being read; on leaving, the whole stream is checked
    against the manifest: truncated, corrupt or altered, or a dump without its trailer.

    ``complete`` tells, once the stream has ended, whether the SQL ended with the trailer.
    """
    problem: Exception | None = None
    try:
        yield CODECS[manifest.compression["codec"]].decompress(reader)
    except (TruncatedStreamError, CorruptStreamError) as exc:
        problem = exc
    name, expected = manifest.name, manifest.compressed
    size, sha256 = reader.size, reader.sha256.hexdigest()
    if isinstance(problem, CorruptStreamError):
        raise ChecksumMismatchError(f"Backup {name} is corrupt: {problem}.", fix)
    if problem or size < expected.size:
        raise TruncatedBackupError(f"Backup {name} is truncated: {size} of {expected.size} "
                                   "bytes" + (f", {problem}" if problem else "") + ".", fix)
    if (size, sha256) != (expected.size, expected.sha256):
        raise ChecksumMismatchError(
            f"Backup {name} does not match its manifest's checksum (sha256 {sha256[:12]}... of "
            f"{size} bytes, expected {expected.sha256[:12]}... of {expected.size}): it was "
            "altered or corrupted after it was written.", fix)
    if not complete():
        raise TruncatedBackupError(
            f"Backup {name} is truncated: the dump inside lacks its completion trailer.", fix)


_NEW_BACKUP = "Do not restore it; take a new backup and verify that."


def _content_differences(manifest: Manifest, scanner: DumpScanner, sql_size: int,
                         sql_sha256: str) -> list[str]:
    differences = []
    if (sql_size, sql_sha256) != (manifest.sql.size, manifest.sql.sha256):
        differences.append(f"SQL stream of {sql_size} bytes, manifest says {manifest.sql.size}"
                           if sql_size != manifest.sql.size else "SQL checksum differs")
    found = {f"{db}.{table}": content for (db, table), content in scanner.tables.items()}
    for table in sorted(set(found) | set(manifest.tables)):
        entry, content = manifest.tables.get(table), found.get(table)
        if entry is None:
            differences.append(f"table {table} is not in the manifest")
        elif content is None:
            differences.append(f"table {table} is missing")
        elif entry.rows != content.rows:
            differences.append(f"table {table} has {content.rows} rows, "
                               f"manifest says {entry.rows}")
        elif entry.sha256 != content.digest:
            differences.append(f"table {table} content digest differs")
    return differences
