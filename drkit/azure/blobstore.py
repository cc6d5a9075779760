"""Azure Blob Storage as a backup store: block uploads that become visible only on commit.

A backup blob is written with Put Block for each block and made visible by one Put Block
List, sent only after the dump has been checked, and with ``If-None-Match: *`` so an
existing blob is never replaced. A run that fails before the commit leaves nothing anyone
can list (Azure discards uncommitted blocks after a week).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings

from drkit.azure.credentials import storage_credential
from drkit.azure.failures import storage_failure
from drkit.config import Settings
from drkit.errors import (
    BackupExistsError,
    ChecksumMismatchError,
    ContainerPublicError,
    DrkitError,
    StorageError,
    UploadFailedError,
)
from drkit.secrets import resolver_for
from drkit.stream.encryption import Keyring

_TIMEOUT = 60  # seconds per request; retries come from the SDK's policy
# A download's first request (the SDK's default: 32 MiB): an archived binlog range (a block
# of 4 MiB, drkit.binlog.writer.BLOCK_LIMIT, and its age framing) comes in one.
_FIRST_GET_BYTES = 4 * 1024 * 1024 + 64 * 1024


@dataclass(frozen=True)
class StoredBlob:
    """One blob as a listing shows it (``metadata`` only where the listing asked for it)."""

    name: str
    size: int
    etag: str
    metadata: dict[str, str]


class BackupStore:
    """One container (and prefix) of one storage account: the only holder of an Azure client.

    Everything drkit does with blobs outside this package goes through its methods, and
    every Azure failure comes out of them as a drkit error (:meth:`translated_errors`).
    """

    def __init__(self, container: ContainerClient, prefix: str, account: str,
                 keyring: Keyring | None = None, *, may_delete: bool = True) -> None:
        self.container = container
        self.prefix = prefix
        self.account = account
        self.keyring = keyring or Keyring()  # opens encrypted backups when they are read
        # False with a credential known not to delete (the backup side's SAS): what would
        # delete is left for the Azure side instead of being tried and refused.
        self.may_delete = may_delete

    @classmethod
    def from_settings(cls, settings: Settings, container: str | None = None,
                      prefix: str | None = None) -> BackupStore:
        """The configured backup container, or another ``container`` of the same account."""
        storage, resolver = settings.storage, resolver_for(settings)
        account = resolver.value(storage.account)
        endpoint = storage.endpoint or f"https://{account}.blob.core.windows.net"
        credential = storage_credential(settings, resolver, account)
        # Three retries 4, 6 and 10 s apart (the SDK's own: 15, 18 and 24 s): a transient
        # error still passes, an endpoint that is down is named within about 20 s.
        # A download's first request as large as the later ones (4 MiB; the SDK's own: 32
        # MiB): a reader of the chunks (a restore, the binlog replay) starts on the first
        # megabytes rather than after a whole archived binlog file.
        service = BlobServiceClient(endpoint, credential=credential.value,
                                    retry_total=storage.retries, initial_backoff=2,
                                    increment_base=2, max_single_get_size=_FIRST_GET_BYTES)
        return cls(service.get_container_client(container or storage.container),
                   storage.prefix if prefix is None else prefix, account,
                   Keyring(settings.encryption.identity, resolver,
                           backup_side=settings.side == "backup",
                           encrypting=bool(settings.encryption.recipients)),
                   may_delete=credential.may_delete)

    def under(self, prefix: str) -> BackupStore:
        """The same container, under another prefix (the binlog archive's, say)."""
        return BackupStore(self.container, prefix, self.account, self.keyring,
                           may_delete=self.may_delete)

    @contextlib.contextmanager
    def translated_errors(self) -> Iterator[None]:
        """Azure failures inside the block come out as drkit errors (:meth:`error`)."""
        try:
            yield
        except AzureError as exc:
            raise self.error(exc) from None

    @property
    def container_name(self) -> str:
        return self.container.container_name

    @property
    def where(self) -> str:
        return f"container {self.container_name} of storage account {self.account}"

    def url(self, name: str) -> str:
        """The blob's address (a link for a reader who may read the container). The SDK's
        URL of a client holding a SAS carries the token as its query: it is cut off, as a
        link is printed, logged and published."""
        return self.container.get_blob_client(name).url.split("?", 1)[0]

    def check(self) -> None:
        """The container answers, accepts our credentials, exists and is private."""
        with self.translated_errors():
            properties = self.container.get_container_properties(timeout=_TIMEOUT)
        if properties.public_access:
            raise ContainerPublicError(
                f"The {self.where} allows public read access ({properties.public_access}).",
                "Set its access level to private before storing backups in it.",
            )

    def service_time(self) -> datetime | None:
        """The storage service's clock (the Date header of its answer); None if it sent none."""
        seen: dict[str, str] = {}
        with self.translated_errors():
            self.container.get_container_properties(
                timeout=_TIMEOUT, raw_response_hook=lambda response: seen.update(
                    date=response.http_response.headers.get("Date", "")))
        return parsedate_to_datetime(seen["date"]) if seen.get("date") else None

    def blobs(self, starting_with: str | None = None, *,
              metadata: bool = False) -> list[StoredBlob]:
        """The current blobs whose names start with ``starting_with`` (default: the prefix),
        by name, with their metadata if asked for."""
        with self.translated_errors():
            return [StoredBlob(b.name, b.size, b.etag, b.metadata or {}) for b in
                    self.container.list_blobs(
                        name_starts_with=self.prefix if starting_with is None else starting_with,
                        include=["metadata"] if metadata else None)]

    def exists(self, name: str) -> bool:
        with self.translated_errors():
            return self.container.get_blob_client(name).exists(timeout=_TIMEOUT)

    def download(self, name: str) -> Iterator[bytes]:
        """The blob's bytes as they arrive; Azure failures as drkit errors."""
        with self.translated_errors():
            try:
                yield from self.container.download_blob(name).chunks()
            except ResourceModifiedError:  # the SDK pins every range to the first one's ETag
                raise ChecksumMismatchError(
                    f"Backup {name} was replaced while it was being read; what was read is "
                    "not one backup.", "Verify it again; a restore that was running holds a "
                    "partial copy: restore again with --replace.") from None

    def download_appended(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` of a blob that only grows (an archived binlog) as they
        arrive. An append while they are read moves the blob's ETag, to which the SDK pins
        every range after the first: the read goes on after what came, as those bytes do not
        change (the caller checks them against their sha256). A blob shorter than ``end``
        gives what it holds."""
        while start < end:
            with self.translated_errors():
                try:
                    for chunk in self.container.download_blob(
                            name, offset=start, length=end - start).chunks():
                        start += len(chunk)
                        yield chunk
                    return
                except ResourceModifiedError:
                    continue  # appended meanwhile; each pass takes at least its first range
                except HttpResponseError as exc:
                    if exc.status_code == 416:  # nothing at ``start``: the blob is shorter
                        return
                    raise

    def read(self, name: str) -> bytes:
        """The whole blob (a small one: a record, a note, a run.json)."""
        with self.translated_errors():
            return self.container.download_blob(name).readall()

    def read_with_etag(self, name: str) -> tuple[bytes, str]:
        """The whole blob and the ETag of the version read."""
        with self.translated_errors():
            downloader = self.container.download_blob(name)
            return downloader.readall(), downloader.properties.etag

    def read_if_present(self, name: str) -> tuple[bytes, str] | None:
        """As :meth:`read_with_etag`; None where there is no such blob."""
        with self.translated_errors():
            try:
                downloader = self.container.download_blob(name)
            except ResourceNotFoundError:
                return None
            return downloader.readall(), downloader.properties.etag

    def size_if_present(self, name: str) -> int | None:
        """The blob's size; None where there is no such blob."""
        with self.translated_errors():
            try:
                return self.container.get_blob_client(name).get_blob_properties(
                    timeout=_TIMEOUT).size
            except ResourceNotFoundError:
                return None

    def metadata(self, name: str) -> dict[str, str]:
        """The blob's metadata."""
        with self.translated_errors():
            return self.container.get_blob_client(name).get_blob_properties(
                timeout=_TIMEOUT).metadata or {}

    def uploader(self, name: str, block_size: int) -> BlockUploader:
        return BlockUploader(self, self.container.get_blob_client(name), block_size)

    def write(self, name: str, data: bytes | IO[bytes], *, replacing: str | None = None,
              metadata: dict[str, str] | None = None,
              content_type: str | None = None) -> str | None:
        """Write a blob on a condition and return its new ETag: a new blob, never
        overwriting one; or, with ``replacing`` (an ETag), exactly that version, nothing
        newer. None where the condition failed (another writer was there first): the
        caller says what that means."""
        condition: dict[str, Any] = {"overwrite": False} if replacing is None else {
            "overwrite": True, "etag": replacing, "match_condition": MatchConditions.IfNotModified}
        if content_type is not None:
            condition["content_settings"] = ContentSettings(content_type=content_type)
        with self.translated_errors():
            try:
                return self.container.get_blob_client(name).upload_blob(
                    data, metadata=metadata, timeout=_TIMEOUT, **condition)["etag"]
            except (ResourceExistsError, ResourceModifiedError):
                return None

    def put_json(self, name: str, value: Any, *, replacing: str | None = None) -> str:
        """Write a JSON blob and return its ETag, on :meth:`write`'s condition; another
        writer's blob is refused (BackupExistsError)."""
        data = json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"
        etag = self.write(name, data, replacing=replacing, content_type="application/json")
        if etag is None:
            raise BackupExistsError(
                f"Blob {name} already exists in the {self.where}; it was left as it is."
                if replacing is None else f"Blob {name} was changed by someone else in the "
                f"{self.where}; it was left as it is.")
        return etag

    def delete(self, name: str, *, version_id: str | None = None,
               missing_ok: bool = True) -> None:
        """Delete the blob (or, with ``version_id``, that earlier version of it)."""
        with self.translated_errors():
            try:
                self.container.delete_blob(name, version_id=version_id, timeout=_TIMEOUT)
            except ResourceNotFoundError:
                if not missing_ok:
                    raise

    def error(self, exc: AzureError) -> DrkitError:
        """One sentence for an Azure failure, with the fix where the cause is known."""
        return storage_failure(exc, self.account, self.where,
                               self.container.url.rsplit("/", 1)[0])


# Azure keeps at most 50,000 blocks per blob, each at most 4000 MiB. Blocks double in size
# every 10,000, so a backup of any size up to 310,000 base blocks (2.4 TiB at the default
# 8 MiB) fits, while small backups keep small blocks (memory: a few blocks in flight).
MAX_BLOCKS = 50_000
_BLOCKS_PER_SIZE = 10_000
_MAX_BLOCK = 4000 * 1024 * 1024


def block_size_for(index: int, base: int) -> int:
    """The size of block number ``index`` (from 0) of a blob staged in ``base``-size blocks."""
    return min(base << (index // _BLOCKS_PER_SIZE), _MAX_BLOCK)


def blob_capacity(base: int) -> int:
    """The largest blob the schedule stages within Azure's block limit."""
    return sum(block_size_for(i * _BLOCKS_PER_SIZE, base) * _BLOCKS_PER_SIZE
               for i in range(MAX_BLOCKS // _BLOCKS_PER_SIZE))


class BlockUploader:
    """Stages fixed-size blocks concurrently while hashing; ``commit`` makes the blob appear.

    Exact-size blocks staged by us, not ``upload_blob`` on a stream: the SDK buffers a stream
    of short reads whole in memory (see shared/notes/measurements.md).
    """

    def __init__(self, store: BackupStore, blob: BlobClient, block_size: int,
                 max_in_flight: int = 4) -> None:
        self.store = store
        self.blob = blob
        self.block_size = block_size
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._buffer = bytearray()
        self._block_ids: list[str] = []
        # Block ids of this run only: another writer's uncommitted blocks of the same blob
        # name never end up in our block list. One length for all (Azure requires it).
        self._run = uuid.uuid4().hex[:12]
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="upload")
        self._in_flight: deque[Future[None]] = deque()
        self._max_in_flight = max_in_flight

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def write(self, data: bytes) -> None:
        self._sha256.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= (size := block_size_for(len(self._block_ids),
                                                            self.block_size)):
            block = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._stage(block)

    def _stage(self, block: bytes) -> None:
        if len(self._block_ids) >= MAX_BLOCKS:
            raise UploadFailedError(
                f"Backup {self.blob.blob_name} outgrew Azure's {MAX_BLOCKS} blocks per blob "
                f"({self.size} bytes so far); nothing was committed.",
                f"Raise backup.block_size_mib (now {self.block_size // 2**20} MiB: "
                f"{blob_capacity(self.block_size) // 2**30} GiB at most).")
        block_id = base64.b64encode(f"{self._run}-{len(self._block_ids):010d}".encode()).decode()
        self._block_ids.append(block_id)
        self._in_flight.append(self._pool.submit(
            self.blob.stage_block, block_id, block, length=len(block), timeout=_TIMEOUT))
        # Bytes in flight stay at max_in_flight base blocks: bigger blocks, fewer at once.
        limit = max(1, self._max_in_flight * self.block_size // max(len(block), 1))
        while len(self._in_flight) > limit:
            self._wait(self._in_flight.popleft())

    def _wait(self, future: Future[None]) -> None:
        with self._upload_errors():
            future.result()

    @contextlib.contextmanager
    def _upload_errors(self) -> Iterator[None]:
        """The store's translation, where a plain storage failure is the upload's: nothing
        was committed."""
        try:
            with self.store.translated_errors():
                yield
        except StorageError as error:
            if type(error) is not StorageError:  # its own kind (credentials...) says more
                raise
            raise UploadFailedError(f"Uploading {self.blob.blob_name} failed: {error.message}",
                                    "Nothing was committed; run the backup again.") from None

    def commit(self, metadata: dict[str, str], content_type: str) -> None:
        """Stage what is left and publish the blob, unless a blob of that name exists."""
        if self._buffer or not self._block_ids:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        while self._in_flight:
            self._wait(self._in_flight.popleft())
        self._pool.shutdown()
        with self._upload_errors():
            try:
                self.blob.commit_block_list(
                    self._block_ids, metadata=metadata, timeout=_TIMEOUT,
                    content_settings=ContentSettings(content_type=content_type),
                    match_condition=MatchConditions.IfMissing,
                )
            except ResourceExistsError:
                self._exists_as_ours()  # the SDK retried a commit whose answer was lost
            except HttpResponseError as exc:
                if exc.status_code != 409 and \
                        getattr(exc, "error_code", "") != "BlobAlreadyExists":
                    raise
                self._exists_as_ours()
        self._check_committed()

    def _committed(self) -> tuple[int, str | None]:
        with self._upload_errors():
            properties = self.blob.get_blob_properties(timeout=_TIMEOUT)
        return properties.size, (properties.metadata or {}).get("sha256")

    def _exists_as_ours(self) -> None:
        """A blob of our name exists: ours if it holds our bytes (a retried commit)."""
        if self._committed() != (self.size, self.sha256):
            raise BackupExistsError(
                f"Blob {self.blob.blob_name} already exists in the {self.store.where} and "
                "is not this run's; it was not overwritten.",
                "Run the backup again for a new name.")

    def _check_committed(self) -> None:
        size, sha256 = self._committed()
        if (size, sha256) != (self.size, self.sha256):
            raise UploadFailedError(
                f"The committed blob {self.blob.blob_name} is {size} bytes (sha256 "
                f"{(sha256 or '?')[:12]}...), not the {self.size} bytes this run wrote.",
                "Do not trust it; run the backup again.")

    def abort(self) -> None:
        """Drop everything staged; nothing becomes visible."""
        for future in self._in_flight:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._in_flight.clear()
