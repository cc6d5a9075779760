"""Resolve credential references (``secret:KEY``, ``env:NAME``) to values, inside drkit only.

Values come back as ``SecretStr`` and are registered with :mod:`drkit.redact`, so a value
that leaks into a message or log line is masked there too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from drkit import aws
from drkit.config import AwsSettings, Settings
from drkit.errors import SecretError
from drkit.redact import register_secret

# Keys of the seed's secret that name things rather than grant access; they may be shown.
PUBLIC_KEYS = frozenset({"azure_storage_account", "azure_tenant_id", "azure_subscription_id"})


class SecretResolver:
    """Looks references up; reads the AWS secret at most once per resolver."""

    def __init__(self, settings: Settings | AwsSettings) -> None:
        self.aws = settings.aws if isinstance(settings, Settings) else settings
        self._secret_json: dict[str, str] | None = None
        self._providers: dict[str, Callable[[str], str]] = {
            "secret": self._from_secrets_manager,
            "env": self._from_environment,
        }

    def resolve(self, reference: str) -> SecretStr:
        value = self._lookup(reference)
        register_secret(value)
        return SecretStr(value)

    def value(self, value_or_reference: str) -> str:
        """A plain setting that may be given as a reference (e.g. the storage account name)."""
        if value_or_reference.startswith(tuple(f"{s}:" for s in self._providers)):
            return self._lookup(value_or_reference)
        return value_or_reference

    def secret_keys(self) -> set[str]:
        """The keys the AWS secret holds (their values stay unread by the caller)."""
        return set(self._load_secret())

    def _lookup(self, reference: str) -> str:
        scheme, _, name = reference.partition(":")
        return self._providers[scheme](name)

    def _from_environment(self, name: str) -> str:
        try:
            return os.environ[name]
        except KeyError:
            raise SecretError(
                f"Environment variable {name} is not set.",
                "Export it before running drkit, or point the setting at the AWS secret.",
            ) from None

    def _from_secrets_manager(self, key: str) -> str:
        secret = self._load_secret()
        if key not in secret:
            raise SecretError(
                f"Secret {self.aws.secret_id} has no key {key!r}.",
                f"Add {key!r} to the secret's JSON (keys present: {', '.join(sorted(secret))}).",
            )
        return str(secret[key])

    def _load_secret(self) -> dict[str, str]:
        if self._secret_json is not None:
            return self._secret_json
        secret_id = self.aws.secret_id
        if not secret_id:
            raise SecretError(
                "A setting refers to 'secret:...' but aws.secret_id is not configured.",
                "Set aws.secret_id to the Secrets Manager secret (e.g. backup-credentials-prod).",
            )
        try:
            response = aws.client(self.aws, "secretsmanager").get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            raise _secret_client_error(exc, secret_id, self.aws.region) from None
        except BotoCoreError as exc:
            raise SecretError(
                f"Cannot reach AWS Secrets Manager in {self.aws.region}: {exc}.",
                "Check network access to the Secrets Manager endpoint and the AWS credentials.",
            ) from None
        try:
            parsed = json.loads(response.get("SecretString") or "")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise SecretError(
                f"Secret {secret_id} does not hold a JSON object.",
                "Store the credentials as JSON keys, as the seed does "
                "(rds_password, azure_storage_account, azure_storage_key, ...).",
            )
        for key, value in parsed.items():
            if key not in PUBLIC_KEYS:
                register_secret(str(value))
        self._secret_json = parsed
        return parsed


def _secret_client_error(exc: ClientError, secret_id: str, region: str) -> SecretError:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
        return SecretError(
            f"AWS denied reading secret {secret_id} ({code}).",
            "Grant the instance role secretsmanager:GetSecretValue on that secret "
            "(check the IAM role and instance profile).",
        )
    if code == "ResourceNotFoundException":
        return SecretError(
            f"Secret {secret_id} does not exist in {region}.",
            "Check aws.secret_id and aws.region.",
        )
    return SecretError(f"Reading secret {secret_id} failed: {code or exc}.")
