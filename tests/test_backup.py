"""The backup against the sandbox: real mysqldump, MariaDB, Azurite and moto."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from drkit.aws.clients import boto_client
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import load_manifest
from drkit.errors import BackupExistsError, DumpFailedError, LockHeldError
from drkit.manifest import Manifest
from drkit.mysql import dump
from drkit.mysql.connection import option_file
from drkit.ops.backup import run_backup
from drkit.ops.lock import RunLock
from drkit.stream.dumpscan import DumpScanner
from drkit.stream.encryption import decrypted
from tests import dbtools
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def cli_env(sandbox, tmp_path, monkeypatch):
    """The CLI pointed at the sandbox, with this test's own prefix, locks, log and metrics."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BACKUP__LOG_FILE", str(tmp_path / "backup.log"))
    monkeypatch.setenv("DRKIT_ENVIRONMENT", prefix.strip("/"))
    return prefix


def blobs(store: BackupStore, prefix: str) -> list[str]:
    return sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))


def manifest_of(store: BackupStore, name: str) -> Manifest:
    """The backup's manifest, its digests opened with the identity (the sandbox seals them)."""
    return load_manifest(store, name, digests=True)


def download(store: BackupStore, name: str, path: Path) -> Path:
    """The backup's compressed stream (the sandbox encrypts: opened with its identity)."""
    data = store.container.download_blob(name).readall()
    if name.endswith(".age"):
        data = b"".join(decrypted(name, [data], store.keyring))
    path.write_bytes(data)
    return path


def rescan(sandbox, role: str, database: str) -> dict[str, tuple[int, str]]:
    """Dump ``database`` from a sandbox server and scan it as the backup scans."""
    client = dump.dump_client()
    scanner = DumpScanner()
    with option_file(dbtools.server(sandbox, role)) as options:
        process = dump.DumpProcess(client.command(options, [database]), options)
        for chunk in process.chunks():
            scanner.feed(chunk)
        assert process.wait() == 0
    return {f"{db}.{t}": (c.rows, c.digest) for (db, t), c in scanner.tables.items()}


# How the seed's shell pipeline decompresses a backup of each codec.
DECOMPRESS = {"gzip": "gunzip -c", "zstd": "zstd -dc"}


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_backup_restores_with_the_seeds_pipeline_and_matches_source(
        sandbox, store, cli_env, tmp_path, codec):
    decompress = DECOMPRESS[codec]
    result = run_cli("backup", "--json", "--compression", codec)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    name = summary["backup"]
    assert name.startswith(f"{cli_env}backup-") and name.endswith(
        ".sql.gz.age" if codec == "gzip" else ".sql.zst.age")
    assert blobs(store, cli_env) == [name, name + ".manifest.json"]

    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    archive = download(store, name, tmp_path / name.rsplit("/", 1)[1])
    # The demo's event keeps its named time zone; Flexible Server's tables need loading.
    dbtools.as_root(sandbox, "target", "CALL mysql.az_load_timezone()")
    dbtools.load_sql(sandbox, "target", f"{decompress} {archive}")

    source = dbtools.table_fingerprint(sandbox, "source", "shop")
    assert dbtools.table_fingerprint(sandbox, "target", "shop") == source
    assert dbtools.objects(sandbox, "target", "shop") == dbtools.objects(sandbox, "source", "shop")
    emoji = dbtools.query(sandbox, "target", "SELECT name FROM customers WHERE id = 3", "shop")
    assert emoji == [("😀 smile #3",)]
    blob_bytes = dbtools.query(sandbox, "target",
                               "SELECT HEX(LEFT(content, 9)) FROM attachments WHERE id = 1", "shop")
    assert blob_bytes == [("00FF1A0D0A27225C00",)]

    manifest = manifest_of(store, name)
    assert {t.lower(): e.rows for t, e in manifest.tables.items()} == {
        f"shop.{t}": rows for t, (rows, _) in source.items()}
    # The digests describe the data: a dump of the restored copy scans to the same values
    # (under names the target folds to lower case).
    assert {t.lower(): (e.rows, e.sha256) for t, e in manifest.tables.items()} == rescan(
        sandbox, "target", "shop")
    assert manifest.objects["triggers"] == ["shop.orders_round_amount"]
    assert manifest.compressed.size == store.container.get_blob_client(name) \
        .get_blob_properties().size == summary["compressed_bytes"]
    assert manifest.consistency["method"] == "single-transaction snapshot"
    assert manifest.consistency["binlog_after"]["file"].startswith("binlog.")
    metadata = store.container.get_blob_client(name).get_blob_properties().metadata
    assert metadata["sha256"] == manifest.compressed.sha256
    assert metadata["databases"] == "shop"


def test_gzip_backup_is_one_valid_multi_member_stream(sandbox, backup_settings, store, tmp_path):
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    result = run_backup(backup_settings)
    archive = download(store, result.name, tmp_path / "backup.sql.gz")
    sql = subprocess.run(["gunzip", "-c", str(archive)], capture_output=True, check=True).stdout
    assert hashlib.sha256(sql).hexdigest() == manifest_of(store, result.name).sql.sha256
    assert len(sql) == result.manifest.sql.size
    assert sql.rstrip().rsplit(b"\n", 1)[-1].startswith(b"-- Dump completed")


def _env_ref(monkeypatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    return f"env:{name}"


@pytest.mark.parametrize("override,failure", [
    ({"DRKIT_SOURCE__PASSWORD": ("TEST_PW", "wrong-password")},
     (11, "refused the login of user admin")),
    ({"DRKIT_SOURCE__PORT": "1"}, (10, "Cannot connect to the source server 127.0.0.1:1")),
    ({"DRKIT_SOURCE__DATABASES": '["shop", "nope"]'}, (12, "Database 'nope' does not exist")),
    ({"DRKIT_STORAGE__KEY": ("TEST_KEY", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")},
     (13, "Azure Storage refused the credentials for account bloberry01")),
    ({"DRKIT_STORAGE__CONTAINER": "no-such-container"},
     (14, "container no-such-container of storage account bloberry01 does not exist")),
])
def test_failures_give_their_message_and_code_and_leave_no_blob(
        store, cli_env, monkeypatch, override, failure):
    code, message = failure
    for name, value in override.items():
        if isinstance(value, tuple):
            value = _env_ref(monkeypatch, *value)
        monkeypatch.setenv(name, value)
    result = run_cli("backup")
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert blobs(store, cli_env) == []
    assert "wrong-password" not in result.stderr


def test_public_container_is_refused(sandbox, store, cli_env, monkeypatch):
    public = f"public-{uuid.uuid4().hex[:8]}"
    container = ContainerClient.from_container_url(
        store.container.url.rsplit("/", 1)[0] + "/" + public,
        credential=store.container.credential)
    container.create_container(public_access="container")
    monkeypatch.setenv("DRKIT_STORAGE__CONTAINER", public)
    result = run_cli("backup")
    assert result.exit_code == 15
    assert "allows public read access (container)" in result.stderr
    assert list(container.list_blobs()) == []


def _killing_chunks(monkeypatch, after_chunks: int = 1):
    original = dump.DumpProcess.chunks
    seen = {}

    def chunks(self, size=64 * 1024):
        for number, chunk in enumerate(original(self, 64 * 1024)):
            if number == after_chunks:
                os.kill(self.pid, signal.SIGKILL)
                seen["killed"] = self.pid
            yield chunk

    monkeypatch.setattr(dump.DumpProcess, "chunks", chunks)
    return seen


def test_dump_killed_midway_leaves_no_blob(store, cli_env, monkeypatch, tmp_path):
    seen = _killing_chunks(monkeypatch)
    result = run_cli("backup")
    assert seen.get("killed")
    assert result.exit_code == 20
    assert "mysqldump failed with exit code -9" in result.stderr
    assert "nothing was committed" in result.stderr
    assert blobs(store, cli_env) == []
    log = (tmp_path / "backup.log").read_text()
    assert "Backup FAILED" in log and "Backup finished" not in log


def test_dump_without_trailer_is_not_committed(store, cli_env, monkeypatch, tmp_path):
    # A client that stops early yet exits 0: only the missing trailer tells.
    fake = tmp_path / "mysqldump"
    real = dump.dump_client()
    fake.write_text(f"#!/bin/sh\n{real.path} \"$@\" | head -c 20000\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(dump, "dump_client", lambda: real.__class__(
        str(fake), real.flavour, real.version, real.supported))
    result = run_cli("backup")
    assert result.exit_code == 20
    assert "ended without mysqldump's completion trailer" in result.stderr
    assert blobs(store, cli_env) == []


def test_password_is_never_in_argv_environment_or_logs(sandbox, store, cli_env, monkeypatch,
                                                       tmp_path):
    password = sandbox.credential("rds_password")
    original = dump.DumpProcess.chunks
    observed = {"processes": 0, "option_file_modes": []}

    def chunks(self, size=1024 * 1024):
        for number, chunk in enumerate(original(self, size)):
            if number == 0:  # mysqldump is running now: look at every process
                for entry in Path("/proc").iterdir():
                    if not entry.name.isdigit():
                        continue
                    try:
                        argv = (entry / "cmdline").read_bytes()
                        environ = (entry / "environ").read_bytes()
                    except OSError:
                        continue
                    observed["processes"] += 1
                    assert password.encode() not in argv, argv
                    assert password.encode() not in environ
                    if int(entry.name) == self.pid:
                        option = next(a for a in argv.split(b"\0")
                                      if a.startswith(b"--defaults-file="))
                        path = Path(option.split(b"=", 1)[1].decode())
                        observed["option_file"] = path
                        observed["option_file_modes"].append(path.stat().st_mode & 0o777)
            yield chunk

    monkeypatch.setattr(dump.DumpProcess, "chunks", chunks)
    result = run_cli("backup", "--json")
    assert result.exit_code == 0, result.stderr
    assert observed["processes"] > 1
    assert observed["option_file_modes"] == [0o600]
    assert not observed["option_file"].exists()  # removed afterwards
    for text in (result.stdout, result.stderr, (tmp_path / "backup.log").read_text()):
        assert password not in text


def test_concurrent_run_is_refused_and_a_killed_holder_does_not_block(
        sandbox, store, cli_env, tmp_path):
    lock_path = tmp_path / "state" / "locks" / "backup-shop.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from drkit.ops.lock import RunLock\n"
        f"RunLock(Path({str(lock_path)!r}), 'backup').acquire(); print('held', flush=True)\n"
        "time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run_cli("backup")
        assert refused.exit_code == 23
        assert f"Another backup of database shop is running (pid {holder.pid} on" in (
            refused.stderr)
        assert blobs(store, cli_env) == []
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: its lock file is still there, and ignored.
    assert lock_path.exists()
    recovered = run_cli("backup")
    assert recovered.exit_code == 0, recovered.stderr


def test_lock_is_exclusive_within_a_process(tmp_path):
    path = tmp_path / "x.lock"
    with RunLock(path, "backup of database x"), pytest.raises(
            LockHeldError, match="Another backup of database x is running"):
        RunLock(path, "backup of database x").acquire()
    RunLock(path, "backup of database x").acquire().release()


def test_existing_blob_is_never_overwritten(store):
    name = f"t-{uuid.uuid4().hex[:8]}/backup-20240101-000000.sql.gz"
    store.container.upload_blob(name, b"the original")
    uploader = store.uploader(name, block_size=1024)
    uploader.write(b"x" * 5000)
    with pytest.raises(BackupExistsError, match="already exists"):
        uploader.commit({}, "application/gzip")
    assert store.container.download_blob(name).readall() == b"the original"


def test_existing_blob_name_stops_the_run_before_dumping(backup_settings, store, monkeypatch):
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    backup_settings.storage.prefix = prefix
    monkeypatch.setattr("drkit.ops.claim.backup_name", lambda p, s, c: f"{prefix}taken.sql.gz")
    taken = f"{prefix}taken.sql.gz.age"  # the sandbox encrypts
    store.container.upload_blob(taken, b"the original")
    started = []
    monkeypatch.setattr(dump, "DumpProcess", lambda *a: started.append(a))
    with pytest.raises(BackupExistsError):
        run_backup(backup_settings)
    assert started == []
    assert store.container.download_blob(taken).readall() == b"the original"


def _metric_sum(settings, name: str, environment: str) -> float:
    cloudwatch = boto_client(settings.aws, "cloudwatch")
    now = time.time()
    stats = cloudwatch.get_metric_statistics(
        Namespace="drkit/Backup", MetricName=name, StartTime=now - 600, EndTime=now + 60,
        Period=60, Statistics=["Sum"],
        Dimensions=[{"Name": "Database", "Value": "shop"},
                    {"Name": "Environment", "Value": environment}])
    return sum(p["Sum"] for p in stats["Datapoints"])


def test_metrics_are_published_for_success_and_failure(settings, cli_env, monkeypatch):
    environment = cli_env.strip("/")
    assert run_cli("backup").exit_code == 0
    assert _metric_sum(settings, "BackupSuccess", environment) == 1
    assert _metric_sum(settings, "BackupBytes", environment) > 0
    assert _metric_sum(settings, "BackupDurationSeconds", environment) > 0

    _killing_chunks(monkeypatch)
    time.sleep(1.01)  # blob names have one-second resolution; the same name would be refused
    assert run_cli("backup").exit_code == 20
    assert _metric_sum(settings, "BackupFailure", environment) == 1
    assert _metric_sum(settings, "BackupSuccess", environment) == 1


def test_local_copy_is_kept_and_old_copies_pruned(backup_settings, tmp_path):
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    copies = tmp_path / "copies"
    copies.mkdir()
    old = copies / "backup-20200101-000000.sql.gz"
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 25 * 3600,) * 2)
    recent = copies / "backup-20200102-000000.sql.gz"
    recent.write_bytes(b"recent")
    backup_settings.backup.local_copy_dir = copies
    result = run_backup(backup_settings)
    assert result.local_copy and result.local_copy.stat().st_size == result.manifest.compressed.size
    assert not old.exists() and recent.exists()
    assert not list(copies.glob("*.partial"))


def test_failed_run_leaves_no_local_copy(backup_settings, tmp_path, monkeypatch):
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    backup_settings.backup.local_copy_dir = tmp_path / "copies"
    _killing_chunks(monkeypatch)
    with pytest.raises(DumpFailedError):
        run_backup(backup_settings)
    assert list((tmp_path / "copies").iterdir()) == []


def test_several_databases_in_one_backup(sandbox, backup_settings):
    dbtools.query(sandbox, "source", "CREATE DATABASE IF NOT EXISTS crm")
    dbtools.query(sandbox, "source", "CREATE TABLE IF NOT EXISTS crm.empty_table (id INT)")
    dbtools.query(sandbox, "source", "CREATE TABLE IF NOT EXISTS crm.notes (id INT PRIMARY KEY, "
                  "body TEXT) ENGINE=MyISAM")
    dbtools.query(sandbox, "source", "REPLACE INTO crm.notes VALUES (1, 'a),(b'), (2, 'c''d')")
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    result = run_backup(backup_settings, databases=["shop", "crm"])
    tables = result.manifest.tables
    assert tables["crm.empty_table"].rows == 0
    assert tables["crm.notes"].rows == 2 and tables["crm.notes"].engine == "MyISAM"
    assert tables["shop.orders"].rows > 0
    assert result.manifest.consistency["non_transactional_tables"] == ["crm.notes"]
    assert "not consistent" in result.manifest.consistency["method"]


def test_cron_output_is_json_lines_and_the_blob_name(cli_env):
    result = run_cli("backup")
    assert result.exit_code == 0
    assert result.stdout.strip().startswith(f"{cli_env}backup-")
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events][0] == "backup.start"
    assert events[-1]["event"] == "backup.finished" and events[-1]["ok"] is True
    assert [e["step"] for e in events if e["event"] == "backup.step"] == [1, 2, 3, 4]


def test_a_password_with_quotes_and_backslashes_reaches_mysqldump(sandbox, backup_settings,
                                                                 monkeypatch):
    password = 'q"uo\'te\\back#semi;colon $x'
    dbtools.query(sandbox, "source", "CREATE OR REPLACE USER 'odd'@'%%' IDENTIFIED BY %s",
                  args=(password,))
    dbtools.query(sandbox, "source", "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, "
                  "PROCESS, BINLOG MONITOR ON *.* TO 'odd'@'%'")
    monkeypatch.setenv("ODD_PASSWORD", password)
    backup_settings.source.user = "odd"
    backup_settings.source.password = "env:ODD_PASSWORD"
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    result = run_backup(backup_settings)
    assert result.manifest.tables["shop.orders"].rows > 0
    assert result.manifest.objects["routines"]  # the user could see the routines it dumped


def test_two_runs_in_the_same_second_get_two_names_and_two_whole_backups(
        sandbox, backup_settings, monkeypatch):
    """Two databases backed up by two runs started together (cron): before, both took one
    name and one run's blob held the other's blocks; now the second run takes the next
    second's name, and each blob is whole and its own."""
    import threading
    from datetime import UTC, datetime

    import drkit.ops.backup as backup_module
    from drkit.azure.catalog import Catalog
    from drkit.ops.verify import verify_backup

    dbtools.query(sandbox, "source", "CREATE DATABASE IF NOT EXISTS inv")
    dbtools.query(sandbox, "source", "CREATE TABLE IF NOT EXISTS inv.items "
                  "(id INT PRIMARY KEY, name VARCHAR(40))")
    dbtools.query(sandbox, "source", "REPLACE INTO inv.items VALUES (1, 'bolt'), (2, 'nut')")
    frozen = datetime(2031, 5, 4, 3, 0, 0, tzinfo=UTC)

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(backup_module, "datetime", FrozenClock)
    backup_settings.backup.block_size_mib = 1
    backup_settings.storage.prefix = f"t-{uuid.uuid4().hex[:8]}/"  # 2031: newest, isolated
    store = BackupStore.from_settings(backup_settings)
    results, errors = {}, []

    def back_up(database: str) -> None:
        try:
            results[database] = run_backup(backup_settings, databases=[database])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=back_up, args=(db,)) for db in ("shop", "inv")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = sorted(r.name for r in results.values())
    assert [n.rsplit("/", 1)[1] for n in names] == ["backup-20310504-030000.sql.gz.age",
                                                     "backup-20310504-030001.sql.gz.age"]
    catalog = Catalog(store)
    for database, result in results.items():
        assert result.manifest.databases == [database]
        verified = verify_backup(store, catalog.select(result.name))
        assert verified.outcome == "ok"
        assert store.container.get_blob_client(result.name).get_blob_properties().size == \
            result.manifest.compressed.size
    dbtools.query(sandbox, "source", "DROP DATABASE inv")


def test_a_commit_whose_answer_was_lost_is_ours_when_the_blob_holds_our_bytes(store):
    """The SDK retries a commit whose response was lost; the retry meets 409. That is this
    run's success when the blob holds its bytes, and a collision otherwise."""
    name = f"t-{uuid.uuid4().hex[:8]}/lost.sql.gz"
    uploader = store.uploader(name, block_size=1024)
    uploader.write(b"y" * 5000)
    metadata = {"sha256": uploader.sha256}
    uploader.commit(metadata, "application/gzip")
    uploader.commit(metadata, "application/gzip")  # the retried request: 409, yet ours
    assert store.container.download_blob(name).readall() == b"y" * 5000
    other = store.uploader(name, block_size=1024)
    other.write(b"z" * 10)
    with pytest.raises(BackupExistsError, match="is not this run's"):
        other.commit({"sha256": other.sha256}, "application/gzip")


def test_tables_changed_while_the_dump_runs_are_recorded(sandbox, tmp_path, monkeypatch):
    """A table created once mysqldump has listed the tables (at its first MiB): the backup
    does not hold it, and its manifest says so instead of looking complete."""
    import contextlib

    from drkit.config import load_settings
    from drkit.console import Environment, Progress

    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    quiet = run_backup(settings)
    assert quiet.manifest.consistency["tables_changed_during_dump"] == []
    # No table DDL on the server while it ran: the shapes were not read a second time.
    assert quiet.manifest.consistency["tables_checked_by"] == "table DDL counters unchanged"

    class CreatesATableDuringTheDump(Environment):
        @contextlib.contextmanager
        def progress(self, description, total=None):
            created = []

            def sink(_done: int) -> None:
                if not created:
                    dbtools.query(sandbox, "source", "CREATE TABLE shop.zz_new (id INT)")
                    created.append(True)

            yield Progress(sink)

    try:
        result = run_backup(settings, CreatesATableDuringTheDump())
    finally:
        dbtools.query(sandbox, "source", "DROP TABLE IF EXISTS shop.zz_new")
    assert result.manifest.consistency["tables_changed_during_dump"] == ["shop.zz_new"]
    assert result.manifest.consistency["tables_checked_by"] == "definitions read again"
    assert "shop.zz_new" not in result.manifest.tables


class _Cursor:
    """A cursor answering as MySQL 8.4 does (8.4 manual): SHOW MASTER STATUS is gone."""

    def __init__(self, master_status_gone: bool = True, denied: bool = False) -> None:
        self.gone, self.denied, self.row = master_status_gone, denied, None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def execute(self, sql: str) -> None:
        import pymysql

        if self.denied:
            raise pymysql.err.OperationalError(1227, "Access denied; you need (at least one "
                                                     "of) the REPLICATION CLIENT privilege(s)")
        if sql == "SHOW MASTER STATUS" and self.gone:
            raise pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")
        self.row = ("binlog.000042", 4711) if "STATUS" in sql else ("uuid:1-9",)

    def fetchone(self):
        return self.row


class _Connection:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs

    def cursor(self) -> _Cursor:
        return _Cursor(**self.kwargs)


def test_mysql_84_binlog_coordinates_and_a_missing_one_recorded_as_such():
    from drkit.mysql.inventory import binlog_position

    assert binlog_position(_Connection(), "mysql") == {
        "file": "binlog.000042", "position": 4711, "gtid": "uuid:1-9"}
    missing = binlog_position(_Connection(denied=True), "mysql")
    assert missing["file"] is None and "REPLICATION CLIENT" in missing["unavailable"]
