"""The signing rules of verification verdicts (drkit.azure.verdicts), without services: an
``ok`` counts only with the Azure side's signature over what the verify saw; the backup side,
holding no identity, reads it as unchecked; with encryption off no key exists."""

from __future__ import annotations

import pytest
from pyrage import x25519

from drkit.azure.verdicts import FORGED, UNCHECKED, Verdict, VerdictKeys
from drkit.stream.encryption import Keyring

OK = Verdict("p/backup-20261207-030000.sql.gz.age", "0x8D1", "0x8D2", "ok",
             "2026-12-07T04:00:00Z")


class _Resolver:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def resolve(self, reference: str):
        return type("Secret", (), {"get_secret_value": lambda _: self.secrets[reference]})()


def _azure_side(*identities: x25519.Identity) -> VerdictKeys:
    lines = "\n".join(str(i) for i in identities)
    return VerdictKeys(Keyring("keyvault:backup-age-identity",
                               _Resolver({"keyvault:backup-age-identity": lines}),
                               encrypting=True))


def test_a_signed_ok_counts_and_any_change_to_what_it_covers_forges_it():
    keys = _azure_side(x25519.Identity.generate())
    signed = keys.sign(OK)
    assert keys.checked(OK, signed) == "ok"
    for field, value in (("name", "p/backup-20261206-030000.sql.gz.age"),
                         ("etag", "0x8D9"), ("manifest_etag", "0x8D9"),
                         ("verified_at", "2026-12-08T04:00:00Z")):
        assert keys.checked(Verdict(**{**vars(OK), field: value}), signed) == FORGED, field


@pytest.mark.parametrize("signature", [None, "", "garbage", "0123456789abcdef:" + "0" * 63])
def test_an_ok_without_a_good_signature_is_forged(signature):
    assert _azure_side(x25519.Identity.generate()).checked(OK, signature) == FORGED


def test_an_ok_signed_by_an_identity_not_held_here_is_unchecked_not_forged():
    """A restore with the break-glass key (it signs nothing, and never held the restore
    identity) reads every verdict as unchecked: `drkit verify` signs it anew, and nothing
    cries forgery or refuses a restore of a good backup in the middle of an incident."""
    restore_identity, break_glass = x25519.Identity.generate(), x25519.Identity.generate()
    signed = _azure_side(restore_identity).sign(OK)
    assert _azure_side(break_glass).checked(OK, signed) == UNCHECKED
    assert _azure_side(break_glass).checked(OK, "0123456789abcdef:" + "0" * 64) == UNCHECKED


def test_another_identity_cannot_sign_and_a_failure_needs_no_signature():
    ours, theirs = _azure_side(x25519.Identity.generate()), \
        _azure_side(x25519.Identity.generate())
    assert ours.checked(OK, theirs.sign(OK)) == UNCHECKED  # not ours to check: see above
    forged = theirs.sign(OK).split(":")[1]
    assert ours.checked(OK, f"{ours.sign(OK).split(':')[0]}:{forged}") == FORGED
    # A failed check or the backup side's ciphertext check never makes a backup verified:
    # read as they are, signed or not.
    for outcome in ("checksum-mismatch", "ciphertext-ok"):
        assert ours.checked(Verdict(**{**vars(OK), "outcome": outcome}), None) == outcome


def test_after_a_rotation_a_verdict_of_the_older_identity_still_checks():
    old, new = x25519.Identity.generate(), x25519.Identity.generate()
    signed_before = _azure_side(old).sign(OK)
    rotated = _azure_side(new, old)  # the new identity first: it signs from now on
    assert rotated.checked(OK, signed_before) == "ok"
    assert rotated.sign(OK).split(":")[0] != signed_before.split(":")[0]
    assert _azure_side(new).checked(OK, signed_before) == UNCHECKED  # old identity dropped


def test_without_an_identity_an_ok_is_unchecked_unless_encryption_is_off():
    signed = _azure_side(x25519.Identity.generate()).sign(OK)
    backup_side = VerdictKeys(Keyring(backup_side=True, encrypting=True))
    no_identity = VerdictKeys(Keyring(encrypting=True))
    for keys in (backup_side, no_identity):
        assert keys.checked(OK, signed) == UNCHECKED
        assert keys.sign(OK) is None  # and writes no signature
    plaintext = VerdictKeys(Keyring())  # no recipients, no identity: no key anywhere
    assert plaintext.checked(OK, None) == "ok" and plaintext.sign(OK) is None


def test_doctor_names_forged_verdicts_and_show_says_what_each_state_means():
    from datetime import UTC, datetime

    from drkit.azure.catalog import BackupEntry
    from drkit.health.doctor import forged_verdicts
    from drkit.ops.show import _verification

    def entry(name: str, verified: str) -> BackupEntry:
        return BackupEntry(name, datetime(2026, 12, 7, tzinfo=UTC), 1, "gzip", ["shop"], True,
                           verified, OK.verified_at)

    good, forged = entry("p/backup-20261206-030000.sql.gz.age", "ok"), entry(OK.name, FORGED)
    [check] = forged_verdicts([good, forged])
    assert (check.status, check.name) == ("CRITICAL", "forged verdicts")
    assert OK.name in check.detail and good.name not in check.detail
    assert "drkit verify" in check.fix and "rotate that SAS" in check.fix
    assert forged_verdicts([good]) == []
    assert _verification(forged).startswith("FORGED: tagged ok")
    assert "unchecked" in _verification(entry(OK.name, UNCHECKED))
