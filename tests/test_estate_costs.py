"""Costs that grow with the estate: one catalog listing per command, and a backup that asks
the server about its tables in one query rather than one per table (issue 23)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient

from drkit.mysql import dump, inventory
from drkit.mysql.connection import connect, option_file, source_server
from tests import dbtools
from tests.helpers import point_cli_at, run_cli, wait_until


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The prefixes drkit lists, one per List Blobs (however many pages each takes)."""
    prefixes: list[str] = []
    real = ContainerClient.list_blobs

    def counted(self, name_starts_with=None, *args, **kwargs):
        prefixes.append(name_starts_with or "")
        return real(self, name_starts_with, *args, **kwargs)

    monkeypatch.setattr(ContainerClient, "list_blobs", counted)
    yield prefixes


def _backups(store, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}backup-2020010{day}-030000.sql.gz" for day in range(1, count + 1)]
    for name in names:
        store.container.upload_blob(name, b"x", metadata={"databases": "shop"})
        store.container.upload_blob(name + ".manifest.json", b"{}")
    return names


def test_prune_lists_the_catalog_once(sandbox, store, tmp_path, monkeypatch, listings):
    """Before: the dry run listed the prefix three times (backups, orphaned manifests,
    earlier versions) and --yes four; at 5,000 backups each listing is seconds. And it
    read every backup's manifest looking for one with exact binlog coordinates (none has
    them here, as with binlog off: 5,000 GETs, 62 s): the archive is listed first, and
    with nothing in it to delete no manifest is read."""
    from drkit.config import load_settings

    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    archive = load_settings().binlog.prefix
    names = _backups(store, prefix, 3)
    orphan = f"{prefix}backup-20191231-030000.sql.gz.manifest.json"
    store.container.upload_blob(orphan, b"{}")
    listings.clear()
    downloads = _counted_downloads(monkeypatch)

    dry = run_cli("prune", "--older-than", "30d", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["delete"] == [orphan]  # the orphan came from that listing
    assert listings == [prefix, archive]
    assert [name for name in downloads if name != orphan] == []  # no backup's manifest

    listings.clear()
    done = run_cli("prune", "--older-than", "30d", "--yes")
    assert done.exit_code == 0, done.stderr
    assert listings == [prefix, archive]  # Azurite has no versioning: nothing more listed
    left = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))
    assert left == sorted([*names, *(n + ".manifest.json" for n in names)])


def _counted_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The blobs drkit downloads from here on."""
    names: list[str] = []
    real = ContainerClient.download_blob

    def counted(self, blob, *args, **kwargs):
        names.append(getattr(blob, "name", blob))
        return real(self, blob, *args, **kwargs)

    monkeypatch.setattr(ContainerClient, "download_blob", counted)
    return names


def _show_create_tables(sandbox) -> int:
    rows = dbtools.as_root(sandbox, "source", "SHOW GLOBAL STATUS LIKE 'Com_show_create_table'")
    return int(rows[0][1])


def test_a_backup_named_is_looked_up_without_listing(sandbox, store, tmp_path, monkeypatch,
                                                    listings):
    """A drill, failover or point-in-time restore passes the name it chose on to the
    restore, which listed the whole catalog again to find it."""
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import Catalog

    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    names = _backups(store, prefix, 2)
    catalog = Catalog(BackupStore(store.container, prefix, store.account))
    listed = {e.name: e for e in catalog.entries()}
    catalog.record_verification(listed[names[0]], "ok")
    listed = {e.name: e for e in catalog.entries()}
    listings.clear()
    for name in names:
        assert catalog.select(name) == listed[name]
        assert catalog.select(name.removeprefix(prefix)) == listed[name]
    assert listings == []
    assert catalog.select(names[0]).verified == "ok"


def test_a_backup_and_a_drill_of_latest_cost_what_the_estate_does_not_change(
        sandbox, arm, tmp_path, monkeypatch, listings):
    """The backup: before, SHOW CREATE TABLE for every table before and again after the
    dump (3 per table with mysqldump's own; 1.5x mysqldump at 5,000 tables); now only
    mysqldump's. The drill of latest: before, it listed the catalog twice."""
    from drkit.config import load_settings
    from drkit.ops.backup import run_backup
    from drkit.ops.drill import run_drill

    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    before = _show_create_tables(sandbox)
    with option_file(source_server(settings)) as options:  # mysqldump alone, as drkit runs it
        subprocess.run(dump.dump_client().command(options, settings.source.databases),
                       stdout=subprocess.DEVNULL, check=True, pass_fds=(options.fd,))
    mysqldumps = _show_create_tables(sandbox) - before
    result = run_backup(settings)
    assert len(result.manifest.tables) >= 3
    assert _show_create_tables(sandbox) - before - mysqldumps == mysqldumps
    assert result.manifest.consistency["tables_changed_during_dump"] == []

    listings.clear()
    drill = run_drill(settings)
    assert drill.backup == result.name
    assert listings.count(prefix) == 1


def test_table_shapes_change_with_ddl_and_not_with_writes(sandbox):
    """The check keeps SHOW CREATE TABLE's meaning: an ALTER (a column, an index,
    a foreign key) or a new table changes it; rows written (and the AUTO_INCREMENT they
    move) do not. The server's table DDL counters, which spare the read after the dump,
    move with every such DDL, also one a prepared statement or a stored procedure runs."""
    database = f"shapes_{uuid.uuid4().hex[:6]}"
    source = dbtools.server(sandbox, "source")
    with contextlib.closing(connect(source)) as connection:
        def ddl(*statements: str) -> None:
            """``statements`` in one session of their own."""
            counts = inventory.table_ddl_counts(connection)
            with contextlib.closing(sandbox.services["source"].root_connection()) as root, \
                    root.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            assert inventory.table_ddl_counts(connection) != counts, statements

        dbtools.as_root(sandbox, "source", f"CREATE DATABASE {database}")
        try:
            for table in ("a", "b"):
                ddl(f"CREATE TABLE {database}.{table} "
                    "(id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
            ddl(f"CREATE TABLE {database}.d (id INT, a_id INT, KEY k (a_id))")
            dbtools.as_root(sandbox, "source", f"CREATE VIEW {database}.v AS SELECT id FROM "
                            f"{database}.a")
            first = inventory.table_shapes(source, [database])
            assert sorted(first) == [f"{database}.{t}" for t in "abd"]
            counts = inventory.table_ddl_counts(connection)
            dbtools.as_root(sandbox, "source", f"INSERT INTO {database}.a (v) VALUES ('x')")
            assert inventory.table_shapes(source, [database]) == first
            assert inventory.table_ddl_counts(connection) == counts
            ddl(f"PREPARE grow FROM 'ALTER TABLE {database}.b ADD INDEX (v)'", "EXECUTE grow")
            ddl(f"CREATE TABLE {database}.c (id INT)")
            ddl(f"ALTER TABLE {database}.d ADD CONSTRAINT fk "
                f"FOREIGN KEY (a_id) REFERENCES {database}.a (id)")
            ddl(f"CREATE PROCEDURE {database}.widen() ALTER TABLE {database}.a "
                "MODIFY v VARCHAR(20)", f"CALL {database}.widen()")
            after = inventory.table_shapes(source, [database])
            changed = sorted(t for t in first.keys() | after.keys()
                             if first.get(t) != after.get(t))
            assert changed == [f"{database}.{t}" for t in "abcd"]
            # An ALTER counted before a read and ending after it (here: waiting for a
            # transaction's metadata lock) moves no counter afterwards: no counts then.
            with contextlib.closing(sandbox.services["source"].root_connection()) as holder, \
                    holder.cursor() as holding:
                holding.execute("BEGIN")
                holding.execute(f"SELECT * FROM {database}.c")
                waiting = threading.Thread(target=dbtools.as_root, args=(
                    sandbox, "source", f"ALTER TABLE {database}.c ADD COLUMN late INT"))
                waiting.start()
                wait_until(lambda: dbtools.as_root(
                    sandbox, "source", "SELECT 1 FROM information_schema.PROCESSLIST WHERE "
                    "STATE = 'Waiting for table metadata lock'"), "the ALTER waiting")
                assert inventory.table_ddl_counts(connection) is None
                holding.execute("COMMIT")
                waiting.join()
            assert inventory.table_ddl_counts(connection) is not None
        finally:
            dbtools.as_root(sandbox, "source", f"DROP DATABASE {database}")


@pytest.mark.unit
def test_one_listing_with_versions_splits_current_blobs_from_earlier_versions():
    """Azure's List Blobs with include=versions, as the one listing prune reads: the current
    version is marked IsCurrentVersion; earlier ones carry only their VersionId."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import Catalog
    from drkit.ops.prune import plan_prune

    now = datetime.now(UTC)

    def blob(name: str, version: str, current: bool | None, etag: str = "e") -> SimpleNamespace:
        return SimpleNamespace(name=name, version_id=version, is_current_version=current,
                               etag=etag, size=10, last_modified=now,
                               metadata={"databases": "shop"}, tags={})

    old = "b/backup-20200101-030000.sql.gz"
    blobs = [blob(old, "v1", None, "old"), blob(old, "v2", True),
             blob(old + ".manifest.json", "v3", True),
             blob("b/backup-20190101-030000.sql.gz", "v0", None)]  # deleted by hand
    calls = []

    def list_blobs(name_starts_with=None, include=None):
        calls.append(include)
        return iter(blobs)

    store = BackupStore(SimpleNamespace(list_blobs=list_blobs), "b/", "acct01")
    listing = Catalog(store).listing(versions=True)
    assert [e.name for e in listing.entries] == [old] and listing.entries[0].has_manifest
    assert [(v.name, v.version_id) for v in listing.versions] == [
        (old, "v1"), ("b/backup-20190101-030000.sql.gz", "v0")]
    assert listing.versioned and listing.names == [old, old + ".manifest.json"]
    plan = plan_prune(store, 0)
    assert plan.keep and plan.versioning and len(calls) == 2  # one listing per call
    assert "versioning" not in plan.as_dict()


@pytest.mark.unit
def test_table_ddl_counts_are_none_where_the_server_does_not_show_them_all():
    """A server that refuses SHOW GLOBAL STATUS, or lacks a counter, is not taken for one
    that ran no DDL: the backup then reads the table shapes again. Nor is one where a
    statement that may be table DDL runs already, or could run unseen (no PROCESS)."""
    import pymysql

    class Answering:
        def __init__(self, rows: list[tuple[str, str]] | None,
                     sessions: tuple[int, int] = (1, 0)) -> None:
            self.rows, self.sessions = rows, sessions  # (sees every session, running DDL)

        def cursor(self) -> Answering:
            return self

        def __enter__(self) -> Answering:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, statement: str, args: object = None) -> None:
            if self.rows is None:
                raise pymysql.err.OperationalError(1227, "Access denied")

        def fetchall(self) -> list[tuple[str, str]]:
            return self.rows

        def fetchone(self) -> tuple[int, int]:
            return self.sessions

    every = [(name, "3") for name in inventory._TABLE_DDL_COUNTERS]
    assert inventory.table_ddl_counts(Answering(every)) == {
        name.lower(): 3 for name in inventory._TABLE_DDL_COUNTERS}
    assert inventory.table_ddl_counts(Answering(every[1:])) is None
    assert inventory.table_ddl_counts(Answering(None)) is None
    assert inventory.table_ddl_counts(Answering(every, (0, 0))) is None  # no PROCESS
    assert inventory.table_ddl_counts(Answering(every, (1, 1))) is None  # an ALTER runs


def test_a_table_shapes_read_left_before_its_result_holds_nothing(sandbox, monkeypatch):
    """The backup reads the table shapes beside its preflight; left early (an error,
    SIGTERM), the read cuts its connections: a source that stopped answering mid-read
    holds no thread, so the run ends at once rather than when the source answers."""
    # A part the server answers only in 10 minutes: a source that stopped answering.
    monkeypatch.setattr(inventory, "_SHAPE_PARTS", (
        *inventory._SHAPE_PARTS[:1], "SELECT 'x' s, 'y' n, SLEEP(600) x FROM DUAL "
        "WHERE 'x' NOT IN %(dbs)s"))
    waiting = ("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(600)%' "
               "AND ID <> CONNECTION_ID()")
    read = inventory.TableShapesRead(dbtools.server(sandbox, "source"), ["shop"])
    try:
        wait_until(lambda: dbtools.as_root(sandbox, "source", waiting), "the read waiting")
        leaving = threading.Thread(target=read.__exit__, args=(None, None, None))
        leaving.start()
        leaving.join(60)  # a fail-safe far below the part's 600 s, not a measure
        assert not leaving.is_alive()
        assert not [t for t in threading.enumerate() if t.name.startswith("shapes")]
    finally:
        for (session,) in dbtools.as_root(sandbox, "source", waiting):
            dbtools.as_root(sandbox, "source", f"KILL {session}")
