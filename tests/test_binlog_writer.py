"""One writer per binlog archive, enforced in Azure; a new archive starts where its oldest
base needs it; status reads the index, the listing's readers list once. On the sandbox
(real Azurite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobBlock, BlobLeaseClient, BlockState, ContainerClient

from drkit.azure.blobstore import BackupStore
from drkit.binlog.records import UNREADABLE_INDEX
from drkit.config import load_settings
from drkit.errors import ChecksumMismatchError
from tests import dbtools
from tests.helpers import point_cli_at, process_stopped, run_cli, wait_until
from tests.test_binlog import (
    PROBE,
    _assert_archived_as_the_source_has_them,
    _source_logs,
    _write,
    _writes,
)

DRKIT = str(Path(sys.executable).parent / "drkit")


@pytest.fixture
def archive(sandbox, tmp_path, monkeypatch):
    """drkit pointed at a binlog archive of this test's own (as in test_binlog)."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BINLOG__FLUSH_SECONDS", "0.5")
    dbtools.query(sandbox, "source", f"CREATE TABLE IF NOT EXISTS {PROBE} (id INT "
                  "AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200), at DATETIME(6))")
    assert prefix
    return load_settings()


def _streamer(tmp_path: Path, name: str, replica_id: int) -> subprocess.Popen:
    """``drkit binlog stream`` as on another host: its own state dir and replica id."""
    return subprocess.Popen(
        [DRKIT, "binlog", "stream"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DRKIT_BACKUP__STATE_DIR": str(tmp_path / name),
             "DRKIT_BINLOG__REPLICA_ID": str(replica_id)})


def _archived_bytes() -> int:
    return json.loads(run_cli("binlog", "status", "--json").stdout)["archived_bytes"]


def _stop(process: subprocess.Popen) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def test_two_streamers_at_once_one_is_refused_and_the_archive_is_exact(sandbox, archive,
                                                                         tmp_path):
    """Two hosts' streamers started at the same moment under writes: one is refused (23)
    with the holder's host and pid; the other archives byte for byte as the source has it."""
    with _writes(sandbox):
        streamers = [_streamer(tmp_path, "a", 4_150_000_101),
                     _streamer(tmp_path, "b", 4_150_000_102)]
        try:
            wait_until(lambda: any(s.poll() is not None for s in streamers), "one refused")
            refused = next(s for s in streamers if s.poll() is not None)
            running = next(s for s in streamers if s is not refused)
            _, err = refused.communicate()
            assert refused.returncode == 23, err
            assert "holds the lease on" in err and f"pid {running.pid} on " in err
            wait_until(lambda: _archived_bytes() > 0, "the other one archives")
            assert running.poll() is None
            dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
            wait_until(lambda: _archived_bytes() > 100_000, "it goes on past the rotation")
        finally:
            codes = [_stop(s)[0] for s in streamers]
    assert 143 in codes
    assert run_cli("binlog", "stream", "--once").exit_code == 0  # the lease was released
    _assert_archived_as_the_source_has_them(sandbox, archive)


def test_a_writer_whose_blob_another_changed_stops_before_writing_again(sandbox, archive,
                                                                         tmp_path):
    """Another client changes the archived blob (its ETag): the writer's next commit is
    refused and it stops (23) with the sentence; what it left is whole, and the next run
    goes on from it byte for byte."""
    store = BackupStore.from_settings(archive, prefix="")
    with _writes(sandbox):
        streamer = _streamer(tmp_path, "a", 4_150_000_103)
        try:
            wait_until(lambda: _archived_bytes() > 0, "it archives")
            blob = store.container.get_blob_client(archive.binlog.prefix +
                                                   _source_logs(sandbox)[-1])
            blob.set_blob_metadata({**blob.get_blob_properties().metadata, "touched": "1"})
            wait_until(lambda: streamer.poll() is not None, "the writer stops")
        finally:
            code, err = _stop(streamer)
    assert code == 23, err
    assert "Another writer changed the binlog archive" in err
    assert "stopped before writing again" in err and "Traceback" not in err
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    _assert_archived_as_the_source_has_them(sandbox, archive)


def test_a_writer_whose_lease_was_broken_stops_before_writing_again(sandbox, archive,
                                                                     tmp_path):
    store = BackupStore.from_settings(archive, prefix="")
    lock = store.container.get_blob_client(archive.binlog.prefix + "writer.lock")
    with _writes(sandbox):
        streamer = _streamer(tmp_path, "a", 4_150_000_104)
        try:
            wait_until(lambda: _archived_bytes() > 0, "it archives")
            before = _archived_bytes()
            BlobLeaseClient(lock).break_lease(lease_break_period=0)
            wait_until(lambda: streamer.poll() is not None, "the writer stops")
        finally:
            code, err = _stop(streamer)
    assert code == 23, err
    assert "lost its lease" in err and "stopped before writing again" in err
    assert _archived_bytes() <= before + 4 * 1024 * 1024  # at most the flush under way
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    _assert_archived_as_the_source_has_them(sandbox, archive)


def test_bytes_no_sha256_vouches_for_are_never_recorded(sandbox, archive):
    """A block committed after the record by someone else (garbage, no range of drkit's):
    the next run refuses it (48) and the record keeps what it had."""
    _write(sandbox, 10)
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    store = BackupStore.from_settings(archive, prefix="")
    name = archive.binlog.prefix + _source_logs(sandbox)[-1]
    record = json.loads(store.container.download_blob(name + ".json").readall())
    blob = store.container.get_blob_client(name)
    ids = [b.id for b in blob.get_block_list("committed")[0]]
    garbage = bytes(range(256)) * 40
    blob.stage_block("x" * len(ids[0]), garbage)
    blob.commit_block_list([*(BlobBlock(i, BlockState.COMMITTED) for i in ids),
                            BlobBlock("x" * len(ids[0]), BlockState.UNCOMMITTED)])
    result = run_cli("binlog", "stream", "--once")
    assert result.exit_code == 48, result.stdout + result.stderr
    assert "no sha256 of drkit's vouches for them" in result.stderr
    assert json.loads(store.container.download_blob(name + ".json").readall()) == record


def test_a_new_archive_starts_at_the_oldest_bases_binlog(sandbox, archive):
    """Several binlogs on the source, a base taken after rotating: a fresh archive's first
    file is the base's, nothing older is copied; without a base, the current file."""
    for _ in range(3):
        _write(sandbox, 10)
        dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    backup = json.loads(run_cli("backup", "--json").stdout)["backup"]
    store = BackupStore.from_settings(archive)
    snapshot = json.loads(store.container.download_blob(
        backup + ".manifest.json").readall())["consistency"]["binlog_snapshot"]["file"]
    _write(sandbox, 10)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    _write(sandbox, 10)
    assert _source_logs(sandbox).index(snapshot) >= 3
    result = run_cli("binlog", "stream", "--once")
    assert result.exit_code == 0, result.stderr
    assert f"starts at {snapshot}, where the oldest point-in-time base {backup}" \
        in result.stderr
    report = json.loads(run_cli("binlog", "status", "--json").stdout)
    assert report["oldest_file"] == snapshot and report["files"] == 2
    _assert_archived_as_the_source_has_them(sandbox, archive)


def test_a_new_archive_without_a_base_starts_at_the_current_file(sandbox, archive,
                                                                  monkeypatch):
    _write(sandbox, 10)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    current = _source_logs(sandbox)[-1]
    wrong = run_cli("binlog", "stream", "--once", "--from", "nosuch.000001")
    assert wrong.exit_code == 2 and "The source has no binlog nosuch.000001" in wrong.stderr
    result = run_cli("binlog", "stream", "--once")
    assert result.exit_code == 0 and f"current binlog {current}" in result.stderr
    assert json.loads(run_cli("binlog", "status", "--json").stdout)["oldest_file"] == current
    again = run_cli("binlog", "stream", "--once", "--from", current)
    assert again.exit_code == 2 and "--from starts a new archive" in again.stderr


def test_status_reads_the_index_in_as_many_requests_at_nine_files_as_at_five(
        sandbox, archive, monkeypatch):
    """Not a listing of the archive, which grows with it: the index, the records of the
    files begun since it was written, the blobs it must vouch for. An index a kill left
    behind (a file ended, the index not yet rewritten), or an older one put back, is read
    on through the records: status says what the listing says."""
    from azure.storage.blob import BlobClient

    start = _source_logs(sandbox)[-1]
    _rotate(sandbox, 4)
    assert run_cli("binlog", "stream", "--once", "--from", start).exit_code == 0
    requests = _count_requests(monkeypatch, BlobClient, ContainerClient)
    prefix = archive.binlog.prefix
    at_five, five = _status_as_listed(5, requests, prefix)
    assert at_five["ok"] and at_five["read_from"] == "index"
    assert not [r for r in five if r[0] == "list"] and ("get", "index.json") in five, five

    store = BackupStore.from_settings(archive, prefix="")
    behind = store.container.download_blob(f"{prefix}index.json").readall()
    _rotate(sandbox, 4)
    killed = subprocess.run([DRKIT, "binlog", "stream", "--once"], capture_output=True,
                            env={**os.environ, "DRKIT_FAILPOINT": "binlog.index:2"})
    assert killed.returncode == -signal.SIGKILL  # the first file ended, the index not rewritten
    _status_as_listed(5, requests, prefix)
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    at_nine, nine = _status_as_listed(9, requests, prefix)
    assert at_nine["newest_file"] == _source_logs(sandbox)[-1] and len(nine) == len(five)

    store.container.upload_blob(f"{prefix}index.json", behind, overwrite=True)
    gets = [name for kind, name in _status_as_listed(9, requests, prefix)[1]
            if kind == "get" and name not in ("index.json", "pruned.json", "gaps.json")]
    assert len(gets) == 5, gets  # the four files ended since, and the newest
    _tamper_with_the_index(store, prefix, archive)  # leaves one that is not drkit's
    assert _status_as_listed(9, requests, prefix, [UNREADABLE_INDEX])[0]["read_from"] == \
        "listing"
    assert run_cli("binlog", "stream", "--once").exit_code == 0  # writes it anew
    assert _status_as_listed(9, requests, prefix)[0]["read_from"] == "index"

    # Put back (or deleted) while a writer runs: no rival, the writer writes it anew.
    _rotate(sandbox, 1)
    writer = subprocess.Popen([DRKIT, "binlog", "stream", "--once"], stderr=subprocess.PIPE,
                              env={**os.environ, "DRKIT_FAILPOINT": "binlog.index:2:stop"})
    wait_until(lambda: process_stopped(writer.pid), "the writer stopped at the rotation")
    store.container.upload_blob(f"{prefix}index.json", behind, overwrite=True)
    writer.send_signal(signal.SIGCONT)
    assert writer.wait(timeout=60) == 0, writer.stderr.read() if writer.stderr else ""
    index = json.loads(store.container.download_blob(f"{prefix}index.json").readall())
    assert index["writing"] == _source_logs(sandbox)[-1] and len(index["files"]) == 9


def _status_as_listed(files: int, requests: list[tuple[str, str]], prefix: str,
                      index_problems: list[str] | None = None,
                      ) -> tuple[dict, list[tuple[str, str]]]:
    """``binlog status``, checked against what the listing (``binlog verify``) finds, and
    the requests it made in the archive. ``index_problems``: what verify finds wrong with
    the index (by default nothing: an index behind the records is no problem)."""
    requests.clear()
    status = run_cli("binlog", "status", "--json")
    made = _archive_requests(requests, prefix)
    report = json.loads(status.stdout)
    listed = json.loads(run_cli("binlog", "verify", "--json").stdout)
    assert status.exit_code == 0 and report["files"] == listed["files"] == files, report
    assert report["newest_event_at"] == listed["newest_event_at"]
    assert listed["index_problems"] == (index_problems or [])
    return report, made


def _tamper_with_the_index(store: BackupStore, prefix: str, settings) -> None:
    """An index that hides a file and misstates another: status would show what the
    archive does not hold. binlog verify and doctor compare it with the listing."""
    from drkit.health.binlog_checks import archive_checks

    index = json.loads(store.container.download_blob(f"{prefix}index.json").readall())
    hidden, changed = index["files"].pop(2)["file"], index["files"][1]
    changed["last_event_at"] = "2026-01-01T00:00:00+00:00"
    store.container.upload_blob(f"{prefix}index.json", json.dumps(index), overwrite=True)
    verified = run_cli("binlog", "verify")
    assert verified.exit_code == 0  # restores read the records: no break
    assert f"index: the index lacks {hidden}" in verified.stdout
    assert f"index: the index's entry for {changed['file']} is not" in verified.stdout
    (check,) = archive_checks(settings)
    assert check.status == "WARNING" and "binlog status reads the index" in check.detail
    # One drkit cannot read at all: status lists instead, and doctor says so no less.
    store.container.upload_blob(f"{prefix}index.json", b"{", overwrite=True)
    (check,) = archive_checks(settings)
    assert check.status == "WARNING" and "lists the whole archive instead" in check.detail


def test_a_record_written_before_summaries_were_metadata_is_read_by_a_get(
        sandbox, archive, monkeypatch):
    """The listing's readers (binlog verify, restores): a record without its summary in the
    metadata is read whole, and the next stream run rewrites it once."""
    from azure.storage.blob import BlobClient

    start = _source_logs(sandbox)[-1]
    _rotate(sandbox, 2)
    assert run_cli("binlog", "stream", "--once", "--from", start).exit_code == 0
    store = BackupStore.from_settings(archive, prefix="")
    legacy = f"{archive.binlog.prefix}{start}.json"
    store.container.upload_blob(legacy, store.container.download_blob(legacy).readall(),
                                overwrite=True)
    requests = _count_requests(monkeypatch, BlobClient, ContainerClient)
    assert json.loads(run_cli("binlog", "verify", "--json").stdout)["files"] == 3
    assert ("get", f"{start}.json") in _archive_requests(requests, archive.binlog.prefix)
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    requests.clear()
    assert json.loads(run_cli("binlog", "verify", "--json").stdout)["files"] == 3
    assert not [name for kind, name in _archive_requests(requests, archive.binlog.prefix)
                if kind == "get" and name.startswith(start.split(".")[0])]  # no record


def _rotate(sandbox, times: int) -> None:
    for _ in range(times):
        _write(sandbox, 5)
        dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")


def _count_requests(monkeypatch, blob_client, container_client) -> list[tuple[str, str]]:
    """Every GET, HEAD and listing drkit makes from now on: (kind, blob name or prefix)."""
    seen: list[tuple[str, str]] = []
    for cls, method, kind in ((blob_client, "download_blob", "get"),
                              (blob_client, "get_blob_properties", "head"),
                              (container_client, "list_blobs", "list")):
        original = getattr(cls, method)

        def counted(self, *args, _original=original, _kind=kind, **kwargs):
            name = kwargs.get("name_starts_with") or "" if _kind == "list" else self.blob_name
            seen.append((_kind, name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counted)
    return seen


def _archive_requests(seen: list[tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    """The requests in the archive, names relative to it."""
    return [(kind, name[len(prefix):]) for kind, name in seen if name.startswith(prefix)]


def test_an_archived_file_read_while_it_grows_reads_on_after_the_append(archive):
    """The SDK pins each range of a download to the first one's ETag; an append between two
    (the streamer's, while a standby or a restore reads the file) failed the read as "replaced".
    The bytes before an append do not change: the read goes on. Downloads of 512 bytes a range
    make a 2 KB blob take four."""
    store = BackupStore.from_settings(archive)
    small = ContainerClient.from_container_url(store.container.url,
                                               credential=store.container.credential,
                                               max_single_get_size=512, max_chunk_get_size=512)
    reader = BackupStore(small, store.prefix, store.account)
    name, first, appended = store.prefix + "grows.000001", os.urandom(2048), os.urandom(700)
    blob = store.container.get_blob_client(name)
    blob.stage_block("a", first)
    blob.commit_block_list([BlobBlock("a")])

    def read_across_an_append(read):
        chunks = read()
        came = next(chunks)
        blob.stage_block("b" + str(len(came)), appended)
        blob.commit_block_list([BlobBlock("a"), BlobBlock("b" + str(len(came)))])
        blob.commit_block_list([BlobBlock("a")])  # as it was: only the ETag moved
        return came + b"".join(chunks)

    with pytest.raises(ChecksumMismatchError):  # what the whole-blob read says, rightly
        read_across_an_append(lambda: reader.download(name))
    assert read_across_an_append(lambda: reader.download_appended(name, 0, 2048)) == first
    assert b"".join(reader.download_appended(name, 1000, 4000)) == first[1000:]
