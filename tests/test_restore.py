"""Verify, restore and prove against the sandbox; the Azure rewrites on dump fixtures."""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from drkit.config import load_settings
from drkit.manifest import SIDECAR_SUFFIX
from drkit.ops.backup import run_backup
from tests import dbtools
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def prefix(monkeypatch, sandbox, tmp_path) -> str:
    """A fresh prefix with one backup in it; the CLI is pointed at it."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    run_backup(load_settings())
    return prefix


@pytest.fixture
def backup_name(prefix, store) -> str:
    names = [b.name for b in store.container.list_blobs(name_starts_with=prefix)]
    return next(n for n in names if n.endswith(".sql.gz.age"))  # the sandbox encrypts


def scratch() -> str:
    return f"drill_{uuid.uuid4().hex[:8]}"


def test_round_trip_verify_restore_prove(sandbox, prefix, backup_name):
    assert run_cli("restore", "latest-verified", "--as", scratch()).exit_code == 24

    verified = run_cli("verify", "latest", "--json")
    assert verified.exit_code == 0, verified.stderr
    assert json.loads(verified.stdout)["outcome"] == "ok"
    listing = json.loads(run_cli("list", "--json").stdout)["backups"]
    assert [(e["backup"], e["verified"]) for e in listing] == [(backup_name, "ok")]

    database = scratch()
    restored = run_cli("restore", "latest-verified", "--as", database, "--json")
    assert restored.exit_code == 0, restored.stderr
    result = json.loads(restored.stdout)
    assert result["proof"]["ok"] and result["proof"]["differences"] == []
    assert result["databases"] == {"shop": database}
    assert result["restore_seconds"] > 0 and result["throughput_mib_s"] > 0
    assert dbtools.table_fingerprint(sandbox, "target", database) == \
        dbtools.table_fingerprint(sandbox, "source", "shop")
    # Stored objects came along, owned by the restoring user (DEFINER stripped for Azure).
    assert dbtools.query(sandbox, "target", f"SELECT {database}.customer_total(1)") == \
        dbtools.query(sandbox, "source", "SELECT shop.customer_total(1)")
    definers = dbtools.query(sandbox, "target", "SELECT DEFINER FROM information_schema.ROUTINES"
                             f" WHERE ROUTINE_SCHEMA = '{database}'")
    assert {d for (d,) in definers} == {"drkitadmin@%"}

    again = run_cli("prove", "latest", "--as", database)
    assert again.exit_code == 0 and "proof passed" in again.stdout
    nowhere = run_cli("prove", "latest", "--as", "nosuchdb")  # was 20, a dump that failed
    assert nowhere.exit_code == 12, nowhere.stderr
    assert "Database 'nosuchdb' does not exist on " in nowhere.stderr


def test_selection_by_time_and_name(prefix, backup_name):
    bare = backup_name.rsplit("/", 1)[1]
    taken = bare[len("backup-"):-len(".sql.gz.age")]
    moment = f"{taken[:4]}-{taken[4:6]}-{taken[6:8]}T{taken[9:11]}:{taken[11:13]}:{taken[13:]}"
    for spec in (bare, backup_name, moment, "latest"):
        result = run_cli("verify", spec, "--json")
        assert json.loads(result.stdout)["backup"] == backup_name, spec
    missing = run_cli("verify", "2001-01-01")
    assert missing.exit_code == 24 and "No backup matches '2001-01-01'" in missing.stderr


def _tags(store, name):
    return store.container.get_blob_client(name).get_blob_tags()


def test_tampered_blob_is_a_checksum_mismatch(store, backup_name):
    data = bytearray(store.container.download_blob(backup_name).readall())
    data[len(data) // 2] ^= 0x01
    store.container.upload_blob(backup_name, bytes(data), overwrite=True)
    result = run_cli("verify", backup_name)
    assert result.exit_code == 31, result.stderr
    assert "corrupt" in result.stderr or "does not match its manifest's checksum" in result.stderr
    assert _tags(store, backup_name)["drkit_verified"] == "checksum-mismatch"
    assert run_cli("restore", "latest-verified").exit_code == 24


def test_appended_data_is_a_checksum_mismatch(store, backup_name):
    # An extra valid gzip member: it decompresses cleanly, yet is not what was written.
    data = store.container.download_blob(backup_name).readall()
    store.container.upload_blob(backup_name, data + gzip.compress(b"DROP DATABASE shop;\n"),
                                overwrite=True)
    result = run_cli("verify", backup_name)
    assert result.exit_code == 31
    assert "does not match its manifest's checksum" in result.stderr


def test_truncated_blob_is_reported_as_truncated(store, backup_name):
    data = store.container.download_blob(backup_name).readall()
    store.container.upload_blob(backup_name, data[: len(data) // 2], overwrite=True)
    result = run_cli("verify", backup_name)
    assert result.exit_code == 32, result.stderr
    assert "is truncated" in result.stderr
    assert _tags(store, backup_name)["drkit_verified"] == "truncated"


def test_manifest_that_does_not_match_the_content(store, backup_name):
    sidecar = backup_name + SIDECAR_SUFFIX
    manifest = json.loads(store.container.download_blob(sidecar).readall())
    manifest["tables"]["shop.orders"]["rows"] += 1
    store.container.upload_blob(sidecar, json.dumps(manifest), overwrite=True)
    result = run_cli("verify", backup_name)
    assert result.exit_code == 33, result.stderr
    assert "table shop.orders has" in result.stderr and "manifest says" in result.stderr


def test_missing_manifest(store, backup_name):
    store.container.delete_blob(backup_name + SIDECAR_SUFFIX)
    result = run_cli("verify", backup_name)
    assert result.exit_code == 30
    assert "has no manifest" in result.stderr
    assert "NO" in run_cli("list").stdout


def test_changed_table_after_restore_fails_the_proof(sandbox, prefix):
    database = scratch()
    assert run_cli("restore", "latest", "--as", database).exit_code == 0
    dbtools.query(sandbox, "target", f"UPDATE {database}.customers SET city = 'Busan' "
                  "WHERE id = 7")
    dbtools.query(sandbox, "target", f"DROP TRIGGER {database}.orders_round_amount")
    dbtools.query(sandbox, "target", f"CREATE TABLE {database}.stray (id INT)")
    result = run_cli("prove", "latest", "--as", database, "--json")
    assert result.exit_code == 34
    differences = {(d["kind"], d["name"]) for d in json.loads(result.stdout)["differences"]}
    assert differences == {("table", f"{database}.customers"), ("table", f"{database}.stray"),
                           ("trigger", f"{database}.orders_round_amount"),
                           ("trigger definition", f"{database}.orders_round_amount"),
                           ("table definition", f"{database}.stray")}
    assert "differs from backup" in result.stderr and "5 place(s)" in result.stderr
    tables = {t["table"]: t for t in json.loads(result.stdout)["tables"]}  # per table
    assert tables["shop.customers"]["rows_match"] and not tables["shop.customers"][
        "digest_match"]
    assert tables["shop.orders"]["digest_match"] and "shop.stray" not in tables


def _old_database(sandbox, database: str) -> tuple[dict, dict]:
    """A target database with data and one object of each kind; its fingerprint, objects."""
    for sql in (f"CREATE DATABASE {database}",
                f"CREATE TABLE {database}.precious (id INT PRIMARY KEY, note TEXT)",
                f"INSERT INTO {database}.precious VALUES (42, 'keep')",
                f"CREATE VIEW {database}.precious_ids AS SELECT id FROM {database}.precious",
                f"CREATE TRIGGER {database}.precious_upper BEFORE INSERT ON "
                f"{database}.precious FOR EACH ROW SET NEW.note = UPPER(NEW.note)",
                f"CREATE PROCEDURE {database}.precious_count() SELECT COUNT(*) FROM precious",
                f"CREATE EVENT {database}.precious_tick ON SCHEDULE EVERY 1 DAY DISABLE DO "
                "SELECT 1"):
        dbtools.query(sandbox, "target", sql)
    return _state(sandbox, database)


def _state(sandbox, database: str) -> tuple[dict, dict]:
    return (dbtools.table_fingerprint(sandbox, "target", database),
            dbtools.objects(sandbox, "target", database))


def _helper_databases(sandbox) -> list:
    return dbtools.query(sandbox, "target", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
                         " WHERE SCHEMA_NAME LIKE 'drkit\\_re%'")


def test_non_empty_target_is_refused_and_replace_swaps_in_a_proven_copy(sandbox, prefix):
    database = scratch()
    before = _old_database(sandbox, database)
    refused = run_cli("restore", "latest", "--as", database)
    assert refused.exit_code == 35
    assert f"Database {database} on the target" in refused.stderr and "--replace" in (
        refused.stderr)
    assert _state(sandbox, database) == before

    replaced = run_cli("restore", "latest", "--as", database, "--replace")
    assert replaced.exit_code == 0, replaced.stderr
    assert replaced.stdout.startswith(f"replaced {database} on "), replaced.stdout
    fresh = scratch()
    assert run_cli("restore", "latest", "--as", fresh).exit_code == 0
    tables, objects = _state(sandbox, database)
    fresh_tables, fresh_objects = _state(sandbox, fresh)
    assert "precious" not in tables and tables == fresh_tables
    assert objects == {kind: [name.replace(fresh, database) for name in names]
                       for kind, names in fresh_objects.items()}
    assert _helper_databases(sandbox) == []
    assert run_cli("restore", "latest", "--replace", "--no-prove", "--as", database
                   ).exit_code == 2


def test_replace_whose_proof_fails_leaves_the_database_as_it_was(sandbox, store, backup_name):
    database = scratch()
    before = _old_database(sandbox, database)
    sidecar = backup_name + SIDECAR_SUFFIX
    manifest = json.loads(store.container.download_blob(sidecar).readall())
    manifest["tables"]["shop.orders"]["rows"] += 1
    store.container.upload_blob(sidecar, json.dumps(manifest), overwrite=True)
    result = run_cli("restore", backup_name, "--as", database, "--replace")
    assert result.exit_code == 34, result.stderr
    assert f"Database {database} on the target is unchanged" in result.stderr
    assert _state(sandbox, database) == before
    assert _helper_databases(sandbox) == []


def test_replace_that_cannot_take_its_locks_is_undone(sandbox, prefix, monkeypatch):
    """Another session's open transaction on the old tables: the swap waits its time, gives
    up, and puts back the views, trigger, routine and event it had already dropped."""
    database = scratch()
    before = _old_database(sandbox, database)
    monkeypatch.setenv("DRKIT_RESTORE__SWAP_LOCK_WAIT_SECONDS", "2")
    reader = dbtools.connect(sandbox, "target", database)
    try:
        with reader.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT * FROM precious")
        result = run_cli("restore", "latest", "--as", database, "--replace")
    finally:
        reader.rollback()
        reader.close()
    assert result.exit_code == 39, result.stderr
    assert "could not lock its tables" in result.stderr
    assert f"nothing was changed and {database} is as it was" in result.stderr
    assert _state(sandbox, database) == before
    assert _helper_databases(sandbox) == []


def test_empty_existing_database_is_fine(sandbox, prefix):
    database = scratch()
    dbtools.query(sandbox, "target", f"CREATE DATABASE {database}")
    assert run_cli("restore", "latest", "--as", database).exit_code == 0


def test_check_reports_rewrites_and_loads_nothing(sandbox, prefix):
    database = scratch()
    result = run_cli("restore", "latest", "--as", database, "--check", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rewrites"]["removed DEFINER clauses"] == 5
    assert report["rewrites"]["renamed database references"] >= 2
    assert report["blockers"] == []
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM information_schema.SCHEMATA "
                         f"WHERE SCHEMA_NAME = '{database}'") == [(0,)]


# The exit code of a backup damaged so: cut short (32), or changed (31: not what was written).
DAMAGE_EXIT_CODES = {"truncated": 32, "tampered": 31}


@pytest.mark.parametrize(("damage", "verified_first"), [
    ("truncated", True), ("truncated", False), ("tampered", False)])
def test_replace_never_drops_data_for_a_bad_backup(sandbox, store, backup_name, damage,
                                                   verified_first):
    """Before: exit 32 after "Dropped database db". Now the backup is known bad (its verify
    tag, its size) or found bad (verified before anything is dropped), and the data stays."""
    code = DAMAGE_EXIT_CODES[damage]
    database = scratch()
    assert run_cli("restore", "latest", "--as", database).exit_code == 0
    before = dbtools.table_fingerprint(sandbox, "target", database)
    data = bytearray(store.container.download_blob(backup_name).readall())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    metadata = store.container.get_blob_client(backup_name).get_blob_properties().metadata
    store.container.upload_blob(backup_name, bytes(data), overwrite=True, metadata=metadata)
    if verified_first:
        assert run_cli("verify", backup_name).exit_code == code
    result = run_cli("restore", backup_name, "--as", database, "--replace")
    assert result.exit_code == code, result.stderr
    assert "Dropped database" not in result.stderr
    assert dbtools.table_fingerprint(sandbox, "target", database) == before


def test_bad_selectors_and_names_are_usage_errors(prefix, backup_name):
    bad_time = run_cli("verify", "2026-13-45")
    assert bad_time.exit_code == 2 and "'2026-13-45' is not a time" in bad_time.stderr
    empty = run_cli("restore", "latest", "--as", "")
    assert empty.exit_code == 2 and "is not a database name" in empty.stderr


def test_a_backup_named_in_the_future_is_never_the_newest(store, prefix, backup_name):
    future = f"{prefix}backup-29990101-000000.sql.gz"
    store.container.upload_blob(future, b"x")
    result = run_cli("verify", "latest", "--json")
    assert json.loads(result.stdout)["backup"] == backup_name


def test_system_schemas_are_never_backed_up_or_restored_into(sandbox, prefix):
    dbtools.query(sandbox, "target", "CREATE DATABASE IF NOT EXISTS keep_me")
    before = dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = 'mysql'")
    for name in ("mysql", "SYS", "performance_schema"):
        result = run_cli("restore", "latest", "--as", name, "--replace")
        assert result.exit_code == 37 and "system schema" in result.stderr, result.stderr
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM information_schema.TABLES "
                         "WHERE TABLE_SCHEMA = 'mysql'") == before
    backup = run_cli("backup", "--database", "information_schema")
    assert backup.exit_code == 2 and "is a system schema" in backup.stderr


@pytest.fixture
def empty_time_zones(sandbox):
    """The target's time-zone tables empty, as on a new Flexible Server."""
    def empty() -> None:
        for table in ("time_zone_name", "time_zone_transition_type", "time_zone_transition",
                      "time_zone"):
            dbtools.as_root(sandbox, "target", f"DELETE FROM mysql.{table}")
        dbtools.as_root(sandbox, "target", "FLUSH TABLES")
    empty()
    yield empty
    dbtools.as_root(sandbox, "target", "CALL mysql.az_load_timezone()")


@contextlib.contextmanager
def _database_with_an_event_in(sandbox, zone: str) -> Iterator[str]:
    """A source database whose event was made in ``zone``, one the target has never used
    (a server caches the zones it has used, whatever its tables hold)."""
    database = scratch()
    dbtools.query(sandbox, "source", f"CREATE DATABASE {database}")
    dbtools.query(sandbox, "source", f"CREATE TABLE {database}.t (id INT PRIMARY KEY)")
    connection = dbtools.connect(sandbox, "source", database)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"SET time_zone = '{zone}'")
        cursor.execute("CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t")
    try:
        assert run_cli("backup", "--database", database).exit_code == 0
        yield database
    finally:
        dbtools.query(sandbox, "source", f"DROP DATABASE {database}")


def test_named_time_zones_are_loaded_with_azures_procedure_before_the_restore(
        sandbox, prefix, empty_time_zones):
    with _database_with_an_event_in(sandbox, "America/Sao_Paulo") as database:
        check = run_cli("restore", "latest", "--check", "--json")
        assert check.exit_code == 0, check.stderr
        report = json.loads(check.stdout)
        assert report["blockers"] == []
        assert any("America/Sao_Paulo" in note and "az_load_timezone" in note
                   for note in report["notes"])
        verdict = run_cli("restore", "latest", "--check").stdout.splitlines()[-1]
        assert verdict.startswith(f"verdict: {report['backup']} can be restored"), verdict
        result = run_cli("restore", "latest")
    assert result.exit_code == 0, result.stderr
    assert "Loaded the target's time-zone tables" in result.stderr
    assert dbtools.query(sandbox, "target", "SELECT TIME_ZONE FROM information_schema.EVENTS "
                         f"WHERE EVENT_SCHEMA = '{database}'") == [("America/Sao_Paulo",)]


def test_without_a_way_to_load_them_the_restore_stops_before_loading(sandbox, prefix,
                                                                     empty_time_zones):
    from drkit.sandbox.flexible import AZ_LOAD_TIMEZONE

    with _database_with_an_event_in(sandbox, "Europe/Berlin") as database:
        dbtools.as_root(sandbox, "target", "DROP PROCEDURE mysql.az_load_timezone")
        try:
            check = run_cli("restore", "latest", "--check")
            assert check.exit_code == 37, check.stdout
            assert "BLOCKER: the backup's events or routines use the time zone(s) " \
                "Europe/Berlin" in check.stdout
            assert check.stdout.splitlines()[-1].endswith("cannot be restored as it is: "
                                                          "1 blocker above"), check.stdout
            result = run_cli("restore", "latest")
        finally:
            dbtools.as_root(sandbox, "target", AZ_LOAD_TIMEZONE)
    assert result.exit_code == 37, result.stderr
    assert "use the time zone(s) Europe/Berlin" in result.stderr and "mysql_tzinfo_to_sql" in \
        result.stderr
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM information_schema.SCHEMATA "
                         f"WHERE SCHEMA_NAME = '{database}'") == [(0,)]


@pytest.mark.parametrize("obstacle", ["foreign definer", "foreign key from elsewhere"])
def test_a_swap_that_could_not_be_undone_is_refused_before_anything_changes(
        sandbox, prefix, obstacle):
    database = scratch()
    before = _old_database(sandbox, database)
    other = scratch()
    if obstacle == "foreign definer":  # Flexible Server's admin may not re-create it
        dbtools.as_root(sandbox, "target", f"CREATE DEFINER=root@localhost PROCEDURE "
                        f"{database}.root_owned() SELECT 1")
        expected = "objects of another definer (root_owned (root@localhost))"
    else:
        dbtools.query(sandbox, "target", f"CREATE DATABASE {other}")
        dbtools.query(sandbox, "target", f"CREATE TABLE {other}.child (id INT PRIMARY KEY, "
                      f"parent INT, FOREIGN KEY (parent) REFERENCES {database}.precious (id))")
        expected = f"foreign keys into {database} ({other}.child)"
    before = _state(sandbox, database)
    result = run_cli("restore", "latest", "--as", database, "--replace")
    assert result.exit_code == 39, result.stderr
    assert expected in result.stderr and "nothing was changed" in result.stderr
    assert _state(sandbox, database) == before
    assert _helper_databases(sandbox) == []
    dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {other}")


def test_objects_naming_their_own_database_restore_in_place_but_never_under_another_name(
        sandbox, tmp_path, monkeypatch):
    """A trigger written as ``TRIGGER db.t ... INSERT INTO db.log``: restored as a copy it
    would write into the original database; in place (--replace) it is proven."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    database = scratch()
    for sql in (f"CREATE DATABASE {database}",
                f"CREATE TABLE {database}.t (id INT PRIMARY KEY)",
                f"CREATE TABLE {database}.log (id INT)",
                f"CREATE TRIGGER {database}.t_ai AFTER INSERT ON {database}.t FOR EACH ROW "
                f"INSERT INTO {database}.log VALUES (NEW.id)"):
        dbtools.query(sandbox, "source", sql)
    try:
        assert run_cli("backup", "--database", database).exit_code == 0
        copy = run_cli("restore", "latest", "--as", scratch())
        assert copy.exit_code == 37, copy.stderr
        assert f"trigger {database}.t_ai" in copy.stderr and "would act on the original" in \
            copy.stderr
        assert run_cli("restore", "latest").exit_code == 0
        replaced = run_cli("restore", "latest", "--replace")
        assert replaced.exit_code == 0, replaced.stderr
        dbtools.query(sandbox, "target", f"INSERT INTO {database}.t VALUES (7)")
        assert dbtools.query(sandbox, "target", f"SELECT id FROM {database}.log") == [(7,)]
    finally:
        dbtools.query(sandbox, "source", f"DROP DATABASE {database}")


def test_names_outside_mysqls_range_are_usage_errors(prefix):
    result = run_cli("restore", "latest", "--as", "😀db")
    assert result.exit_code == 2 and "no emoji" in result.stderr


def test_a_failed_verdict_no_longer_applies_once_the_manifest_is_put_right(
        sandbox, store, backup_name):
    sidecar = backup_name + SIDECAR_SUFFIX
    original = store.container.download_blob(sidecar).readall()
    manifest = json.loads(original)
    manifest["tables"]["shop.orders"]["rows"] += 1
    store.container.upload_blob(sidecar, json.dumps(manifest), overwrite=True)
    assert run_cli("verify", backup_name).exit_code == 33
    refused = run_cli("restore", backup_name, "--as", scratch())
    assert refused.exit_code == 33 and "failed verification" in refused.stderr
    assert f"drkit verify {backup_name}" in refused.stderr  # the backup side can tag failures
    store.container.upload_blob(sidecar, original, overwrite=True)  # an operator's repair
    listing = json.loads(run_cli("list", "--json").stdout)["backups"]
    assert [e["verified"] for e in listing if e["backup"] == backup_name] == ["stale"]
    assert run_cli("restore", backup_name, "--as", scratch()).exit_code == 0


def test_two_replaces_never_share_a_scratch_and_one_waits_its_turn(sandbox, prefix, tmp_path):
    """Two runs in the same second: each has its own scratch and dated name; a second
    --replace of the same database while one runs is refused (23), the data intact."""
    from drkit.mysql.swap import scratch_names

    first, second = (scratch_names(["x"], "20261127045148") for _ in range(2))
    assert first["x"][0] != second["x"][0] and first["x"][1] != second["x"][1]

    database = scratch()
    before = _old_database(sandbox, database)
    target = dbtools.server(sandbox, "target")
    name = quote(f"{target.address}-{database}", safe="")
    lock = tmp_path / "state" / "locks" / f"replace-{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    # Holds the lock until its input closes; says so once it holds it.
    holder = subprocess.Popen(["flock", str(lock), "-c", "echo held; read -r _"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        result = run_cli("restore", "latest", "--as", database, "--replace")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.exit_code == 23, result.stderr
    assert f"Another restore of {database}" in result.stderr
    assert _state(sandbox, database) == before and _helper_databases(sandbox) == []
