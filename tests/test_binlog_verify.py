"""``drkit binlog verify`` on the sandbox (issue 23): an archive that cannot serve a
point-in-time restore is CRITICAL in verify, status and doctor, naming the file and the
times it cuts off, and ``restore --until`` refuses it before anything is loaded."""

from __future__ import annotations

import json

from pyrage import x25519

from drkit.azure.blobstore import BackupStore
from drkit.binlog.records import file_order
from drkit.config import load_settings
from drkit.errors import BackupKeyError
from drkit.health.key_checks import coverage_checks
from tests import dbtools
from tests.helpers import run_cli
from tests.test_encryption import _config_with
from tests.test_pitr import _base_then, pitr  # noqa: F401 (the fixture, reused)

WRITES = ["INSERT INTO shop.pitr_log VALUES (NOW(6), 'verify-1')",
          "INSERT INTO shop.pitr_log VALUES (NOW(6), 'verify-2')"]


def _verify(*args: str) -> tuple[int, dict]:
    result = run_cli("binlog", "verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def _doctor_archive() -> dict:
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    return next(c for c in doctor["checks"] if c["name"] == "binlog archive")


def _base() -> tuple[str, str]:
    """The newest base and the binlog file its snapshot stands in."""
    from drkit.ops.binlog_verify import pitr_bases

    base = pitr_bases(load_settings())[-1]
    return base.name, base.snapshot_file


def _creations(sandbox) -> dict[str, int]:
    """How many databases and tables the target has created since it started."""
    rows = dbtools.as_root(sandbox, "target", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                           "('Com_create_db', 'Com_create_table')")
    return {name: int(value) for name, value in rows}


def test_a_whole_archive_is_ok_with_the_times_it_restores_to(sandbox, pitr):  # noqa: F811
    _base_then(sandbox, WRITES)
    base, _ = _base()
    for deep in ((), ("--deep",)):
        code, report = _verify(*deep)
        assert code == 0 and report["ok"] and not report["breaks"], report
        window = next(w for w in report["windows"] if w["backup"] == base)
        assert window["until"] == report["newest_event_at"] and window["cut_by"] is None
        assert window["from"] <= window["until"]
    status = run_cli("binlog", "status", "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["verify"]["ok"]
    assert "restorable from" in run_cli("binlog", "verify").stdout
    check = _doctor_archive()
    assert check["status"] in ("OK", "WARNING"), check  # WARNING: only the lag
    _an_index_lacking_a_file_is_no_break(sandbox)


def _an_index_lacking_a_file_is_no_break(sandbox) -> None:
    """An index that lacks a file after the base's first (edited, or an older writer's):
    status, which reads it, found a break a restore would not meet (49). A break on the
    index is the listing's to confirm."""
    for _ in range(2):
        dbtools.query(sandbox, "source", "INSERT INTO shop.pitr_log VALUES (NOW(6), 'ix')")
        dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    settings = load_settings()
    store = BackupStore.from_settings(settings, prefix="")
    name = f"{settings.binlog.prefix}index.json"
    index = json.loads(store.container.download_blob(name).readall())
    hidden = next(e["file"] for e in index["files"]  # neither the base's first nor newest
                  if file_order(e["file"]) > file_order(_base()[1]))
    index["files"] = [e for e in index["files"] if e["file"] != hidden]
    store.container.upload_blob(name, json.dumps(index), overwrite=True)
    status = run_cli("binlog", "status")  # no BREAK: the listing's word, and what differs
    assert status.exit_code == 0 and "BREAK" not in status.stdout, status.stdout
    assert f"index: the index lacks {hidden}\n" in status.stdout


def test_an_encrypted_archive_is_checked_without_the_identity_and_read_only_with_it(
        sandbox, pitr, tmp_path, monkeypatch):  # noqa: F811
    """The sandbox encrypts the archive: the cheap check is the backup host's (no identity),
    --deep opens every range. After a rotation to a key this host lacks, --deep refuses (8)
    and doctor --for failover names the file; an identity file with both keys reads it all."""
    _base_then(sandbox, WRITES)
    _config_with(sandbox, tmp_path, monkeypatch, identity=None)
    code, report = _verify()
    assert code == 0 and report["ok"], report
    for command in (["binlog", "verify", "--deep"],
                    ["restore", "--until", "latest", "--as", "pit"]):
        refused = run_cli(*command)
        assert refused.exit_code == BackupKeyError.exit_code, refused.stdout + refused.stderr
        assert "is encrypted (age) and this config names no identity to open it" in \
            refused.stderr
    assert not dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'pit'")

    # A backup side whose config lists no recipients archives in clear: the config that
    # lists them (the sandbox's, the Azure side's) has doctor name the file.
    _config_with(sandbox, tmp_path, monkeypatch, identity=None, recipients=[])
    dbtools.query(sandbox, "source", "INSERT INTO shop.pitr_log VALUES (NOW(6), 'in clear')")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    [check] = coverage_checks(load_settings(sandbox.config_path))
    assert check.status == "WARNING" and "holds ranges in clear" in check.detail, check

    # Rotated: new ranges go to the break-glass key only; this host holds the restore key.
    _config_with(sandbox, tmp_path, monkeypatch, identity="keyvault:backup-age-identity",
                 recipients=[sandbox.age_recipient("break-glass")])
    dbtools.query(sandbox, "source", "INSERT INTO shop.pitr_log VALUES (NOW(6), 'rotated')")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    newest = json.loads(run_cli("binlog", "status", "--json").stdout)["newest_file"]
    deep = run_cli("binlog", "verify", "--deep")
    assert deep.exit_code == BackupKeyError.exit_code, deep.stdout + deep.stderr
    assert f"Archived binlog {newest} (bytes " in deep.stderr
    assert "is not encrypted to the identity keyvault:backup-age-identity" in deep.stderr
    check = _key_check()
    assert check["status"] == "CRITICAL" and f"archived binlog {newest} was" in check["detail"]
    assert "older version holds the old key" in check["fix"]
    stranger = tmp_path / "stranger.key"
    stranger.write_text(f"{x25519.Identity.generate()}\n")
    stranger.chmod(0o600)
    _config_with(sandbox, tmp_path, monkeypatch, identity=f"file:{stranger}")
    check = _key_check()
    assert check["status"] == "CRITICAL" and f"backup {_base()[0]} was" in check["detail"]

    both = tmp_path / "both.key"
    both.write_text(sandbox.age_identity("restore") + "\n" + sandbox.age_identity("break-glass"))
    both.chmod(0o600)
    _config_with(sandbox, tmp_path, monkeypatch, identity=f"file:{both}")
    code, report = _verify("--deep")
    assert code == 0 and report["ok"], report
    assert _key_check()["status"] == "OK"


def _key_check() -> dict:
    doctor = json.loads(run_cli("doctor", "--for", "failover", "--json").stdout)
    return next(c for c in doctor["checks"] if c["name"] == "encryption keys")


def test_the_bases_first_file_without_its_record_is_critical_and_refused_unloaded(sandbox,
                                                                                  pitr):  # noqa: F811
    """The issue's case: the record of the only base's first file deleted. Before, status
    and doctor said OK and the restore loaded and proved the base before failing."""
    _base_then(sandbox, WRITES)
    dbtools.as_root(sandbox, "source", "FLUSH BINARY LOGS")  # the archive goes on after it
    dbtools.query(sandbox, "source", WRITES[0])
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    base, first = _base()
    settings = load_settings()
    store = BackupStore.from_settings(settings, prefix="")
    store.container.delete_blob(f"{settings.binlog.prefix}{first}.json")

    code, report = _verify()
    assert code == 49 and not report["ok"]
    cut = report["breaks"][0]
    assert cut["file"] == first and f"{first} has no record" in cut["detail"]
    assert cut["superseded_by"] is None and "can be restored" in cut["detail"]
    window = next(w for w in report["windows"] if w["backup"] == base)
    assert window["until"] is None and window["cut_by"] == first

    status = run_cli("binlog", "status")
    assert status.exit_code == 49 and f"BREAK: Archived binlog {first}" in status.stdout
    check = _doctor_archive()
    assert check["status"] == "CRITICAL" and first in check["detail"], check

    before = _creations(sandbox)
    restore = run_cli("restore", "--until", "latest", "--as", "pit")
    assert restore.exit_code == 49, restore.stdout + restore.stderr
    assert first in restore.stderr and "nothing was restored" in restore.stderr
    assert _creations(sandbox) == before  # refused before a database or table was made
    assert not dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'pit'")


def test_one_byte_flipped_passes_the_cheap_check_and_fails_the_deep_one(sandbox,
                                                                        pitr):  # noqa: F811
    _base_then(sandbox, WRITES)
    settings = load_settings()
    newest = json.loads(run_cli("binlog", "status", "--json").stdout)["newest_file"]
    store = BackupStore.from_settings(settings, prefix="")
    name = settings.binlog.prefix + newest
    data = bytearray(store.container.download_blob(name).readall())
    data[len(data) // 2] ^= 0x01
    store.container.upload_blob(name, bytes(data), overwrite=True)  # the record kept

    code, report = _verify()
    assert code == 0 and report["ok"], report  # sizes and records agree: cheap cannot see it
    code, report = _verify("--deep")
    assert code == 48 and not report["ok"]
    cut = report["breaks"][0]
    assert cut["file"] == newest and "do not match their sha256" in cut["detail"]
    assert f"Archived binlog {newest} bytes " in cut["detail"]
    status = run_cli("binlog", "status", "--deep")
    assert status.exit_code == 48 and "BREAK" in status.stdout
