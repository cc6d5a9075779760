"""A manifest's content digests, kept where only the identity reads them.

A plain sha256 of a small table's rows can be confirmed by guessing the rows (a flag, a
balance, a short list): the digest would leak what the encryption hides. So an encrypted
backup's manifest holds its tables' digests and its SQL stream's sha256 in
``encryption.digests``: one age file (base64) encrypted to the backup's own recipients, the
clear manifest saying ``sealed`` in their places. What compares them (verify, a restore's
proof, ``restore --check``, the failover) opens them first with the identity
(:func:`with_digests`); list, prune, doctor and the catalog need only what stays in clear.
Opening them is also doctor's proof that the identity opens the backup, without reading it.
"""

from __future__ import annotations

import base64
import json

from drkit.errors import BackupKeyError, ManifestMismatchError
from drkit.manifest import Manifest
from drkit.stream.compression import CorruptStreamError
from drkit.stream.encryption import Keyring, Sealer, fingerprint, opened

SEALED = "sealed"  # what the clear manifest holds in place of each digest
_KEY = "digests"  # in manifest.encryption: the sealed digests, base64


def sealed(manifest: Manifest, sealer: Sealer) -> Manifest:
    """``manifest`` with its content digests moved into an age file to ``sealer``'s
    recipients."""
    digests = {"sql_sha256": manifest.sql.sha256,
               "tables": {name: [entry.sha256, entry.unordered_digest]
                          for name, entry in manifest.tables.items()}}
    sealed_digests = sealer.seal(json.dumps(digests, separators=(",", ":")).encode())
    return manifest.model_copy(update={
        "sql": manifest.sql.model_copy(update={"sha256": SEALED}),
        "tables": {name: entry.model_copy(update={
            "sha256": SEALED,
            "unordered_digest": None if entry.unordered_digest is None else SEALED})
            for name, entry in manifest.tables.items()},
        "encryption": {**manifest.encryption,
                       _KEY: base64.b64encode(sealed_digests).decode("ascii")}})


def with_digests(manifest: Manifest, keyring: Keyring) -> Manifest:
    """``manifest`` with its content digests in place (opened with ``keyring``'s identity
    if they are sealed; as it is otherwise). Raises :class:`BackupKeyError` without an
    identity that opens them, :class:`ManifestMismatchError` if they are damaged: the
    manifest no longer says what the backup's content is (exit 33, as verify's finding)."""
    sealed_digests = manifest.encryption.get(_KEY)
    if sealed_digests is None:
        if manifest.sql.sha256 == SEALED:  # the clear part says sealed; the sealed is gone
            raise _damaged(manifest.name)
        return manifest
    what = f"backup {manifest.name}"
    try:
        digests = json.loads(opened(what, base64.b64decode(sealed_digests), keyring))
        return manifest.model_copy(update={
            "sql": manifest.sql.model_copy(update={"sha256": digests["sql_sha256"]}),
            "tables": {name: entry.model_copy(update={
                "sha256": digests["tables"][name][0],
                "unordered_digest": digests["tables"][name][1]})
                for name, entry in manifest.tables.items()}})
    except BackupKeyError:
        # A damaged stanza also reads as "no matching key": the identity is one of the
        # recipients the clear manifest names, so the age file is what is wrong, not the key.
        named = manifest.encryption.get("fingerprints") or \
            [fingerprint(r) for r in manifest.encryption.get("recipients", [])]
        if keyring.fingerprints(what) & set(named):
            raise _damaged(manifest.name) from None
        raise
    except (CorruptStreamError, ValueError, KeyError, TypeError, IndexError):
        raise _damaged(manifest.name) from None


def _damaged(name: str) -> ManifestMismatchError:
    return ManifestMismatchError(
        f"The sealed digests in backup {name}'s manifest (encryption.digests) are damaged "
        "or do not list its tables, so its content cannot be checked.",
        "Restore the manifest from its earlier blob version, or use another backup.")
