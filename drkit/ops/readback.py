"""Reading a backup back: the compressed stream counted and hashed, decompressed, and checked
against its manifest as it ends. Verify and restore both read backups this way."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator

from drkit.console import Progress
from drkit.errors import ChecksumMismatchError, TruncatedBackupError, VerifyError, error_classes
from drkit.manifest import Manifest
from drkit.stream import encryption
from drkit.stream.compression import CODECS, CorruptStreamError, TruncatedStreamError


def failed_verification(outcome: str | None) -> type[VerifyError] | None:
    """The error of a backup whose recorded verify outcome is ``outcome`` (None for "ok" or
    never verified): restore refuses such a backup with it."""
    return next((cls for cls in error_classes()
                 if issubclass(cls, VerifyError) and cls.outcome == outcome), None)


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


@contextlib.contextmanager
def read_back(manifest: Manifest, reader: CountingReader, complete: Callable[[], bool],
              fix: str, keyring: encryption.Keyring | None = None) -> Iterator[Iterator[bytes]]:
    """Decompressed pieces of a backup being read (decrypted first with ``keyring``'s
    identity if it is an age file); on leaving, the whole stream is checked against the
    manifest: truncated, corrupt or altered, or a dump without its trailer.

    ``complete`` tells, once the stream has ended, whether the SQL ended with the trailer.
    """
    problem: Exception | None = None
    compressed: Iterable[bytes] = reader
    if manifest.name.endswith(encryption.EXTENSION):  # the size and sha256 are the blob's
        compressed = encryption.decrypted(manifest.name, reader, keyring or encryption.Keyring())
    try:
        yield CODECS[manifest.compression["codec"]].decompress(compressed)
    except (TruncatedStreamError, CorruptStreamError) as exc:
        problem = exc
    if isinstance(problem, CorruptStreamError):
        raise ChecksumMismatchError(f"Backup {manifest.name} is corrupt: {problem}.", fix)
    check_stored_bytes(manifest, reader, fix, problem)
    if not complete():
        raise TruncatedBackupError(f"Backup {manifest.name} is truncated: the dump inside "
                                   "lacks its completion trailer.", fix)


def check_stored_bytes(manifest: Manifest, reader: CountingReader, fix: str,
                       problem: Exception | None = None) -> None:
    """The bytes ``reader`` passed on are the stored object the manifest records (its size
    and sha256: an age file's where the backup is encrypted); ``problem`` is the stream
    ending early, if it did."""
    name, expected = manifest.name, manifest.compressed
    size, sha256 = reader.size, reader.sha256.hexdigest()
    # A stream that ends early with all its bytes read, or more, was altered, not cut.
    if size < expected.size or (problem and (size, sha256) == (expected.size, expected.sha256)):
        raise TruncatedBackupError(f"Backup {name} is truncated: {size} of {expected.size} "
                                   "bytes" + (f", {problem}" if problem else "") + ".", fix)
    if (size, sha256) != (expected.size, expected.sha256):
        raise ChecksumMismatchError(
            f"Backup {name} does not match its manifest's checksum (sha256 {sha256[:12]}... of "
            f"{size} bytes, expected {expected.sha256[:12]}... of {expected.size}): it was "
            "altered or corrupted after it was written.", fix)
