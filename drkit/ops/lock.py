"""One run at a time per resource: a lock file on this host, or a lease in Azure across hosts.

``backup.locks: local``: ``flock`` on a file under the state directory: a run killed with
SIGKILL releases it at once, so a stale lock never blocks the next cron run. The file
records who holds it, for the message the refused run prints.

``backup.locks: blob`` (the fleet's default): a lease on a blob under the backup prefix's
``locks/`` (:class:`drkit.azure.lease.WriterLease`), renewed while the run lives; a run
killed with SIGKILL holds it until it runs out (60 s), unless a run on the same host finds
its holder dead and breaks it. Either lock's ``confirm`` is called before a run's decisive
write: a run whose lease was lost stops there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from drkit.azure.blobstore import BackupStore
from drkit.azure.lease import WriterLease
from drkit.config import Settings
from drkit.errors import LockHeldError

LEASES = "locks/"  # under the backup prefix: the lease blobs of backup.locks: blob


def run_lock(settings: Settings, name: str, what: str) -> HeldLock:
    """The lock of one resource as ``backup.locks`` says, not yet held; ``name`` is a file
    name word (quoted), ``what`` the run it guards ("backup of database shop")."""
    if settings.backup.locks == "blob":
        store = BackupStore.from_settings(settings)
        return WriterLease(store, f"{store.prefix}{LEASES}{name}.lock", what)
    return RunLock(settings.backup.state_dir.expanduser() / "locks" / f"{name}.lock", what)


class RunLock:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(
                f"Another {self.what} is running ({holder}); this run was not started.",
                "Wait for it to finish; the lock goes away when that process ends.",
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(os.path.basename(a) for a in sys.argv[:2]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def confirm(self) -> None:
        """Nothing to confirm: a flock is held until its holder ends."""

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (ValueError, KeyError):
        return "holder unknown"


HeldLock = RunLock | WriterLease  # either kind: acquire, confirm, release
