"""The binlog archive on the sandbox: byte for byte as the source has it, resumed after a
kill without loss or duplicate, and a purged binlog reported as a gap, never bridged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from azure.storage.blob import BlobBlock

from drkit.azure.blobstore import BackupStore
from drkit.binlog.archived import archived_binlog
from drkit.binlog.records import Archive
from drkit.config import load_settings
from tests import dbtools
from tests.helpers import assert_no_readable_binlog, point_cli_at, run_cli, wait_until

FDE_FLAGS = 21  # the format description event's flags: "in use" while the server writes it
PROBE = "shop.binlog_probe"


@pytest.fixture
def archive(sandbox, tmp_path, monkeypatch):
    """drkit pointed at a binlog archive of this test's own."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BINLOG__PREFIX", f"{prefix}binlogs/")
    monkeypatch.setenv("DRKIT_BINLOG__FLUSH_SECONDS", "0.5")
    dbtools.query(sandbox, "source", f"CREATE TABLE IF NOT EXISTS {PROBE} (id INT "
                  "AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200), at DATETIME(6))")
    return load_settings()


def _write(sandbox, rows: int) -> None:
    dbtools.query(sandbox, "source", f"INSERT INTO {PROBE} (note, at) SELECT "
                  f"REPEAT('x', 150), NOW(6) FROM seq_1_to_{rows}", database="shop")


def _archived_bytes(settings) -> int:
    """How many bytes the archive's blobs hold: it grows with each flush a streamer commits."""
    store = BackupStore.from_settings(settings, prefix="")
    return sum(blob.size for blob in store.container.list_blobs(
        name_starts_with=settings.binlog.prefix))


def _wait_for_a_flush(settings, streamer: subprocess.Popen) -> None:
    """Until the running ``streamer`` commits a flush: the archive grows."""
    before = _archived_bytes(settings)

    def grown() -> bool:
        assert streamer.poll() is None, "the streamer follows the log until stopped"
        return _archived_bytes(settings) > before

    wait_until(grown, "the streamer's next flush")


def _source_position(sandbox) -> tuple[str, int]:
    file, position = dbtools.as_root(sandbox, "source", "SHOW MASTER STATUS")[0][:2]
    return file, position


def _source_logs(sandbox) -> list[str]:
    return [row[0] for row in dbtools.as_root(sandbox, "source", "SHOW BINARY LOGS")]


def _assert_archived_as_the_source_has_them(sandbox, settings, active: bool = True) -> int:
    """Every binlog the source still has equals its archived copy read back with the
    identity (the active one up to the in-use flag), while no archived blob holds a byte of
    readable binlog (encryption is on in the sandbox); returns how many were compared."""
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    records = {f.file: f for f in archive.files()}
    logs = _source_logs(sandbox)
    first = json.loads(run_cli("binlog", "status", "--json").stdout)["oldest_file"]
    logs = logs[logs.index(first):] if first in logs else logs  # where the archive begins
    for name in logs:
        stored = archive.store.read(settings.binlog.prefix + name)
        assert_no_readable_binlog(name, stored)
        archived = b"".join(archived_binlog(archive, records[name]))
        source = (sandbox.directory / "source" / "data" / name).read_bytes()
        if name == logs[-1]:
            if not active:
                continue
            source = source[:len(archived)]
            archived, source = bytearray(archived), bytearray(source)
            archived[FDE_FLAGS] = source[FDE_FLAGS] = 0
        assert archived == source, f"{name}: {len(archived)} archived, {len(source)} on source"
    return len(logs)


def test_once_archives_every_binlog_byte_for_byte_and_again_adds_nothing(sandbox, archive):
    # A log of this test's own to start from: the session's first log holds the earlier
    # tests' writes (test_big_row's 40 MB rows: a minute to encrypt and compare, and a
    # ciphertext that long holds any four given bytes one time in fifty).
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    start = _source_logs(sandbox)[-1]
    _write(sandbox, 200)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    _write(sandbox, 50)
    first = run_cli("binlog", "stream", "--once", "--from", start, "--json")
    assert first.exit_code == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)
    # Its events (not 250: that counted the earlier tests'), every byte compared below.
    assert result["events"] > 0 and result["gaps"] == []
    assert _assert_archived_as_the_source_has_them(sandbox, archive) >= 2

    again = json.loads(run_cli("binlog", "stream", "--once", "--json").stdout)
    assert again["events"] == 0 and again["archived_bytes"] == 0

    status = run_cli("binlog", "status", "--json")
    assert status.exit_code == 0
    report = json.loads(status.stdout)
    assert report["ok"] and report["newest_file"] == _source_logs(sandbox)[-1]
    assert report["source_ahead_bytes"] == 0 and 0 <= report["lag_seconds"] < 60


@contextmanager
def _writes(sandbox) -> Iterator[None]:
    """The source written to all along."""
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            _write(sandbox, 20)
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_killed_midway_and_restarted_nothing_is_lost_or_archived_twice(sandbox, archive):
    """SIGKILL while following the log under writes: the restart resumes from what Azure
    holds (a block committed just before the kill included), so every file is identical."""
    with _writes(sandbox):
        streamer = subprocess.Popen([str(Path(sys.executable).parent / "drkit"), "binlog",
                                     "stream"], env=os.environ, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        # Killed while it follows the log: after it committed a flush, then another.
        _wait_for_a_flush(archive, streamer)
        _wait_for_a_flush(archive, streamer)
        streamer.send_signal(signal.SIGKILL)
        streamer.wait(timeout=10)
        killed_at = _source_position(sandbox)
        wait_until(lambda: _source_position(sandbox) != killed_at,
                   "more writes while nothing archives")
        dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    resumed = run_cli("binlog", "stream", "--once", "--json")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["events"] > 0
    _assert_archived_as_the_source_has_them(sandbox, archive)


def test_a_binlog_purged_before_it_was_archived_is_a_gap_never_bridged(sandbox, archive):
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    _write(sandbox, 10)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    _write(sandbox, 10)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    archived = _source_logs(sandbox)[-3]  # where the archive ended
    dbtools.as_root(sandbox, "source", f"PURGE BINARY LOGS TO '{_source_logs(sandbox)[-1]}'")
    oldest = _source_logs(sandbox)[0]  # a log another reader still uses stays
    assert oldest != archived

    result = run_cli("binlog", "stream", "--once", "--json")
    assert result.exit_code == 49
    gap = json.loads(result.stdout)["gaps"][0]
    assert gap["after_file"] == archived
    assert gap["resumed_file"] == oldest and "purged before it was archived" in gap["missing"]

    status = run_cli("binlog", "status")
    assert status.exit_code == 49 and "GAP after" in status.stdout
    doctor = run_cli("doctor", "--json")
    check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "binlog archive")
    assert check["status"] == "CRITICAL" and "gap" in check["detail"]
    # Recorded once: the next run goes on from the newest file without a new gap.
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    assert len(json.loads(run_cli("binlog", "status", "--json").stdout)["gaps"]) == 1
    # A verified full backup after it (exact coordinates) is where recovery starts now.
    backup = json.loads(run_cli("backup", "--json").stdout)["backup"]
    assert run_cli("verify", backup).exit_code == 0
    status = run_cli("binlog", "status", "--json")
    assert status.exit_code == 0
    assert json.loads(status.stdout)["gaps"][0]["superseded_by"] == backup


def test_a_backup_under_writes_records_its_snapshots_exact_coordinates(sandbox, archive):
    """MariaDB gives mysqldump the coordinates inside its consistent snapshot, without a
    global lock: exact although the position moved during the dump. (A fresh binlog: in
    one holding an event larger than the server reads back, as the 40 MB row test leaves,
    drkit does not ask, because MariaDB's mysqldump then crashes.)"""
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            _write(sandbox, 50)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = run_cli("backup", "--json")
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.stdout + result.stderr
    store = BackupStore.from_settings(archive)
    name = json.loads(result.stdout)["backup"]
    consistency = json.loads(store.container.download_blob(
        name + ".manifest.json").readall())["consistency"]
    assert consistency["binlog_exact"] is True
    assert consistency["binlog_method"].startswith("snapshot coordinates")
    before, snapshot, after = (consistency[k] for k in ("binlog_before", "binlog_snapshot",
                                                        "binlog_after"))
    assert before != after  # written to during the dump
    assert (before["file"], before["position"]) <= (snapshot["file"], snapshot["position"]) \
        <= (after["file"], after["position"])
    assert snapshot["gtid"]


def test_prune_drops_archived_binlogs_only_before_the_oldest_kept_base(sandbox, archive):
    """What a kept backup's point-in-time restores need stays: every file from its snapshot
    on. Files wholly before it go with the backups that needed them."""
    earlier = _source_logs(sandbox)[-1]
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    first = json.loads(run_cli("backup", "--json").stdout)["backup"]
    assert run_cli("verify", first).exit_code == 0
    _write(sandbox, 10)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    _write(sandbox, 10)
    assert run_cli("binlog", "stream", "--once", "--from", earlier).exit_code == 0
    store = BackupStore.from_settings(archive)
    snapshot = json.loads(store.container.download_blob(
        first + ".manifest.json").readall())["consistency"]["binlog_snapshot"]["file"]
    names = [b.name for b in store.container.list_blobs(name_starts_with=archive.binlog.prefix)]
    older = [n for n in names if n.rsplit("/", 1)[1].split(".json")[0] < snapshot]
    assert older, "the archive starts (--from) before the backup's binlog"

    dry = json.loads(run_cli("prune", "--older-than", "1d", "--json").stdout)
    assert sorted(dry["binlogs"]) == sorted(older)  # the backup stays: only what precedes it
    assert run_cli("prune", "--older-than", "1d", "--yes").exit_code == 0
    left = {b.name for b in store.container.list_blobs(name_starts_with=archive.binlog.prefix)}
    mark = f"{archive.binlog.prefix}pruned.json"  # written first: the index still has them
    assert not left & set(older) and left == set(names) - set(older) | {mark}
    status = run_cli("binlog", "status", "--json")
    assert status.exit_code == 0  # what remains is whole, no gap
    report = json.loads(status.stdout)
    assert report["read_from"] == "index" and report["oldest_file"] == snapshot
    assert report["files"] == len([n for n in left if n[-1].isdigit()])  # the blobs


def test_doctor_checks_what_the_source_must_give_the_archive(sandbox, archive, monkeypatch):
    """On RDS binlogs go as soon as no replica needs them (retention NULL): the doctor says
    so and prints the call that fixes it; the sandbox's source has RDS's procedures."""
    monkeypatch.setenv("DRKIT_BINLOG__ENABLED", "true")
    monkeypatch.setenv("DRKIT_BINLOG__HEARTBEAT", "true")

    def checks() -> dict[str, dict]:
        result = run_cli("doctor", "--json")
        return {c["name"]: c for c in json.loads(result.stdout)["checks"]}

    try:
        found = checks()
        assert found["binary log"]["status"] == "OK"
        assert found["binlog privileges"]["status"] == "OK"
        assert found["binlog retention"]["status"] == "CRITICAL"
        assert "rds_set_configuration('binlog retention hours'" in found[
            "binlog retention"]["fix"]
        assert found["binlog archive"]["status"] == "CRITICAL"  # enabled, still empty
        dbtools.query(sandbox, "source",
                      "CALL mysql.rds_set_configuration('binlog retention hours', 720)")
        assert run_cli("binlog", "stream", "--once").exit_code == 0
        found = checks()
        assert found["binlog retention"]["status"] == "OK"
        assert found["binlog archive"]["status"] == "OK"
        assert found["binlog replayable"]["status"] == "OK"
        dbtools.as_root(sandbox, "source", "SET GLOBAL binlog_row_image = 'MINIMAL'")
        found = checks()["binlog replayable"]
        assert found["status"] == "CRITICAL" and "binlog_row_image = FULL" in found["fix"]
    finally:
        dbtools.as_root(sandbox, "source", "UPDATE mysql.rds_configuration SET value = NULL")
        dbtools.as_root(sandbox, "source", "SET GLOBAL binlog_row_image = 'FULL'")
    grants = json.loads(run_cli("doctor", "--print-policy", "--json").stdout)["mysql_source_grants"]
    assert any("REPLICATION SLAVE, REPLICATION CLIENT" in g for g in grants)
    assert any("drkit_heartbeat.*" in g for g in grants)


def test_sigterm_commits_what_was_read_and_the_lag_reaches_cloudwatch(sandbox, archive):
    """systemd stops the follower with SIGTERM: it commits what it read before it exits
    (143), so the archive holds everything, and never a block twice, wherever the signal
    lands (a flush every 0.1 s under writes: some signals arrive inside one); the lag
    metric is published for the alarm."""
    from drkit.aws.clients import boto_client

    for pause in (0.5, 1.3, 2.1):
        stop = threading.Event()

        def writer(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                _write(sandbox, 200)

        thread = threading.Thread(target=writer)
        streamer = subprocess.Popen(
            [str(Path(sys.executable).parent / "drkit"), "binlog", "stream"],
            env={**os.environ, "DRKIT_BINLOG__FLUSH_SECONDS": "0.1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        thread.start()
        _wait_for_a_flush(archive, streamer)  # it follows the log: past its start
        # Time passes on purpose: each round's signal lands elsewhere in the flush cycle;
        # the outcome must not depend on where.
        time.sleep(pause)
        streamer.send_signal(signal.SIGTERM)
        stop.set()
        thread.join()
        assert streamer.wait(timeout=30) == 143
        assert run_cli("binlog", "stream", "--once").exit_code == 0  # what came after
        _assert_archived_as_the_source_has_them(sandbox, archive)
    cloudwatch = boto_client(archive.aws, "cloudwatch")
    assert cloudwatch.list_metrics(Namespace=archive.metrics.namespace,
                                   MetricName="BinlogArchiveLagSeconds")["Metrics"]


@pytest.mark.parametrize("rewrite", ["put", "blocks"])
def test_a_flush_azure_refuses_fails_the_run(sandbox, archive, rewrite):
    """The archive's blob was rewritten by something else with the same bytes: in one Put
    Blob (no block list), or in blocks of its own as upload_blob does above 64 MiB (a block
    list whose sizes add up to the record's). The next run refuses the blob and fails,
    never "no new events to archive" nor events appended to a blob drkit no longer
    vouches for. (The second shape once passed unseen when the sigterm test before this one
    had written the source's binlog past 64 MiB.)"""
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    store = BackupStore.from_settings(archive, prefix="")
    blob = store.container.get_blob_client(archive.binlog.prefix + _source_logs(sandbox)[-1])
    data = blob.download_blob().readall()
    if rewrite == "put":
        blob.upload_blob(data, overwrite=True)  # the same bytes, without its blocks
    else:
        step, ids = 4 * 1024 * 1024, []
        for start in range(0, len(data), step):
            ids.append(BlobBlock(f"other-{start // step:011d}"))  # drkit's ids' length
            blob.stage_block(ids[-1].id, data[start:start + step])
        blob.commit_block_list(ids)
    assert len(blob.download_blob().readall()) == len(data)
    _write(sandbox, 10)
    result = run_cli("binlog", "stream", "--once", "--json")
    assert result.exit_code == 48, result.stdout
    assert "was rewritten by something other than drkit" in result.stderr
    assert blob.get_blob_properties().size == len(data)  # nothing appended to it


def test_storage_down_for_a_while_fails_clearly_and_the_next_run_catches_up(sandbox, archive,
                                                                           monkeypatch):
    """Azurite stopped: the run fails with the storage's own exit code and keeps nothing
    half-written; started again, the next run archives everything written meanwhile."""
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    sandbox.stop_service("azurite")
    monkeypatch.setenv("DRKIT_STORAGE__RETRIES", "0")  # an outage fails at once: retries wait
    try:
        _write(sandbox, 100)
        down = run_cli("binlog", "stream", "--once")
        assert down.exit_code not in (0, 1), down.stdout + down.stderr  # a storage error
        assert "internal error" not in down.stderr
    finally:
        sandbox.up()
    _write(sandbox, 100)
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    _assert_archived_as_the_source_has_them(sandbox, archive)
