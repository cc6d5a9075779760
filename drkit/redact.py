"""Process-wide registry of secret values, so no text drkit emits can carry one.

Every secret drkit resolves is registered here the moment it is read; logs, error
messages and JSON output pass through :func:`redact` on their way out. Defence in depth:
the first line is that secrets are ``SecretStr`` and never formatted at all.
"""

from __future__ import annotations

import threading

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
