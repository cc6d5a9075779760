"""Reading a backup back and checking it against its manifest, without touching disk.

The outcome ("ok" or what failed) is recorded on the blob's index tags, which is what
``latest-verified`` selects on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.console import Environment, log_event
from drkit.errors import ManifestMismatchError, UnrestorableBackupError, VerifyError
from drkit.manifest import Manifest
from drkit.ops.readback import CountingReader, read_back
from drkit.stream.dumpscan import DumpScanner
from drkit.stream.lexer import LexError


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
        data = asdict(self)
        return {"ok": self.outcome == "ok", "backup": data.pop("name"),
                "verify_seconds": data.pop("seconds"), **data}


def verify_backup(store: BackupStore, entry: BackupEntry,
                  env: Environment | None = None) -> VerifyResult:
    """Check ``entry`` fully; record and return the outcome, or record and raise it."""
    env = env or Environment()
    catalog = Catalog(store)
    try:
        result = _verify(store, entry, env)
    except VerifyError as error:
        catalog.record_verification(entry, error.outcome)
        log_event("verify.failed", f"Verify FAILED: {error}", backup=entry.name,
                  outcome=error.outcome)
        raise
    catalog.record_verification(entry, "ok")
    log_event("verify.ok", f"Verified {entry.name}: {result.tables} tables, {result.rows} rows, "
              f"{result.compressed_bytes} bytes match the manifest", **result.as_dict())
    return result


def _verify(store: BackupStore, entry: BackupEntry, env: Environment) -> VerifyResult:
    manifest = load_manifest(store, entry.name, digests=True)
    clock = time.monotonic()
    scanner = DumpScanner()
    sql_sha256, sql_size = hashlib.sha256(), 0
    with env.progress(f"verify {entry.name}", manifest.compressed.size) as progress:
        reader = CountingReader(store.download(entry.name), progress)
        with read_back(manifest, reader, lambda: scanner.complete, _NEW_BACKUP,
                       store.keyring) as pieces:
            for piece in pieces:
                sql_sha256.update(piece)
                sql_size += len(piece)
                scanner.feed(piece)
    _restorable(entry.name, scanner)
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


_NEW_BACKUP = "Do not restore it; take a new backup and verify that."


def _restorable(name: str, scanner: DumpScanner) -> None:
    """The whole stream went through restore's own statement pipeline (lexer and Azure
    rewrites, loading nothing): the last statement is complete, and every table's rows are
    the ones a restore would load."""
    try:
        scanner.close()
    except LexError as error:
        raise UnrestorableBackupError(f"Backup {name} cannot be restored: {error}.",
                                      _NEW_BACKUP) from None
    if disagreements := scanner.disagreements():
        raise UnrestorableBackupError(
            f"Backup {name} would not restore as its manifest counts: "
            f"{'; '.join(disagreements[:3])}.", _NEW_BACKUP)


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
