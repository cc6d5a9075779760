"""Encryption of what drkit keeps beside the backups, without services: the binlog archive's
ranges each an age file opened only with the identity (drkit.binlog.archived), a mixed
archive across a rotation, the commit metadata a writer without the identity reconciles by
(drkit.binlog.writer), and a manifest whose content digests only the identity reads
(drkit.stream.sealeddigests)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from pyrage import x25519

from drkit.binlog.archived import _committed_ranges
from drkit.binlog.protocol import MAGIC
from drkit.binlog.records import ArchivedFile
from drkit.binlog.writer import _committed_range
from drkit.errors import BackupKeyError, BinlogArchiveError, ManifestMismatchError
from drkit.health.key_checks import coverage_check
from drkit.ops.binlog_verify import _mismatch
from drkit.stream.encryption import Keyring, Sealer, fingerprint
from drkit.stream.sealeddigests import SEALED, sealed, with_digests
from tests.test_binlog_framing_units import FILE
from tests.test_encryption_units import _keyring, _Resolver
from tests.test_manifest_units import _manifest

OLD, NEW = x25519.Identity.generate(), x25519.Identity.generate()


def _sealer(*identities: x25519.Identity) -> Sealer:
    return Sealer([str(identity.to_public()) for identity in identities])


def _archived(data: bytes, cuts: list[tuple[int, Sealer | None]]) -> tuple[ArchivedFile, bytes]:
    """The record and blob of ``data`` committed in ranges ending at each cut, each stored
    as it is or sealed to the cut's recipients (as drkit.binlog.writer lays them out)."""
    archived, blob, start = ArchivedFile("mysql-bin.000001"), bytearray(), 0
    for end, sealer in cuts:
        stored = sealer.seal(data[start:end]) if sealer else data[start:end]
        committed = {"start": start, "end": end, "sha256": hashlib.sha256(stored).hexdigest(),
                     "stored_start": len(blob), "stored_end": len(blob) + len(stored)}
        if sealer:
            committed["to"] = sealer.fingerprints
            if sealer.fingerprints not in archived.recipients:
                archived.recipients.append(sealer.fingerprints)
        archived.ranges.append(committed)
        blob += stored
        start = end
    archived.size, archived.stored_size = start, len(blob)
    return archived, bytes(blob)


def _read(archived: ArchivedFile, blob: bytes, *identities: x25519.Identity) -> bytes:
    keyring = _keyring_of(*identities) if identities else None
    chunks = [blob[i:i + 1000] for i in range(0, len(blob), 1000)]
    return b"".join(_committed_ranges(iter(chunks), archived, keyring))


def _keyring_of(*identities: x25519.Identity) -> Keyring:
    """An identity file of one key a line, as age reads it (old and new keys after a rotation)."""
    return Keyring("file:/key", _Resolver({"file:/key": "\n".join(str(i) for i in identities)}))


def test_an_encrypted_range_holds_no_binlog_and_reads_back_with_the_identity():
    archived, blob = _archived(FILE, [(40, _sealer(NEW)), (len(FILE), _sealer(NEW))])
    assert MAGIC not in blob and b"BEGIN" not in blob and blob.startswith(b"age-encryption")
    assert _read(archived, blob, NEW) == FILE
    assert archived.recipients == [[fingerprint(str(NEW.to_public()))]]


def test_a_mixed_archive_reads_across_plain_old_and_new_recipients():
    """Plain ranges from before encryption was turned on, then ranges to the old key, then
    to the new one: an identity file holding both keys reads the whole file."""
    archived, blob = _archived(FILE, [(10, None), (40, _sealer(OLD)),
                                      (len(FILE), _sealer(NEW))])
    assert _read(archived, blob, OLD, NEW) == FILE
    with pytest.raises(BackupKeyError, match=r"^Archived binlog mysql-bin.000001 \(bytes 10-40\)"
                                             r" is not encrypted to the identity file:/key"):
        _read(archived, blob, NEW)


def test_without_an_identity_an_encrypted_range_is_refused_in_one_sentence():
    archived, blob = _archived(FILE, [(len(FILE), _sealer(NEW))])
    with pytest.raises(BackupKeyError) as refused:
        _read(archived, blob)
    assert refused.value.exit_code == 8
    assert refused.value.message == (
        f"Archived binlog mysql-bin.000001 (bytes 0-{len(FILE)}) is encrypted (age) and this "
        "config names no identity to open it (encryption.identity); nothing was read.")


def test_an_encrypted_range_swapped_for_another_age_file_is_damaged():
    """Anyone can encrypt to the public recipients: the stored bytes' sha256 is the check."""
    archived, blob = _archived(FILE, [(len(FILE), _sealer(NEW))])
    forged = _sealer(NEW).seal(FILE)
    with pytest.raises(BinlogArchiveError, match="do not match their sha256"):
        _read(archived, forged, NEW)
    assert _read(archived, blob, NEW) == FILE


def test_the_cheap_verify_checks_ranges_in_the_blob_and_in_the_binlog_without_the_identity():
    archived, blob = _archived(FILE, [(10, None), (len(FILE), _sealer(NEW))])
    assert _mismatch(archived.file, archived, len(blob), newest=False) is None
    assert _mismatch(archived.file, archived, len(FILE), newest=False)[0] == "damaged"
    archived.ranges[1]["stored_start"] += 1
    assert "does not cover its bytes" in _mismatch(archived.file, archived, len(blob),
                                                   newest=False)[1]


def _commit_metadata(committed: dict, summary: dict | None) -> dict[str, str]:
    """The metadata drkit.binlog.writer puts on a commit (one format, as FileWriter._commit)."""
    return {**{f"range_{k}": ",".join(v) if k == "to" else str(v) for k, v in committed.items()},
            "range_events": json.dumps(summary)}


def test_a_commit_whose_record_a_kill_lost_is_recognised_by_its_ciphertext():
    archived, blob = _archived(FILE, [(40, _sealer(NEW)), (len(FILE), _sealer(NEW))])
    last = archived.ranges.pop()  # committed, its record not written
    archived.size, archived.stored_size = last["start"], last["stored_start"]
    summary = {"first": "2023-11-14T22:13:21+00:00", "last": "2023-11-14T22:13:22+00:00",
               "server_id": 1, "gtid": None}
    tail = blob[last["stored_start"]:]
    assert _committed_range(_commit_metadata(last, summary), tail, archived) == (last, summary)
    flipped = tail[:-1] + bytes([tail[-1] ^ 1])  # ("x" was the last byte one run in 256)
    assert _committed_range(_commit_metadata(last, summary), flipped,
                            archived) is None  # bytes no sha256 vouches for
    without_summary = {k: v for k, v in _commit_metadata(last, summary).items()
                       if k != "range_events"}
    assert _committed_range(without_summary, tail, archived) is None  # no headers to read
    archived.size -= 1
    assert _committed_range(_commit_metadata(last, summary), tail, archived) is None


def test_a_sealed_manifest_holds_no_digest_a_guess_could_confirm():
    plain = _manifest()
    clear = sealed(plain, _sealer(OLD, NEW))
    text = clear.model_dump_json()
    assert all(digest not in text for digest in ("o" * 64, "p" * 64, "s" * 64))
    assert {entry.sha256 for entry in clear.tables.values()} == {SEALED}
    assert clear.sql.sha256 == SEALED and clear.metadata()["sql_sha256"] == SEALED
    assert [t.rows for t in clear.tables.values()] == [t.rows for t in plain.tables.values()]
    assert with_digests(clear, _keyring(OLD)) == plain.model_copy(
        update={"encryption": clear.encryption})
    assert with_digests(plain, _keyring(OLD)) is plain  # nothing sealed: nothing to open


def test_sealed_digests_need_an_identity_they_were_sealed_to():
    clear = sealed(_manifest(), _sealer(OLD))
    with pytest.raises(BackupKeyError, match="is not encrypted to the identity"):
        with_digests(clear, _keyring(NEW))
    damaged = clear.model_copy(update={"encryption": {"digests": "bm90IGFnZQ=="}})
    with pytest.raises(ManifestMismatchError, match="sealed digests .* are damaged"):
        with_digests(damaged, _keyring(OLD))


def test_sealed_digests_damaged_anywhere_are_a_manifest_mismatch_not_a_wrong_key():
    """A flipped byte in the stanza reads to age as "no matching key": the identity is one of
    the recipients the clear manifest names, so it is the manifest that is damaged (33)."""
    sealer = _sealer(OLD)
    clear = sealed(_manifest().model_copy(update={"encryption": {
        "format": "age", "fingerprints": sealer.fingerprints}}), sealer)  # as a backup has it
    age_file = base64.b64decode(clear.encryption["digests"])
    for at in range(len(age_file)):
        flipped = bytearray(age_file)
        flipped[at] ^= 0x01
        damaged = clear.model_copy(update={"encryption": {
            **clear.encryption, "digests": base64.b64encode(flipped).decode()}})
        with pytest.raises(ManifestMismatchError) as caught:
            with_digests(damaged, _keyring(OLD))
        assert caught.value.exit_code == 33 and caught.value.outcome == "manifest-mismatch"
    with pytest.raises(BackupKeyError):  # an identity it was not sealed to stays a key error
        with_digests(damaged, _keyring(NEW))


def _summary(file: str, size: int, *recipients: list[str]) -> ArchivedFile:
    return ArchivedFile(file, size=size, recipients=list(recipients), partial=True)


def test_doctor_warns_where_the_backup_side_writes_in_clear_to_a_side_that_lists_recipients():
    to = _sealer(OLD).fingerprints
    encrypted = sealed(_manifest(), _sealer(OLD))
    snapshot = {"binlog_snapshot": {"file": "mysql-bin.000002", "position": 900}}
    encrypted = encrypted.model_copy(update={"consistency": snapshot})
    files = [_summary("mysql-bin.000002", 5000, to), _summary("mysql-bin.000003", 800, to)]
    assert coverage_check(encrypted, files).status == "OK"

    # The backup side's config with recipients: []: the next file, and the plain ranges
    # appended to the one being written, are in clear.
    record = ArchivedFile("mysql-bin.000003", size=1600, ranges=[
        {"start": 0, "end": 800, "to": to}, {"start": 800, "end": 1600}])
    check = coverage_check(encrypted, [files[0], record, _summary("mysql-bin.000004", 300)])
    assert check.status == "WARNING"
    assert "archived binlog mysql-bin.000003, mysql-bin.000004 hold ranges in clear" in \
        check.detail and "not encrypted" not in check.detail
    assert "backup side's config" in check.fix
    plain = encrypted.model_copy(update={"encryption": {}})
    check = coverage_check(plain, [_summary("mysql-bin.000004", 300)])
    assert f"the newest backup {plain.name} is not encrypted" in check.detail
    # Clear ranges before the snapshot (encryption turned on in that file) are not since it.
    older = ArchivedFile("mysql-bin.000002", size=5000, ranges=[
        {"start": 0, "end": 900}, {"start": 900, "end": 5000, "to": to}])
    assert coverage_check(encrypted, [older]).status == "OK"


def test_sealed_digests_taken_out_of_the_manifest_are_damage_too():
    """The clear part still says sealed: verify said "content digest differs" for intact
    content, and restore --check passed."""
    clear = sealed(_manifest(), _sealer(OLD))
    gone = clear.model_copy(update={"encryption": {
        k: v for k, v in clear.encryption.items() if k != "digests"}})
    with pytest.raises(ManifestMismatchError, match="sealed digests .* are damaged"):
        with_digests(gone, _keyring(OLD))
