"""age encryption of a backup's bytes to X25519 recipients, streamed in bounded memory.

A backup encrypted to ``age1...`` recipients is a plain age file (``backup-...sql.gz.age``):
the ``age`` and ``rage`` tools open it with any one recipient's identity, which is the
break-glass restore (``age -d -i key | gunzip | mysql``). The backup host needs only the
recipients (public keys); the identity (``AGE-SECRET-KEY-1...``) is needed only where a
backup is read back.

pyrage's streaming functions (``encrypt_io``/``decrypt_io``) pull from a reader and push to
a writer until the stream ends, holding their caller all along. The backup pushes pieces as
the dump produces them and a restore pulls plaintext as it loads, so pyrage runs in a thread
of its own between a bounded pipe and its caller: at most a few pieces are in memory.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from drkit.errors import BackupKeyError, ConfigError, MissingProgramError
from drkit.stream.compression import CorruptStreamError, TruncatedStreamError

if TYPE_CHECKING:
    from pydantic import SecretStr
    from pyrage import x25519

HEADER = b"age-encryption.org/v1\n"  # how every age file starts
EXTENSION = ".age"
CONTENT_TYPE = "application/octet-stream"  # age has no registered media type
# An X25519 recipient as age-keygen -y prints it: "age1" and 58 bech32 characters.
RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_PIECES_IN_FLIGHT = 4  # per direction; a piece is one compressed member or ~1 MiB of output
_OUTPUT_PIECE = 1024 * 1024  # decrypted output is handed on in pieces about this big


def _pyrage() -> ModuleType:
    """pyrage, imported where encryption is used: a missing one refuses, never skips it."""
    try:
        import pyrage
    except ImportError:
        raise MissingProgramError("pyrage is not installed, so drkit cannot encrypt or "
                                  "decrypt backups with age; nothing was written.",
                                  "Install drkit's dependencies (pip install pyrage).") from None
    return pyrage


def recipients(texts: list[str]) -> list[x25519.Recipient]:
    """The configured recipients, parsed (config load has checked their form)."""
    pyrage = _pyrage()
    return [pyrage.x25519.Recipient.from_str(text) for text in texts]


class Compressor(Protocol):  # drkit.stream.compression's compressors
    def compress(self, data: bytes) -> list[bytes]: ...

    def flush(self) -> list[bytes]: ...

    def close(self) -> None: ...


class _Abandoned(Exception):
    """The other side of a pipe went away: pyrage's call is to end, its result unused."""


class _Pipe:
    """A bounded queue of byte pieces between two threads; either end may give up."""

    def __init__(self, limit: int) -> None:
        self._pieces: deque[bytes] = deque()
        self._limit = limit
        self._ended = False  # the writer said there is no more
        self._abandoned = False  # the reader went away
        self._changed = threading.Condition()

    def put(self, piece: bytes) -> bool:
        """Queue a piece, waiting for room; False if the reader has gone away."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._pieces) < self._limit or self._abandoned)
            if self._abandoned:
                return False
            self._pieces.append(piece)
            self._changed.notify_all()
            return True

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def abandon(self) -> None:
        with self._changed:
            self._abandoned = True
            self._pieces.clear()
            self._changed.notify_all()

    def get(self) -> bytes | None:
        """The next piece, waiting for one; None once the writer ended and all was read.
        Raises :class:`_Abandoned` once the pipe was given up: that is no end of the data."""
        with self._changed:
            self._changed.wait_for(lambda: self._pieces or self._ended or self._abandoned)
            if self._abandoned:
                raise _Abandoned
            if not self._pieces:
                return None
            piece = self._pieces.popleft()
            self._changed.notify_all()
            return piece


class _PieceReader:
    """A binary file's ``read`` over pieces from ``next_piece`` (None: the end)."""

    def __init__(self, next_piece: Callable[[], bytes | None]) -> None:
        self._next_piece = next_piece
        self._piece = memoryview(b"")
        self.ended = False
        self.failure: BaseException | None = None  # what the source raised, for the caller

    def read(self, size: int = -1) -> bytes:
        while not self._piece and not self.ended:
            try:
                piece = self._next_piece()
            except BaseException as error:  # pyrage would flatten it into its own error
                self.failure = error
                raise
            if piece is None:
                self.ended = True
            else:
                self._piece = memoryview(piece)
        size = len(self._piece) if size is None or size < 0 else size
        out, self._piece = self._piece[:size], self._piece[size:]
        return bytes(out)


class _PieceWriter:
    """A binary file's ``write`` that hands on pieces of at least ``piece_size`` bytes."""

    def __init__(self, pipe: _Pipe, piece_size: int) -> None:
        self._pipe = pipe
        self._piece_size = piece_size
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= self._piece_size:
            self._hand_on()
        return len(data)

    def flush(self) -> None:
        pass  # pieces are handed on by size and at the end (finish), not on every flush

    def finish(self) -> None:
        if self._buffer:
            self._hand_on()
        self._pipe.end()

    def _hand_on(self) -> None:
        piece = bytes(self._buffer)
        self._buffer.clear()
        if not self._pipe.put(piece):
            raise _Abandoned


class _Worker(threading.Thread):
    """Runs one pyrage stream call; keeps what it raised for the caller's thread."""

    def __init__(self, call: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._call = call
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call()
        except BaseException as error:  # handed to the caller's thread, raised there
            self.error = error


class EncryptingCompressor:
    """A compressor whose output is encrypted to ``recipients`` as one age file.

    Compressed pieces go to pyrage through a bounded pipe; the ciphertext it has written
    so far comes back from each call, the rest from ``flush``.
    """

    def __init__(self, compressor: Compressor, recipients: list[x25519.Recipient]) -> None:
        pyrage = _pyrage()
        self._compressor = compressor
        self._plain = _Pipe(_PIECES_IN_FLIGHT)
        self._sealed = _CollectedOutput()
        reader = _PieceReader(self._plain.get)

        def encrypt() -> None:
            try:
                pyrage.encrypt_io(reader, self._sealed, recipients)
            finally:  # a failed pyrage takes no more pieces: the caller must not wait
                self._plain.abandon()

        self._worker = _Worker(encrypt, "age-encrypt")
        self._worker.start()

    def compress(self, data: bytes) -> list[bytes]:
        for piece in self._compressor.compress(data):
            self._feed(piece)
        return self._sealed.take()

    def flush(self) -> list[bytes]:
        for piece in self._compressor.flush():
            self._feed(piece)
        self._plain.end()
        self._worker.join()
        self._raise_failure()
        return self._sealed.take()

    def close(self) -> None:
        """Stop without finishing (a failed backup): nothing more is written."""
        self._compressor.close()
        self._plain.abandon()
        self._worker.join()

    def _feed(self, piece: bytes) -> None:
        if not self._plain.put(piece):  # pyrage stopped: only a failure does, before the end
            self._worker.join()
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._worker.error is not None:
            raise RuntimeError(f"age encryption failed: {self._worker.error}") \
                from self._worker.error


class _CollectedOutput:
    """pyrage's writer, what it wrote collected for the caller's thread: the ciphertext on
    the backup side, an archived range's plaintext (:func:`opened`)."""

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()

    def write(self, data: bytes) -> int:
        self._pieces.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> list[bytes]:
        taken = []
        while self._pieces:  # deque pops are atomic: the worker may append meanwhile
            taken.append(self._pieces.popleft())
        return taken


def sealed(compressor: Compressor, recipients: list[x25519.Recipient]) -> Compressor:
    """``compressor`` with its output encrypted to ``recipients``; as it is without any."""
    return EncryptingCompressor(compressor, recipients) if recipients else compressor


class SecretResolver(Protocol):  # drkit.secrets.SecretResolver
    def resolve(self, reference: str | list[str]) -> SecretStr: ...


class Keyring:
    """The identity that opens encrypted backups, looked up once, when a backup is opened
    (``encryption.identity``): the backup host never asks for it."""

    def __init__(self, reference: str | list[str] | None = None,
                 resolver: SecretResolver | None = None, backup_side: bool = False,
                 encrypting: bool = False) -> None:
        self.reference = reference
        self._resolver = resolver
        self.backup_side = backup_side  # never told to take the identity: AWS may be hostile
        # The config lists recipients: without an identity, this side cannot check the
        # Azure side's signed verdicts (drkit.azure.verdicts).
        self.encrypting = encrypting
        self._identities: list[x25519.Identity] | None = None

    def identities(self, what: str) -> list[x25519.Identity]:
        """The identities; ``what`` (``backup NAME``, ``archived binlog FILE``) is named if
        there are none."""
        if self._identities is None:
            self._identities = self._identities_of(what)
        return self._identities

    def fingerprints(self, what: str) -> set[str]:
        """The fingerprints of the recipients the identities open (see :func:`fingerprint`)."""
        return {fingerprint(str(identity.to_public())) for identity in self.identities(what)}

    def _identities_of(self, what: str) -> list[x25519.Identity]:
        if self.backup_side:
            raise ConfigError(
                f"{_sentence_start(what)} is encrypted, and this config is the backup side's "
                "(side: backup): it holds no identity and never reads backups back; nothing "
                "was read.", "Verify, restore and prove with the Azure side's config; the "
                "identity never goes on the backup host.")
        if self.reference is None or self._resolver is None:
            raise BackupKeyError(
                f"{_sentence_start(what)} is encrypted (age) and this config names no "
                "identity to open it (encryption.identity); nothing was read.",
                "Set encryption.identity to the Key Vault secret (keyvault:NAME) or file "
                "(file:/PATH) holding its AGE-SECRET-KEY-1... line.")
        pyrage = _pyrage()
        secret = self._resolver.resolve(self.reference).get_secret_value()
        # An identity file as age-keygen writes it: "# created"/"# public key" comments
        # and blank lines are not keys (age skips them too); each other line is one.
        lines = [line.strip() for line in secret.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        try:
            identities = [pyrage.x25519.Identity.from_str(line) for line in lines]
        except pyrage.IdentityError:
            identities = []
        if not identities:
            where = self.reference if isinstance(self.reference, str) else \
                " or ".join(self.reference)
            raise BackupKeyError(
                f"The encryption identity {where} is not an age X25519 identity; {what} "
                "was not read.", "Store the AGE-SECRET-KEY-1... line that "
                "age-keygen wrote there.")
        return identities


def decrypted(backup: str, chunks: Iterable[bytes], keyring: Keyring) -> Iterator[bytes]:
    """The plaintext of the age file whose bytes ``chunks`` yields, in pieces of about
    1 MiB, each authenticated before it is handed on.

    Raises :class:`BackupKeyError` when the identity is missing or not one of the file's
    recipients; as the decompressors do, :class:`TruncatedStreamError` when the file ends
    early and :class:`CorruptStreamError` when it is damaged or not age; what ``chunks``
    raised (a storage failure) comes through as it is.
    """
    pyrage = _pyrage()
    identities = keyring.identities(f"backup {backup}")
    source = iter(chunks)
    reader = _PieceReader(lambda: next(source, None))
    plain = _Pipe(_PIECES_IN_FLIGHT)
    writer = _PieceWriter(plain, _OUTPUT_PIECE)

    def decrypt() -> None:
        try:
            pyrage.decrypt_io(reader, writer, identities)
            writer.finish()
        finally:
            plain.end()

    worker = _Worker(decrypt, "age-decrypt")
    worker.start()
    try:
        while (piece := plain.get()) is not None:
            yield piece
    finally:
        plain.abandon()  # a consumer that stops early (an error downstream) ends pyrage too
        worker.join()
    if reader.failure is not None:
        raise reader.failure
    if worker.error is not None:
        raise _decrypt_failure(f"backup {backup}", keyring, worker.error, reader.ended)


def _decrypt_failure(what: str, keyring: Keyring, error: BaseException,
                     read_to_end: bool) -> Exception:
    text = str(error)
    if "No matching keys found" in text:
        return BackupKeyError(
            f"{_sentence_start(what)} is not encrypted to the identity {keyring.reference} "
            "(none of its recipients matches); nothing was restored from it.",
            "Use the identity of one of the recipients it was written for (an older Key "
            "Vault secret version after a rotation, or the break-glass key).")
    # pyrage says "decryption error" for a damaged piece and for a missing last piece
    # alike: a file that failed only once all of it was read ends early.
    if read_to_end and isinstance(error, OSError):
        return TruncatedStreamError(f"the age file ends before its last piece ({text})")
    return CorruptStreamError(f"not a valid age file ({text})")


def _sentence_start(what: str) -> str:
    return what[:1].upper() + what[1:]


def fingerprint(recipient: str) -> str:
    """A recipient's name in manifests and the archive's records: the first 16 hex digits of
    the sha256 of its ``age1...`` text. Public, as the recipient is; it says which key opens
    what, and an identity's own recipient (``age-keygen -y``) gives the same name."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:16]


class Sealer:
    """Encrypts whole pieces (an archived binlog range, a manifest's digests) to the
    configured recipients, each piece its own age file; the backup host holds only this."""

    def __init__(self, texts: list[str]) -> None:
        self.recipients = recipients(texts)  # refuses without pyrage, before anything is written
        self.fingerprints = [fingerprint(text) for text in texts]

    def seal(self, data: bytes) -> bytes:
        return _pyrage().encrypt(data, self.recipients)


def sealer(texts: list[str]) -> Sealer | None:
    """A sealer for the configured recipients; None where none are configured."""
    return Sealer(texts) if texts else None


def opened(what: str, sealed_bytes: bytes, keyring: Keyring) -> bytes:
    """The plaintext of one whole age file ``what`` (``archived binlog FILE bytes A-B``).

    Raises :class:`BackupKeyError` when the identity is missing or not a recipient, and
    :class:`CorruptStreamError` when the bytes are not an intact age file.
    """
    pyrage = _pyrage()
    identities = keyring.identities(what)
    plain, pieces = _CollectedOutput(), iter((sealed_bytes,))
    try:
        # Through Python's read and write, a few KiB a call, not pyrage.decrypt: pyrage
        # holds the GIL while it decrypts, and hands it to other threads only between
        # calls into Python (a 4 MiB range would stop the others for 25-130 ms).
        pyrage.decrypt_io(_PieceReader(lambda: next(pieces, None)), plain, identities)
    except (pyrage.DecryptError, OSError) as error:  # OSError: a damaged or missing piece
        raise _decrypt_failure(what, keyring, error, read_to_end=False) from None
    return b"".join(plain.take())
