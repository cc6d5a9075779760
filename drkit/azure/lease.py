"""One writer at a time, enforced by Azure: a blob lease on a lock blob.

The binlog archive's writer holds one; with ``backup.locks: blob`` (the fleet's default) so
do a backup of a database and a ``--replace`` restore (:func:`drkit.ops.lock.run_lock`).
A lock file on one host guards nothing from a run on another. The lease is Azure's: held
for ``seconds`` and renewed well before it runs out by a thread, and confirmed (renewed)
again just before each write, so a writer whose lease was broken, or ran out while it
hung, learns it before it writes. The holder's host, pid and start time are the lock blob's
metadata, for the message a refused writer prints.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from datetime import UTC, datetime
from types import TracebackType

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobLeaseClient

from drkit.azure.blobstore import BackupStore
from drkit.console import log_event
from drkit.errors import LockHeldError


class WriterLease:
    def __init__(self, store: BackupStore, name: str, what: str, seconds: int = 60,
                 renew_every: float = 15) -> None:
        self.store = store
        self.blob = store.container.get_blob_client(name)
        self.what = what
        self.seconds = seconds
        self.renew_every = renew_every
        self._lease: BlobLeaseClient | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None
        self._renewed = 0.0

    def acquire(self) -> WriterLease:
        with self.store.translated_errors():
            try:
                self._take()
            except AzureError:
                self.release()
                raise
        self._thread = threading.Thread(target=self._keep, name="lease", daemon=True)
        self._thread.start()
        return self

    def _take(self) -> None:
        with contextlib.suppress(ResourceExistsError):  # it stays: its lease comes and goes
            self.blob.upload_blob(b"", overwrite=False)
        lease = BlobLeaseClient(self.blob)
        if not self._took(lease) and not (self._broke_dead_holder() and self._took(lease)):
            raise LockHeldError(
                f"Another {self.what} holds the lease on {self.blob.blob_name} "
                f"({self._holder()}); this run was not started.",
                f"Run one {self.what} at a time: stop the other one, or wait for it to "
                f"finish (a dead one's lease runs out within {self.seconds} s).") from None
        self._renewed = time.monotonic()
        self._lease = lease
        try:
            self.blob.set_blob_metadata({
                "host": socket.gethostname(), "pid": str(os.getpid()),
                "started": datetime.now(UTC).isoformat(timespec="seconds")}, lease=lease)
        except HttpResponseError as exc:
            if exc.status_code not in (409, 412):
                raise
            self._lease = None  # broken by a rival starting at the same moment
            raise LockHeldError(
                f"Another {self.what} took the lease on {self.blob.blob_name} as "
                "this one started; this run was not started.",
                f"Run one {self.what} at a time.") from None

    def _took(self, lease: BlobLeaseClient) -> bool:
        try:
            lease.acquire(lease_duration=self.seconds)
        except HttpResponseError as exc:
            if exc.status_code != 409:  # 409: leased by another
                raise
            return False
        return True

    def _broke_dead_holder(self) -> bool:
        """A holder killed on this host keeps its lease for up to ``seconds``; the restart
        (systemd, cron) breaks it, if the holder is still the one read (ETag)."""
        properties = self.blob.get_blob_properties()
        meta = properties.metadata or {}
        if meta.get("host") != socket.gethostname() or not meta.get("pid", "").isdigit():
            return False
        try:
            os.kill(int(meta["pid"]), 0)
            return False  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            return False  # alive, another user's
        try:
            BlobLeaseClient(self.blob).break_lease(
                lease_break_period=0, etag=properties.etag,
                match_condition=MatchConditions.IfNotModified)
        except HttpResponseError:
            return False
        log_event("lease.broken", f"Broke the lease of {self.what}'s pid {meta['pid']} on "
                  "this host, which is no longer running", pid=meta["pid"])
        return True

    def _holder(self) -> str:
        """Who holds the lease; a holder that has just taken it records itself at once."""
        deadline = time.monotonic() + 5
        while True:
            try:
                meta = self.blob.get_blob_properties().metadata or {}
            except AzureError:
                meta = {}
            if "pid" in meta or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if "pid" not in meta:
            return "holder not recorded"
        return f"pid {meta['pid']} on {meta.get('host', '?')}, started {meta.get('started')}"

    def _keep(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                self.confirm()
            except LockHeldError:
                return

    def confirm(self) -> None:
        """Renew the lease now; raise the one sentence if it is no longer ours."""
        with self._lock:
            if self._lost is None and self._lease is not None:
                try:
                    self._lease.renew()
                    self._renewed = time.monotonic()
                except HttpResponseError as exc:
                    if exc.status_code in (409, 412):  # broken, or taken by another
                        self._lost = f"{exc.error_code or exc.status_code}"
                    elif time.monotonic() - self._renewed > self.seconds - 5:
                        self._lost = "it could not be renewed before it ran out"
                except AzureError:
                    if time.monotonic() - self._renewed > self.seconds - 5:
                        self._lost = "it could not be renewed before it ran out"
            if self._lost is not None:
                raise LockHeldError(
                    f"This {self.what} lost its lease on {self.blob.blob_name} ({self._lost}):"
                    " another may hold it now; it stopped before writing again.",
                    f"Run one {self.what} at a time; start this one again once the other "
                    "has stopped.")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._lease is not None and self._lost is None:
                with contextlib.suppress(AzureError):  # else it runs out within `seconds`
                    self.blob.set_blob_metadata({}, lease=self._lease)  # no holder now
                    self._lease.release()
            self._lease = None

    def __enter__(self) -> WriterLease:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
