"""Resolve credential references (``secret:KEY``, ``keyvault:NAME``, ``env:NAME``,
``file:PATH``) to values, inside drkit only.

A run has one resolver, :func:`resolver_for` its settings, so each secret store is asked
once per run. Values come back as ``SecretStr`` and are registered with :mod:`drkit.redact`,
so a value that leaks into a message or log line is masked there too. A setting may list
references: the first that answers wins. A store that cannot be reached (AWS on the day its
region is down) is remembered as such and not asked again in the run.

Each scheme is a provider. Providers that talk to a cloud live in that cloud's adapter
package and are named here by import path, so this module, which every layer uses, imports
no adapter (the same registry idea as papermill's I/O handlers).
"""

from __future__ import annotations

import importlib
import os
import stat
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from drkit.config import Settings, is_reference, references
from drkit.errors import SecretError, SecretStoreUnreachable
from drkit.redact import register_secret


class SecretProvider(Protocol):
    """Looks up one name of one scheme; raises SecretError with a fix when it cannot."""

    def lookup(self, name: str) -> str: ...


class EnvironmentSecrets:
    """``env:NAME``: an environment variable of the drkit process."""

    def __init__(self, settings: Settings) -> None:
        pass

    def lookup(self, name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise SecretError(
                f"Environment variable {name} is {'empty' if value == '' else 'not set'}.",
                "Export it before running drkit, or point the setting at the AWS secret.",
            )
        return value


class FileSecrets:
    """``file:PATH``: a file only its owner may read (a mounted credential)."""

    def __init__(self, settings: Settings) -> None:
        pass

    def lookup(self, name: str) -> str:
        path = Path(name)
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block the run
                raise SecretError(f"Secret file {path} is not a regular file; it was not "
                                  "read.", "Point the reference at a regular file.")
            if info.st_mode & 0o077:
                raise SecretError(f"Secret file {path} can be read by other users "
                                  f"(mode {stat.S_IMODE(info.st_mode):o}); it was not used.",
                                  f"Run: chmod 600 {path}")
            value = path.read_bytes().decode("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"Cannot read secret file {path} ({exc.strerror}).",
                              "Create it (readable by drkit's user only) or fix the path."
                              ) from None
        except UnicodeDecodeError:
            raise SecretError(f"Secret file {path} is not UTF-8 text.",
                              "Write the secret into it as text.") from None
        if not value:
            raise SecretError(f"Secret file {path} is empty.", "Write the secret into it.")
        return value


# scheme -> "module:class"; the class is built with the settings the first time it is used.
PROVIDERS: dict[str, str] = {
    "secret": "drkit.aws.secrets:SecretsManagerSecrets",
    "keyvault": "drkit.azure.keyvault:KeyVaultSecrets",
    "env": "drkit.secrets:EnvironmentSecrets",
    "file": "drkit.secrets:FileSecrets",
}


class SecretResolver:
    """Looks references up; each provider is built once and caches what it fetched."""

    def __init__(self, settings: Settings, without: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        self.without = without  # schemes not to ask (doctor --for failover: no "secret")
        self._providers: dict[str, SecretProvider] = {}
        self._unreachable: dict[str, SecretStoreUnreachable] = {}

    def resolve(self, reference: str | list[str]) -> SecretStr:
        value = self._first(references(reference))
        register_secret(value)
        return SecretStr(value)

    def value(self, value_or_reference: str | list[str]) -> str:
        """A plain setting that may be given as references (e.g. the storage account name)."""
        if is_reference(value_or_reference):
            return self._first(references(value_or_reference))
        return value_or_reference  # type: ignore[return-value]

    def answering(self, reference: str | list[str]) -> str:
        """Which of a setting's references answers (its value is fetched, not returned)."""
        failures = []
        for one in references(reference):
            try:
                self._lookup(one)
                return one
            except SecretError as error:
                failures.append((one, error))
        raise _none_answered(failures)

    def provider(self, scheme: str) -> SecretProvider:
        if scheme not in self._providers:
            module, _, name = PROVIDERS[scheme].partition(":")
            self._providers[scheme] = getattr(importlib.import_module(module), name)(
                self.settings)
        return self._providers[scheme]

    def _first(self, candidates: list[str]) -> str:
        failures = []
        for reference in candidates:
            try:
                return self._lookup(reference)
            except SecretError as error:
                failures.append((reference, error))
        raise _none_answered(failures)

    def _lookup(self, reference: str) -> str:
        scheme, _, name = reference.partition(":")
        if scheme not in PROVIDERS:
            raise SecretError(f"{reference.split(':')[0]!r} is not a kind of secret reference.",
                              f"Write one of: {', '.join(s + ':NAME' for s in PROVIDERS)}.")
        if scheme in self.without:
            raise SecretError(f"{reference} is not asked: {scheme}: references are left out "
                              "here.", "Add a reference that does not need it.")
        if scheme in self._unreachable:
            raise self._unreachable[scheme]
        try:
            return self.provider(scheme).lookup(name)
        except SecretStoreUnreachable as error:
            self._unreachable[scheme] = error
            raise


def resolver_for(settings: Settings) -> SecretResolver:
    """The run's one resolver of ``settings``: made the first time, then the same one, so
    each secret store is asked at most once per run."""
    if settings._resolver is None:
        settings._resolver = SecretResolver(settings)
    return settings._resolver


def without_schemes(settings: Settings, schemes: frozenset[str]) -> Settings:
    """A copy of ``settings`` whose resolver never asks ``schemes`` (doctor --for failover:
    no ``secret``, as if AWS were down)."""
    copy = settings.model_copy()
    copy._resolver = SecretResolver(copy, without=schemes)
    return copy


def _none_answered(failures: list[tuple[str, SecretError]]) -> SecretError:
    if len(failures) == 1:
        return failures[0][1]
    *_, (_, last) = failures
    unreachable = all(isinstance(e, SecretStoreUnreachable) for _, e in failures)
    return (SecretStoreUnreachable if unreachable else SecretError)(
        "No reference answered: " + "; ".join(f"{reference}: {error.message}"
                                              for reference, error in failures), last.fix)
