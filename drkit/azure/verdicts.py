"""Verification verdicts the backup side cannot make: an HMAC over what a verify saw.

The backup host's SAS may write blobs and their index tags (it records its own ciphertext
check there), and AWS may be hostile: with only that SAS, an attacker can overwrite a
backup and tag it ``drkit_verified=ok`` bound to the new ETags. So the Azure side signs each
verdict it writes: HMAC-SHA256 over (blob name, blob ETag, manifest ETag, outcome,
verified-at) with a key derived (HKDF-SHA256) from its age identity, which only the Azure
side holds; the backup side has only the recipients (public keys). The signature tag names
the identity that signed (its recipient's fingerprint) so any identity the keyring reads
checks it: after a rotation, verdicts signed under the old identity hold while that
identity stays in the keyring (as it must, to read the backups encrypted to it).

Reading a verdict (:meth:`VerdictKeys.checked`): only ``ok`` makes drkit trust a backup,
so only ``ok`` needs the signature. Other outcomes (a failed check, the backup side's
``ciphertext-ok``) never make a backup count as verified and are read as they are.

- Where the identity is configured, an ``ok`` without a signature that checks is
  ``forged``: never verified, and doctor's CRITICAL; but one signed by an identity this
  keyring does not hold (a restore with the break-glass key, an identity rotated out) is
  ``unchecked``: nobody here can tell.
- Where no identity can be read (the backup side, or the Azure side with recipients but no
  identity), an ``ok`` is ``unchecked``: never verified.
- With encryption off (no recipients, no identity) there is no key: an unsigned ``ok`` is
  accepted, as before signing. Such a backup side writes plaintext a SAS holder reads and
  rewrites anyway; doctor warns about a backup side writing in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from drkit.stream.encryption import Keyring, fingerprint

SIGNATURE_TAG = "drkit_verified_sig"  # "<signer's recipient fingerprint>:<HMAC, hex>"
UNCHECKED = "unchecked"  # an "ok" this config holds no key to check
FORGED = "forged"  # an "ok" whose signature is missing or wrong where the key is held
_INFO = b"drkit verification verdict v1"
_SIGNATURE = re.compile(r"[0-9a-f]{16}:[0-9a-f]{64}")  # a signer's fingerprint, an HMAC

# "sign": the identity is held; "unchecked": no identity can be read here although backups
# are (or may be) encrypted; "unsigned": encryption is off, no key exists anywhere.
Mode = Literal["sign", "unchecked", "unsigned"]


@dataclass(frozen=True)
class Verdict:
    """What a verdict says, as it is signed."""

    name: str
    etag: str
    manifest_etag: str
    outcome: str
    verified_at: str

    def message(self) -> bytes:
        # JSON: unambiguous whatever a blob name holds.
        return json.dumps(["drkit-verdict-1", self.name, self.etag, self.manifest_etag,
                           self.outcome, self.verified_at], separators=(",", ":")).encode()


def signing_key(identity: str) -> bytes:
    """The verdict key of an age identity (``AGE-SECRET-KEY-1...``): HKDF-SHA256 of it, so
    the HMAC key reveals nothing of the identity and serves nothing else."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        identity.encode())


def signature(key: bytes, signer: str, verdict: Verdict) -> str:
    """The signature tag's value: the signer's fingerprint and the HMAC."""
    return f"{signer}:{hmac.new(key, verdict.message(), hashlib.sha256).hexdigest()}"


class VerdictKeys:
    """The verdict keys of a config, derived from its keyring when first needed (the
    identity is looked up only when a verdict is signed or an ``ok`` is read)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes] | None = None  # signer's fingerprint -> key

    @property
    def mode(self) -> Mode:
        if self.keyring.backup_side:
            return "unchecked"
        if self.keyring.reference is None:
            return "unchecked" if self.keyring.encrypting else "unsigned"
        return "sign"

    def keys(self) -> dict[str, bytes]:
        """Every identity's key, the first identity's (the one that signs) first."""
        if self._keys is None:
            self._keys = {fingerprint(str(identity.to_public())): signing_key(str(identity))
                          for identity in self.keyring.identities("a verification verdict")}
        return self._keys

    def sign(self, verdict: Verdict) -> str | None:
        """The signature tag's value for ``verdict``; None where this config holds no key."""
        if self.mode != "sign":
            return None
        signer, key = next(iter(self.keys().items()))
        return signature(key, signer, verdict)

    def checked(self, verdict: Verdict, signed: str | None) -> str:
        """What the recorded ``verdict`` counts as here, given its signature tag."""
        if verdict.outcome != "ok":
            return verdict.outcome  # never makes a backup count as verified
        mode = self.mode
        if mode == "unsigned":
            return "ok"
        if mode == "unchecked":
            return UNCHECKED
        signer, _, _ = (signed or "").partition(":")
        key = self.keys().get(signer)
        if key is not None and hmac.compare_digest(signed or "", signature(key, signer, verdict)):
            return "ok"
        if key is None and _SIGNATURE.fullmatch(signed or ""):
            # Signed by an identity this config does not hold (the break-glass key in use,
            # one rotated out): nobody here can tell, which is not a forgery.
            return UNCHECKED
        return FORGED
