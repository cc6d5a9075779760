"""age encryption as a byte stage (drkit.stream.encryption), without services: what it
writes is an age file the age tool opens, what it reads back is authenticated, and every
way it cannot open a file is one clear error."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
import zlib

import pyrage
import pytest
from pydantic import SecretStr
from pyrage import x25519

from drkit.config import load_settings
from drkit.errors import BackupKeyError, ConfigError
from drkit.stream.compression import CODECS, CorruptStreamError, TruncatedStreamError
from drkit.stream.encryption import HEADER, Keyring, decrypted, recipients, sealed


class _Resolver:
    """Stands in for settings.secrets: one reference, one value."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def resolve(self, reference: str | list[str]) -> SecretStr:
        assert isinstance(reference, str)
        self.asked.append(reference)
        return SecretStr(self.values[reference])


def _keyring(identity: x25519.Identity) -> Keyring:
    return Keyring("file:/key", _Resolver({"file:/key": str(identity) + "\n"}))


def _sealed_gzip(data: bytes, to: list[x25519.Recipient]) -> bytes:
    compressor = sealed(CODECS["gzip"].compressor(6), to)
    out = []
    for start in range(0, len(data), 100_000):  # pushed in pieces, as a dump arrives
        out += compressor.compress(data[start:start + 100_000])
    return b"".join(out + compressor.flush())


def _sql(size: int) -> bytes:
    rows = b"".join(b"(%d,'%s')," % (n, os.urandom(8).hex().encode()) for n in range(size // 30))
    return b"INSERT INTO t VALUES " + rows + b"(0,'');\n"


def test_a_sealed_backup_is_an_age_file_that_opens_with_any_recipients_identity():
    restore, break_glass = x25519.Identity.generate(), x25519.Identity.generate()
    data = _sql(6 * 1024 * 1024)
    sealed_bytes = _sealed_gzip(data, recipients([str(restore.to_public()),
                                                  str(break_glass.to_public())]))
    assert sealed_bytes.startswith(HEADER)
    assert b"INSERT" not in sealed_bytes
    with pytest.raises((OSError, EOFError, zlib.error)):  # no gzip stream where the data begins
        gzip.decompress(sealed_bytes[sealed_bytes.index(b"\n---"):].split(b"\n", 2)[2])
    for identity in (restore, break_glass):
        plain = b"".join(decrypted("b.sql.gz.age", [sealed_bytes[i:i + 70_000] for i in
                                                    range(0, len(sealed_bytes), 70_000)],
                                   _keyring(identity)))
        assert gzip.decompress(plain) == data


def test_without_recipients_the_compressor_is_left_as_it_is():
    compressor = CODECS["gzip"].compressor(6)
    assert sealed(compressor, []) is compressor


@pytest.mark.skipif(shutil.which("age") is None, reason="Debian's age tool (install.sh)")
def test_the_age_tool_opens_what_drkit_sealed(tmp_path):
    identity = x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    data = _sql(200_000)
    opened = subprocess.run(["age", "-d", "-i", str(key)], check=True, capture_output=True,
                            input=_sealed_gzip(data, [identity.to_public()])).stdout
    assert gzip.decompress(opened) == data


def test_the_wrong_identity_is_one_sentence_with_its_own_exit_code():
    sealed_bytes = pyrage.encrypt(b"x" * 1000, [x25519.Identity.generate().to_public()])
    with pytest.raises(BackupKeyError) as caught:
        list(decrypted("b.sql.gz.age", [sealed_bytes], _keyring(x25519.Identity.generate())))
    assert caught.value.exit_code == BackupKeyError.exit_code
    assert "not encrypted to the identity file:/key" in caught.value.message


def test_no_identity_configured_refuses_before_reading_anything():
    read = []

    def chunks():
        read.append(1)
        yield b"age-encryption.org/v1\n"

    with pytest.raises(BackupKeyError, match="names no identity"):
        list(decrypted("b.sql.gz.age", chunks(), Keyring()))
    assert read == []


def test_an_identity_that_is_not_age_names_the_reference_not_the_value():
    keyring = Keyring("keyvault:backup-identity",
                      _Resolver({"keyvault:backup-identity": "hunter2-not-a-key"}))
    with pytest.raises(BackupKeyError) as caught:
        list(decrypted("b.sql.gz.age", [b""], keyring))
    assert "keyvault:backup-identity is not an age X25519 identity" in caught.value.message
    assert "hunter2" not in str(caught.value)


def test_a_truncated_or_damaged_file_is_told_apart():
    identity = x25519.Identity.generate()
    sealed_bytes = pyrage.encrypt(os.urandom(300_000), [identity.to_public()])
    with pytest.raises(TruncatedStreamError):
        list(decrypted("b", [sealed_bytes[:200_000]], _keyring(identity)))
    damaged = bytearray(sealed_bytes)
    damaged[1000] ^= 1
    with pytest.raises(CorruptStreamError):
        list(decrypted("b", [bytes(damaged)], _keyring(identity)))
    with pytest.raises(CorruptStreamError):  # plaintext where an age file should be
        list(decrypted("b", [gzip.compress(b"-- MySQL dump")], _keyring(identity)))


def test_what_the_download_raised_comes_through_as_it_is():
    identity = x25519.Identity.generate()
    sealed_bytes = pyrage.encrypt(os.urandom(300_000), [identity.to_public()])

    def chunks():
        yield sealed_bytes[:100_000]
        raise ConnectionResetError("the storage went away")

    with pytest.raises(ConnectionResetError, match="went away"):
        list(decrypted("b", chunks(), _keyring(identity)))


def test_a_reader_that_stops_early_ends_the_decryption_thread():
    identity = x25519.Identity.generate()
    sealed_bytes = pyrage.encrypt(os.urandom(8 * 1024 * 1024), [identity.to_public()])
    pieces = decrypted("b", [sealed_bytes[i:i + 65536] for i in
                             range(0, len(sealed_bytes), 65536)], _keyring(identity))
    next(pieces)
    pieces.close()
    assert not [t for t in threading.enumerate() if t.name == "age-decrypt"]


def test_memory_stays_bounded_while_the_reader_waits():
    """pyrage runs ahead of a slow reader by a few pieces only, not the whole file."""
    identity = x25519.Identity.generate()
    size = 32 * 1024 * 1024
    sealed_bytes = pyrage.encrypt(bytes(size), [identity.to_public()])
    pulled = []

    def chunks():
        for start in range(0, len(sealed_bytes), 65536):
            pulled.append(start)
            yield sealed_bytes[start:start + 65536]

    pieces = decrypted("b", chunks(), _keyring(identity))
    next(pieces)
    ahead = max(pulled)
    pieces.close()
    assert ahead < 12 * 1024 * 1024  # 4 pieces of 1 MiB queued, a few in hand


def _config(tmp_path, recipients_yaml: str, identity: str = "") -> ConfigError | None:
    path = tmp_path / "drkit.yaml"
    path.write_text("source: {host: db, databases: [shop]}\n"
                    f"encryption: {{recipients: {recipients_yaml}{identity}}}\n")
    try:
        load_settings(path)
    except ConfigError as error:
        return error
    return None


def test_a_malformed_recipient_refuses_the_config_naming_it(tmp_path):
    good = str(x25519.Identity.generate().to_public())
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")  # a bech32 checksum that fails
    assert _config(tmp_path, f"[{good}]") is None
    for wrong in (bad, "age1short", "ssh-ed25519 AAAA"):
        error = _config(tmp_path, f"[{good}, '{wrong}']")
        assert error is not None and error.exit_code == 3
        assert "encryption.recipients.1" in error.message and wrong in error.message


def test_the_identity_is_a_reference_and_never_an_aws_secret(tmp_path):
    good = str(x25519.Identity.generate().to_public())
    assert _config(tmp_path, f"[{good}]", ", identity: keyvault:backup-identity") is None
    error = _config(tmp_path, f"[{good}]", ", identity: secret:backup_identity")
    assert error is not None and "readable from the AWS side" in error.message
    error = _config(tmp_path, f"[{good}]", f", identity: {x25519.Identity.generate()}")
    assert error is not None and "AGE-SECRET-KEY" not in error.message


def test_a_failed_backup_closing_the_sealing_compressor_ends_its_thread():
    compressor = sealed(CODECS["gzip"].compressor(6), [x25519.Identity.generate().to_public()])
    compressor.compress(_sql(9 * 1024 * 1024))  # members handed to pyrage, none finished
    compressor.close()
    assert not [t for t in threading.enumerate() if t.name == "age-encrypt"]


def test_an_identity_file_as_age_keygen_writes_it_opens_the_backup():
    identity = x25519.Identity.generate()
    keygen_file = (f"# created: 2026-12-07T05:00:20Z\n# public key: {identity.to_public()}\n"
                   f"{identity}\n")
    keyring = Keyring("file:/key", _Resolver({"file:/key": keygen_file}))
    sealed_bytes = _sealed_gzip(b"SELECT 1;\n", [identity.to_public()])
    assert gzip.decompress(b"".join(decrypted("b.sql.gz.age", [sealed_bytes], keyring))) \
        == b"SELECT 1;\n"


def test_an_identity_pasted_as_a_recipient_is_not_repeated_in_the_error(tmp_path):
    good = str(x25519.Identity.generate().to_public())
    pasted = str(x25519.Identity.generate())
    error = _config(tmp_path, f"[{good}, '{pasted}']")
    assert error is not None and error.exit_code == 3
    assert "encryption.recipients.1" in error.message and pasted not in error.message
