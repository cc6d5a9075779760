"""A block blob grown by appending: each append stages one block and commits the whole block
list again, on the condition that the blob is as its writer last left it (new: absent).

The binlog archive's files are such blobs (:mod:`drkit.binlog.writer` says what goes in them
and why). Azure's part is here: block ids, conditional commits, the committed block list,
and a read of exactly the version a writer saw.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, BlockState

from drkit.azure.blobstore import BackupStore


@dataclass(frozen=True)
class CommittedBlob:
    """A blob as it is now: its ETag, size, metadata and committed blocks (id, size)."""

    etag: str
    size: int
    metadata: dict[str, str]
    blocks: list[tuple[str, int]]


class StaleBlockList(Exception):
    """A commit named a committed block the blob no longer has (Azure's InvalidBlockList):
    something other than the writer rewrote the blob."""


def block_id(run: str, index: int) -> str:
    """Block ``index`` of writer ``run``: ids of one run only, and all of one length (Azure
    requires it; ``run`` of 6 characters gives the length drkit's ids always had)."""
    return base64.b64encode(f"{run}-{index:010d}".encode()).decode()


class GrowingBlob:
    """One block blob of a store, appended to a block at a time."""

    def __init__(self, store: BackupStore, name: str) -> None:
        self.store = store
        self.name = name
        self._blob = store.container.get_blob_client(name)

    def committed(self) -> CommittedBlob | None:
        """The blob's state and committed blocks; None if there is no such blob."""
        with self.store.translated_errors():
            try:
                properties = self._blob.get_blob_properties()
                blocks = self._blob.get_block_list("committed")[0]
            except ResourceNotFoundError:
                return None
        return CommittedBlob(properties.etag, properties.size, properties.metadata or {},
                             [(block.id, block.size) for block in blocks])

    def read_from(self, offset: int, etag: str) -> bytes:
        """The bytes from ``offset`` to the end of the version ``etag``, and of no other."""
        with self.store.translated_errors():
            return self._blob.download_blob(
                offset=offset, etag=etag,
                match_condition=MatchConditions.IfNotModified).readall()

    def append(self, block: str, data: bytes, after: list[str], etag: str | None,
               metadata: dict[str, str]) -> str | None:
        """Stage ``data`` as ``block`` and commit it after the committed blocks ``after``,
        with ``metadata``, if the blob is still the version ``etag`` (None: if there is no
        blob). The new ETag; None where the condition refused the commit (another writer
        wrote, or the SDK retried a commit whose answer was lost: the caller looks)."""
        condition = {"match_condition": MatchConditions.IfMissing} if etag is None else {
            "etag": etag, "match_condition": MatchConditions.IfNotModified}
        with self.store.translated_errors():
            try:
                self._blob.stage_block(block, data, length=len(data))
                return self._blob.commit_block_list(
                    [*(BlobBlock(i, BlockState.COMMITTED) for i in after),
                     BlobBlock(block, BlockState.UNCOMMITTED)],
                    metadata=metadata, **condition)["etag"]
            except (ResourceModifiedError, ResourceExistsError):
                return None
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    return None
                if exc.error_code == "InvalidBlockList":
                    raise StaleBlockList(self.name) from None
                raise
