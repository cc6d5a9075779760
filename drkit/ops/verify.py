"""Reading a backup back and checking it against its manifest, without touching disk.

The outcome ("ok" or what failed) is recorded on the blob's index tags, which is what
``latest-verified`` selects on. The backup side holds no identity: the nightly's read-back
there checks what it can of the encrypted bytes (:func:`check_ciphertext`), recorded as
``ciphertext-ok``, which no selection of verified backups counts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import CIPHERTEXT_OK, BackupEntry, Catalog, load_manifest
from drkit.azure.verdicts import UNCHECKED
from drkit.console import Environment, log_event
from drkit.errors import ManifestMismatchError, UnrestorableBackupError, VerifyError
from drkit.manifest import Manifest
from drkit.ops.readback import CountingReader, check_stored_bytes, read_back
from drkit.stream import encryption
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
        return {"ok": self.outcome in ("ok", CIPHERTEXT_OK), "backup": data.pop("name"),
                "verify_seconds": data.pop("seconds"), **data}

    @property
    def checked(self) -> str:
        """How the backup was read back, as the run's summary says it."""
        if self.outcome == CIPHERTEXT_OK:
            return ("checked as ciphertext: size and sha256; the full verify runs on the "
                    "Azure side")
        return "read back: every table's rows and digest match the manifest"


def _failure_recorded(catalog: Catalog, entry: BackupEntry, what: str,
                      check: Callable[[], VerifyResult]) -> VerifyResult:
    """``check``'s result; a failure it finds is recorded on the backup, logged and raised."""
    try:
        return check()
    except VerifyError as error:
        catalog.record_verification(entry, error.outcome)
        log_event("verify.failed", f"{what} FAILED: {error}", backup=entry.name,
                  outcome=error.outcome)
        raise


def verify_backup(store: BackupStore, entry: BackupEntry,
                  env: Environment | None = None) -> VerifyResult:
    """Check ``entry`` fully; record and return the outcome, or record and raise it."""
    env = env or Environment()
    catalog = Catalog(store)
    result = _failure_recorded(catalog, entry, "Verify", lambda: _verify(store, entry, env))
    catalog.record_verification(entry, "ok")
    log_event("verify.ok", f"Verified {entry.name}: {result.tables} tables, {result.rows} rows, "
              f"{result.compressed_bytes} bytes match the manifest", **result.as_dict())
    return result


def _verify(store: BackupStore, entry: BackupEntry, env: Environment) -> VerifyResult:
    manifest = load_manifest(store, entry.name, digests=True)
    if (relabelled := label_difference(entry, manifest)) is not None:
        raise ManifestMismatchError(f"Backup {entry.name} {relabelled}.",
                                    "Treat it as altered (its blob's metadata is writable with "
                                    "the backup host's SAS); restore another backup.")
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


def label_difference(entry: BackupEntry, manifest: Manifest) -> str | None:
    """What the blob's metadata says it holds, where that is not its manifest's databases.
    Prune, point-in-time bases and ``list`` read the databases from the metadata (a listing
    reads no manifest), and the verdict does not cover them: relabelled ("shop" as
    "shop,crm"), a verified backup of shop would count as crm's newest and prune crm's."""
    if not entry.databases or sorted(entry.databases) == sorted(manifest.databases):
        return None  # a blob of a drkit from before the metadata held them: nothing to check
    return (f"is labelled as holding {', '.join(entry.databases)} (its blob's metadata), its "
            f"manifest says {', '.join(manifest.databases)}")


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
    # A database the manifest names, with no table, is checked by no table: the dump holds
    # it all the same (a manifest rewritten to name crm would make it crm's backup).
    differences += [f"database {database} is not in the dump"
                    for database in sorted(set(manifest.databases) - scanner.databases)]
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


def verify_written(store: BackupStore, entry: BackupEntry,
                   env: Environment | None = None) -> VerifyResult:
    """The nightly's read-back of the backup it wrote: the full verify where this config can
    open it; on a side without the identity (the backup host), :func:`check_ciphertext`."""
    if entry.name.endswith(encryption.EXTENSION) and (store.keyring.reference is None
                                                      or store.keyring.backup_side):
        return check_ciphertext(store, entry, env)
    return verify_backup(store, entry, env)


def check_ciphertext(store: BackupStore, entry: BackupEntry,
                     env: Environment | None = None) -> VerifyResult:
    """Read the encrypted backup ``entry`` back without opening it: the stored bytes are an
    age file of the size and sha256 its manifest records. The content was scanned as it
    streamed (the manifest's rows and digests are that scan's); reading it back is the
    Azure side's full verify. A match is recorded as ``ciphertext-ok``, a difference as the
    failed outcome it is (restores refuse it)."""
    env = env or Environment()
    catalog = Catalog(store)
    result = _failure_recorded(catalog, entry, "Ciphertext check",
                               lambda: _check_ciphertext(store, entry, env))
    # A full verify's outcome is never replaced by less: here, without the identity, the
    # Azure side's "ok" reads "unchecked".
    if entry.verified not in ("ok", UNCHECKED):
        catalog.record_verification(entry, CIPHERTEXT_OK)
    log_event("verify.ciphertext_ok", f"Checked {entry.name} as ciphertext: its "
              f"{result.compressed_bytes} bytes match the manifest's size and sha256; the "
              "full verify runs on the Azure side", **result.as_dict())
    return result


def _check_ciphertext(store: BackupStore, entry: BackupEntry, env: Environment) -> VerifyResult:
    manifest = load_manifest(store, entry.name)
    clock = time.monotonic()
    with env.progress(f"check {entry.name}", manifest.compressed.size) as progress:
        reader = CountingReader(store.download(entry.name), progress)
        head = b""
        for chunk in reader:
            head += chunk[:len(encryption.HEADER) - len(head)]
    check_stored_bytes(manifest, reader, _NEW_BACKUP)
    if head != encryption.HEADER:
        raise UnrestorableBackupError(f"Backup {entry.name} is named {encryption.EXTENSION} "
                                      "but is not an age file: no identity opens it.",
                                      _NEW_BACKUP)
    return VerifyResult(
        name=entry.name, outcome=CIPHERTEXT_OK, compressed_bytes=reader.size,
        sql_bytes=manifest.sql.size, tables=len(manifest.tables),
        rows=sum(t.rows for t in manifest.tables.values()),
        seconds=round(time.monotonic() - clock, 3))

