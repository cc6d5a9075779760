"""Process-wide registry of secret values, so no text drkit emits can carry one.

Every secret drkit resolves is registered here the moment it is read; logs, error
messages and JSON output pass through :func:`redact` on their way out. Defence in depth:
the first line is that secrets are ``SecretStr`` and never formatted at all. What drkit
publishes (audit records, the maintenance page) is also searched for secret-shaped text,
whoever's it is: :func:`find_secrets`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
# Short values (e.g. "1") would mask innocent text everywhere; real secrets are longer.
_MIN_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    if value and len(value) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value)


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: str) -> str:
    for secret in sorted(known_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


# Shapes of secrets that must never be published, whoever's they are.
SECRET_SHAPES = {
    "an Azure storage account key": re.compile(
        r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"),
    "an Azure connection string key": re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),
    "a SAS token": re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{16,}"),
    "an AWS secret access key": re.compile(
        r"(?i)(?:aws_secret_access_key|SecretAccessKey)[\"'\s:=]+[A-Za-z0-9/+=]{40}"),
    # A quoted literal after a password key (code such as password=ref.resolve() is fine).
    "a password": re.compile(
        r"(?i)\b(?:password|passwd|pwd)\\?[\"']?\s*[:=]\s*\\?[\"']"
        r"(?!secret:|env:|\*\*\*)[^\s\"'\\]{4,}\\?[\"']"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # The identity that opens every encrypted backup (age-keygen's bech32, upper case).
    "an age identity": re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
}


def find_secrets(text: str, secret_values: Iterable[str]) -> list[str]:
    """What kinds of secret ``text`` holds (never the secrets themselves)."""
    found = [f"{name} ({len(pattern.findall(text))}x)"
             for name, pattern in SECRET_SHAPES.items() if pattern.search(text)]
    if any(value and value in text for value in secret_values):
        found.append("a value of this run's secrets")
    return found
