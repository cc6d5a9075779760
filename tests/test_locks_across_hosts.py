"""``backup.locks: blob``: two workers with separate state folders (two hosts' worth of
processes) never back up one database at once, a run that lost its lease stops before
it commits, and a killed holder does not block the next run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobLeaseClient

from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from drkit.exitstatus import ExitStatus
from tests.helpers import point_cli_at, process_alive, process_stopped, wait_until


def _worker(tmp_path: Path, name: str, **env: str) -> subprocess.Popen:
    """``drkit backup`` as a worker of its own (its own state folder: its lock files are
    not the other's), with blob locks."""
    environment = {**os.environ, "DRKIT_BACKUP__LOCKS": "blob",
                   "DRKIT_BACKUP__STATE_DIR": str(tmp_path / name),
                   "DRKIT_BACKUP__LOG_FILE": str(tmp_path / f"{name}.log"), **env}
    return subprocess.Popen([str(Path(sys.executable).parent / "drkit"), "backup"], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_never_back_up_one_database_at_once(sandbox, tmp_path, monkeypatch):
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    store = BackupStore.from_settings(load_settings())
    lease_blob = store.container.get_blob_client(f"{prefix}locks/backup-shop.lock")
    # worker A takes the lease and is frozen there, before it dumps anything
    first = _worker(tmp_path, "a", DRKIT_FAILPOINT="backup:1:stop")
    try:
        wait_until(lambda: process_stopped(first.pid), "worker A held at the failpoint")
        assert lease_blob.get_blob_properties().lease.state == "leased"

        second = _worker(tmp_path, "b")
        _, err = second.communicate(timeout=120)
        assert second.returncode == ExitStatus.LOCK_HELD, err
        assert "Another backup of database shop holds the lease on " \
               f"{prefix}locks/backup-shop.lock (pid {first.pid} on " \
               f"{socket.gethostname()}, started " in err, err

        # A's lease is broken (as when it ran out while A hung): A stops before its commit
        BlobLeaseClient(lease_blob).break_lease(lease_break_period=0)
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=120)
        assert first.returncode == ExitStatus.LOCK_HELD, err
        assert "This backup of database shop lost its lease on" in err, err
        assert "stopped before writing again" in err
        assert not [b.name for b in store.container.list_blobs(name_starts_with=prefix)
                    if ".sql." in b.name], "a backup was committed without its lease"
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()

    # A holder killed with -9 keeps its lease until it runs out, or until a run on its
    # host finds it dead: B breaks it and runs
    held = _worker(tmp_path, "c", DRKIT_FAILPOINT="backup:1:stop")
    wait_until(lambda: process_stopped(held.pid), "worker C held at the failpoint")
    held.kill()
    held.communicate()
    assert not process_alive(held.pid)
    again = _worker(tmp_path, "b")
    _, err = again.communicate(timeout=180)
    assert again.returncode == ExitStatus.OK, err
    assert "Broke the lease of backup of database shop's pid" in err, err


def test_a_replace_holds_its_target_databases_lease(sandbox, tmp_path, monkeypatch):
    """The --replace lock is a lease too: a second restore of the database is refused."""
    from types import SimpleNamespace

    from drkit.errors import LockHeldError
    from drkit.ops.restore import _restoring

    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    settings.backup.locks = "blob"
    target = SimpleNamespace(address="127.0.0.1:3306")
    with _restoring(settings, target, ["shop"]) as [lease]:
        lease.confirm()
        with pytest.raises(LockHeldError, match=(
                "Another restore of shop on 127.0.0.1:3306 holds the lease on "
                f"{prefix}locks/replace-127.0.0.1%3A3306-shop.lock \\(pid {os.getpid()} ")):
            _restoring(settings, target, ["shop"]).__enter__()
    with _restoring(settings, target, ["shop"]):  # released
        pass
