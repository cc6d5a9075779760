"""Resolve credential references (``secret:KEY``, ``env:NAME``) to values, inside drkit only.

A run has one resolver, ``settings.secrets``, so each secret store is asked once per run.
Values come back as ``SecretStr`` and are registered with :mod:`drkit.redact`, so a value
that leaks into a message or log line is masked there too.

Each scheme is a provider. Providers that talk to a cloud live in that cloud's adapter
package and are named here by import path, so this module, which every layer uses, imports
no adapter (the same registry idea as papermill's I/O handlers).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from drkit.errors import SecretError
from drkit.redact import register_secret

if TYPE_CHECKING:
    from drkit.config import Settings


class SecretProvider(Protocol):
    """Looks up one name of one scheme; raises SecretError with a fix when it cannot."""

    def lookup(self, name: str) -> str: ...


class EnvironmentSecrets:
    """``env:NAME``: an environment variable of the drkit process."""

    def __init__(self, settings: Settings) -> None:
        pass

    def lookup(self, name: str) -> str:
        try:
            return os.environ[name]
        except KeyError:
            raise SecretError(
                f"Environment variable {name} is not set.",
                "Export it before running drkit, or point the setting at the AWS secret.",
            ) from None


# scheme -> "module:class"; the class is built with the settings the first time it is used.
PROVIDERS: dict[str, str] = {
    "secret": "drkit.aws.secrets:SecretsManagerSecrets",
    "env": "drkit.secrets:EnvironmentSecrets",
}


class SecretResolver:
    """Looks references up; each provider is built once and caches what it fetched."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._providers: dict[str, SecretProvider] = {}

    def resolve(self, reference: str) -> SecretStr:
        value = self._lookup(reference)
        register_secret(value)
        return SecretStr(value)

    def value(self, value_or_reference: str) -> str:
        """A plain setting that may be given as a reference (e.g. the storage account name)."""
        if value_or_reference.startswith(tuple(f"{scheme}:" for scheme in PROVIDERS)):
            return self._lookup(value_or_reference)
        return value_or_reference

    def provider(self, scheme: str) -> SecretProvider:
        if scheme not in self._providers:
            module, _, name = PROVIDERS[scheme].partition(":")
            self._providers[scheme] = getattr(importlib.import_module(module), name)(
                self.settings)
        return self._providers[scheme]

    def _lookup(self, reference: str) -> str:
        scheme, _, name = reference.partition(":")
        if scheme not in PROVIDERS:
            raise SecretError(f"{reference.split(':')[0]!r} is not a kind of secret reference.",
                              f"Write one of: {', '.join(s + ':NAME' for s in PROVIDERS)}.")
        return self.provider(scheme).lookup(name)
