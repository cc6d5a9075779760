"""Encrypted backups on the sandbox, which turns encryption on: age files in Azurite that
open only with an identity, drkit's own read-backs with the identity from the Key Vault
stand-in, and the break-glass restore by hand with Debian's age tool."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import zlib

import pyrage
import pytest
import yaml
from pyrage import x25519

from drkit.config import load_settings
from drkit.errors import BackupKeyError
from drkit.manifest import Manifest
from drkit.stream.encryption import HEADER, fingerprint
from drkit.stream.sealeddigests import SEALED
from tests import dbtools
from tests.helpers import assert_no_readable_binlog, point_cli_at, run_cli
from tests.test_binlog import PROBE

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(sandbox, tmp_path, monkeypatch) -> str:
    return point_cli_at(sandbox, tmp_path, monkeypatch)


def _backup() -> str:
    result = run_cli("backup", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["backup"]


def _config_with(sandbox, tmp_path, monkeypatch, **encryption: object) -> None:
    """The sandbox's config with its encryption section changed (None: the key removed)."""
    config = yaml.safe_load(sandbox.config_path.read_text())
    for key, value in encryption.items():
        if value is None:
            config["encryption"].pop(key, None)
        else:
            config["encryption"][key] = value
    path = tmp_path / "drkit.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DRKIT_CONFIG", str(path))


def test_an_encrypted_backup_verifies_and_restores_with_the_identity_from_key_vault(
        sandbox, store, prefix):
    settings = load_settings(sandbox.config_path)
    assert settings.encryption.identity == "keyvault:backup-age-identity"
    name = _backup()
    assert name.endswith(".sql.gz.age")

    # In Azurite: an age file, with no gzip member and no SQL or row to read.
    blob = store.container.download_blob(name).readall()
    assert blob.startswith(HEADER)
    # Random ciphertext holds gzip's three magic bytes now and then (about one backup in
    # 25 of this size): none of them begins a gzip member that reads.
    for at in (i for i in range(len(blob)) if blob.startswith(b"\x1f\x8b\x08", i)):
        with pytest.raises((OSError, EOFError, zlib.error)):
            gzip.decompress(blob[at:])
    for plain in (b"INSERT INTO", b"CREATE TABLE", b"smile #3", b"Dump completed"):
        assert plain not in blob
    manifest = Manifest.model_validate_json(
        store.container.download_blob(name + ".manifest.json").readall())
    assert {k: v for k, v in manifest.encryption.items() if k != "digests"} == {
        "format": "age", "recipients": settings.encryption.recipients,
        "fingerprints": [fingerprint(r) for r in settings.encryption.recipients]}
    # No digest a guess could confirm: each table's and the SQL's are sealed to the recipients.
    assert {t.sha256 for t in manifest.tables.values()} == {manifest.sql.sha256} == {SEALED}
    assert pyrage.decrypt(base64.b64decode(manifest.encryption["digests"]), [
        x25519.Identity.from_str(sandbox.age_identity("break-glass"))]).startswith(b'{"sql_')
    assert (manifest.compressed.size, len(blob)) == (len(blob), len(blob))

    _damaged_sealed_digests_are_refused_as_a_manifest_mismatch(store, name)
    verified = run_cli("verify", name)  # the manifest put back: verified anew
    assert verified.exit_code == 0, verified.stderr
    restored = run_cli("restore", name, "--as", "shop_encrypted", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["proof"]["ok"]
    assert dbtools.table_fingerprint(sandbox, "target", "shop_encrypted") == \
        dbtools.table_fingerprint(sandbox, "source", "shop")
    dbtools.query(sandbox, "target", "DROP DATABASE shop_encrypted")


def _damaged_sealed_digests_are_refused_as_a_manifest_mismatch(store, name: str) -> None:
    """One byte of the sealed digests flipped: verify, restore --check and doctor's failover
    check all open them, and say the manifest does not match (33), not that it is missing."""
    blob = store.container.get_blob_client(name + ".manifest.json")
    original = blob.download_blob().readall()
    manifest = json.loads(original)
    age_file = bytearray(base64.b64decode(manifest["encryption"]["digests"]))
    age_file[len(age_file) // 2] ^= 0x01
    manifest["encryption"]["digests"] = base64.b64encode(age_file).decode()
    blob.upload_blob(json.dumps(manifest).encode(), overwrite=True)
    try:
        for command in (["restore", name, "--check"], ["verify", name]):
            refused = run_cli(*command)
            assert refused.exit_code == 33, (command, refused.stdout + refused.stderr)
            assert "sealed digests in backup" in refused.stderr and "damaged" in refused.stderr
            assert "can be restored" not in refused.stdout
        shown = run_cli("show", name)
        assert "manifest-mismatch" in shown.stdout and "manifest-missing" not in shown.stdout
        doctor = json.loads(run_cli("doctor", "--for", "failover", "--json").stdout)
        checks = {c["name"]: c for c in doctor["checks"]}
        assert checks["newest backup manifest"]["status"] == "CRITICAL"
        assert "encryption keys" not in checks
    finally:
        blob.upload_blob(original, overwrite=True)


@pytest.mark.skipif(shutil.which("age") is None, reason="Debian's age tool (install.sh)")
def test_the_break_glass_key_restores_by_hand_with_age_gunzip_mysql(
        sandbox, store, prefix, tmp_path):
    name = _backup()
    copy = tmp_path / name.rsplit("/", 1)[1]
    copy.write_bytes(store.container.download_blob(name).readall())
    key = sandbox.directory / "private" / "age-break-glass.key"

    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS shop")
    dbtools.as_root(sandbox, "target", "CALL mysql.az_load_timezone()")
    dbtools.load_sql(sandbox, "target", f"age -d -i {key} {copy} | gunzip -c")
    assert dbtools.table_fingerprint(sandbox, "target", "shop") == \
        dbtools.table_fingerprint(sandbox, "source", "shop")
    assert dbtools.objects(sandbox, "target", "shop") == \
        dbtools.objects(sandbox, "source", "shop")


def test_a_malformed_recipient_refuses_the_backup_before_anything_is_uploaded(
        sandbox, store, prefix, tmp_path, monkeypatch):
    good = sandbox.age_recipient("restore")
    typo = good[:-1] + ("q" if good[-1] != "q" else "p")
    _config_with(sandbox, tmp_path, monkeypatch, recipients=[good, typo])
    result = run_cli("backup")
    assert result.exit_code == 3
    assert "encryption.recipients.1: not an age X25519 recipient" in result.stderr
    assert typo in result.stderr
    assert not list(store.container.list_blobs(name_starts_with=prefix))


def test_without_the_identity_nothing_is_read_and_one_sentence_says_why(
        sandbox, store, prefix, tmp_path, monkeypatch):
    name = _backup()
    _config_with(sandbox, tmp_path, monkeypatch, identity=None)
    for command in (["verify", name], ["restore", name, "--as", "shop_no_key"]):
        result = run_cli(*command)
        assert result.exit_code == BackupKeyError.exit_code, result.stderr
        assert f"Backup {name} is encrypted (age) and this config names no identity" \
            in result.stderr
    # Not an outcome of the backup: it stays unverified, not "bad".
    assert run_cli("list", "--json").stdout.count('"verified": null') == 1
    assert dbtools.query(sandbox, "target", "SHOW DATABASES LIKE 'shop_no_key'") == []

    other = tmp_path / "other.key"
    other.write_text(f"{x25519.Identity.generate()}\n")
    other.chmod(0o600)
    _config_with(sandbox, tmp_path, monkeypatch, identity=f"file:{other}")
    result = run_cli("restore", name, "--as", "shop_no_key")
    assert result.exit_code == BackupKeyError.exit_code
    assert f"is not encrypted to the identity file:{other}" in result.stderr


def test_the_backup_host_needs_no_identity(sandbox, store, prefix, tmp_path, monkeypatch):
    """Only the recipients: the backup writes and checks its ciphertext without the key, and
    the binlog streamer archives (each block an age file) and checks the archive."""
    _config_with(sandbox, tmp_path, monkeypatch, identity=None)
    name = _backup()
    blob = store.container.download_blob(name).readall()
    assert blob.startswith(HEADER)
    break_glass = x25519.Identity.from_str(sandbox.age_identity("break-glass"))
    sql = gzip.decompress(pyrage.decrypt(blob, [break_glass]))
    assert b"-- Dump completed" in sql[-200:]

    dbtools.query(sandbox, "source", f"CREATE TABLE IF NOT EXISTS {PROBE} (id INT "
                  "AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200), at DATETIME(6))")
    dbtools.query(sandbox, "source", f"INSERT INTO {PROBE} (note, at) VALUES "
                  "('archived unread', NOW(6))")
    assert run_cli("binlog", "stream", "--once").exit_code == 0
    assert run_cli("binlog", "verify").exit_code == 0
    archived = [b for b in store.container.list_blobs(name_starts_with=f"{prefix}binlogs/")
                if not b.name.endswith((".json", ".lock"))]
    assert archived
    for found in archived:
        data = store.container.download_blob(found.name).readall()
        assert_no_readable_binlog(found.name, data)
