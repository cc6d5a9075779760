"""Azure Blob Storage as a backup store: block uploads that become visible only on commit.

A backup blob is written with Put Block for each block and made visible by one Put Block
List, sent only after the dump has been checked, and with ``If-None-Match: *`` so an
existing blob is never replaced. A run that fails before the commit leaves nothing anyone
can list (Azure discards uncommitted blocks after a week).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings

from drkit.config import Settings
from drkit.errors import (
    BackupExistsError,
    ChecksumMismatchError,
    ContainerMissingError,
    ContainerPublicError,
    DrkitError,
    StorageAuthError,
    StorageError,
    UploadFailedError,
)
from drkit.stream.encryption import Keyring

_TIMEOUT = 60  # seconds per request; retries come from the SDK's policy


class BackupStore:
    """One container (and prefix) of one storage account."""

    def __init__(self, container: ContainerClient, prefix: str, account: str,
                 keyring: Keyring | None = None) -> None:
        self.container = container
        self.prefix = prefix
        self.account = account
        self.keyring = keyring or Keyring()  # opens encrypted backups when they are read

    @classmethod
    def from_settings(cls, settings: Settings, container: str | None = None,
                      prefix: str | None = None) -> BackupStore:
        """The configured backup container, or another ``container`` of the same account."""
        storage, resolver = settings.storage, settings.secrets
        account = resolver.value(storage.account)
        endpoint = storage.endpoint or f"https://{account}.blob.core.windows.net"
        if storage.auth == "key":
            credential: Any = {"account_name": account,
                               "account_key": resolver.resolve(storage.key).get_secret_value()}
        else:  # the same Entra ID login (tenant, authority, client) as Flexible Server control
            from drkit.azure.flexserver import credential as azure_login

            credential = azure_login(settings.azure, resolver)
        # Three retries 4, 6 and 10 s apart (the SDK's own: 15, 18 and 24 s): a transient
        # error still passes, an endpoint that is down is named within about 20 s.
        service = BlobServiceClient(endpoint, credential=credential, retry_total=3,
                                    initial_backoff=2, increment_base=2)
        return cls(service.get_container_client(container or storage.container),
                   storage.prefix if prefix is None else prefix, account,
                   Keyring(settings.encryption.identity, resolver))

    def download(self, name: str) -> Iterator[bytes]:
        """The blob's bytes as they arrive; Azure failures as drkit errors."""
        try:
            yield from self.container.download_blob(name).chunks()
        except ResourceModifiedError:  # the SDK pins every range to the first one's ETag
            raise ChecksumMismatchError(
                f"Backup {name} was replaced while it was being read; what was read is not "
                "one backup.", "Verify it again; a restore that was running holds a partial "
                "copy: restore again with --replace.") from None
        except AzureError as exc:
            raise self.error(exc) from None

    @property
    def where(self) -> str:
        return f"container {self.container.container_name} of storage account {self.account}"

    def check(self) -> None:
        """The container answers, accepts our credentials, exists and is private."""
        try:
            properties = self.container.get_container_properties(timeout=_TIMEOUT)
        except AzureError as exc:
            raise self.error(exc) from None
        if properties.public_access:
            raise ContainerPublicError(
                f"The {self.where} allows public read access ({properties.public_access}).",
                "Set its access level to private before storing backups in it.",
            )

    def exists(self, name: str) -> bool:
        try:
            return self.container.get_blob_client(name).exists(timeout=_TIMEOUT)
        except AzureError as exc:
            raise self.error(exc) from None

    def uploader(self, name: str, block_size: int) -> BlockUploader:
        return BlockUploader(self, self.container.get_blob_client(name), block_size)

    def put_json(self, name: str, value: Any, *, replacing: str | None = None) -> str:
        """Write a JSON blob and return its ETag: a new one, never overwriting; or, with
        ``replacing`` (an ETag), exactly the version we wrote before, nothing newer."""
        data = json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"
        condition: dict[str, Any] = {"overwrite": False} if replacing is None else {
            "overwrite": True, "etag": replacing, "match_condition": MatchConditions.IfNotModified}
        try:
            response = self.container.get_blob_client(name).upload_blob(
                data, timeout=_TIMEOUT,
                content_settings=ContentSettings(content_type="application/json"), **condition)
        except ResourceExistsError:
            raise BackupExistsError(f"Blob {name} already exists in the {self.where}; "
                                    "it was left as it is.") from None
        except ResourceModifiedError:
            raise BackupExistsError(f"Blob {name} was changed by someone else in the "
                                    f"{self.where}; it was left as it is.") from None
        except AzureError as exc:
            raise self.error(exc) from None
        return response["etag"]

    def delete(self, name: str) -> None:
        try:
            self.container.delete_blob(name, timeout=_TIMEOUT)
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise self.error(exc) from None

    def error(self, exc: AzureError) -> DrkitError:
        """One sentence for an Azure failure, with the fix where the cause is known."""
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))  # the SDK hands some codes over as enums
        text = str(getattr(exc, "message", "") or exc)
        # Three causes Azure reports alike (Azure Storage REST error codes): the clock, the
        # key, the permission. Each has its own fix.
        if code == "AuthenticationFailed" and ("Request date header" in text
                                               or "time range" in text):
            return StorageAuthError(
                f"Azure Storage refused a request to account {self.account}: this machine's "
                "clock is too far from Azure's (signed requests allow 15 minutes).",
                "Run NTP (chrony or systemd-timesyncd) and check the time zone setting.")
        if code == "AuthorizationPermissionMismatch":
            return StorageAuthError(
                f"Azure Storage denied this identity an operation on the {self.where} "
                f"({code}).",
                "Assign drkit's role on the container (drkit doctor --print-policy shows it; "
                "blob index tags need tags read/write).")
        # (Azurite answers a wrong key with AuthorizationFailure.)
        if isinstance(exc, ClientAuthenticationError) or code in ("AuthenticationFailed",
                                                                  "AuthorizationFailure"):
            return StorageAuthError(
                f"Azure Storage refused the credentials for account {self.account} "
                f"({code or 'AuthenticationFailed'}).",
                "Compare the account key with the one the config's storage.key refers to; if "
                "the key was rotated, update it there.",
            )
        if code == "ContainerNotFound":
            return ContainerMissingError(
                f"The {self.where} does not exist.",
                "Create it as a private container, or fix storage.container in the config.",
            )
        if isinstance(exc, ServiceRequestError):
            return StorageError(
                f"Cannot reach Azure Storage at {self.container.url.rsplit('/', 1)[0]}.",
                "Check the network path (HTTPS egress) and storage.endpoint.",
            )
        status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
        return StorageError(f"Azure Storage request failed on the {self.where}: "
                            f"{code or status or type(exc).__name__}.")


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
        try:
            future.result()
        except AzureError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: AzureError) -> DrkitError:
        error = self.store.error(exc)
        if type(error) is StorageError:
            return UploadFailedError(f"Uploading {self.blob.blob_name} failed: {error.message}",
                                     "Nothing was committed; run the backup again.")
        return error

    def commit(self, metadata: dict[str, str], content_type: str) -> None:
        """Stage what is left and publish the blob, unless a blob of that name exists."""
        if self._buffer or not self._block_ids:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        while self._in_flight:
            self._wait(self._in_flight.popleft())
        self._pool.shutdown()
        try:
            self.blob.commit_block_list(
                self._block_ids, metadata=metadata, timeout=_TIMEOUT,
                content_settings=ContentSettings(content_type=content_type),
                match_condition=MatchConditions.IfMissing,
            )
        except ResourceExistsError:
            self._exists_as_ours()  # the SDK retried a commit whose answer was lost
        except HttpResponseError as exc:
            if exc.status_code == 409 or getattr(exc, "error_code", "") == "BlobAlreadyExists":
                self._exists_as_ours()
            else:
                raise self._failure(exc) from None
        except AzureError as exc:
            raise self._failure(exc) from None
        self._check_committed()

    def _committed(self) -> tuple[int, str | None]:
        try:
            properties = self.blob.get_blob_properties(timeout=_TIMEOUT)
        except AzureError as exc:
            raise self._failure(exc) from None
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
