"""The config's age keys (``encryption``): a recipient's form, and where an identity may be.

Checked when the config loads (not when drkit.stream.encryption uses the keys): a malformed
recipient refuses every command, so a backup refuses before anything is written.
"""

from __future__ import annotations


def age_recipient(text: str) -> str:
    """An X25519 recipient (``age1...``), its checksum included; without pyrage none is
    accepted: configured encryption never falls back to none."""
    try:
        from pyrage import RecipientError, x25519
    except ImportError:
        raise ValueError("pyrage is not installed, so drkit cannot encrypt to it") from None
    try:
        x25519.Recipient.from_str(text)
    except RecipientError:
        raise ValueError("not an age X25519 recipient ('age1' and 58 more characters, as "
                         "age-keygen -y prints it)") from None
    return text


def identity_reference(value: str | list[str]) -> str | list[str]:
    """The identity is read where backups are read back, never from the AWS side: with it, an
    attacker in the AWS account would read every backup."""
    if any(r.startswith("secret:") for r in ([value] if isinstance(value, str) else value)):
        raise ValueError("must not be readable from the AWS side (a secret: reference): "
                         "keep it in Key Vault (keyvault:NAME) or a file (file:/PATH)")
    return value
