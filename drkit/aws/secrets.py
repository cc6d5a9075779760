"""``secret:KEY``: a key of the seed's JSON secret in AWS Secrets Manager."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.clients import boto_client
from drkit.errors import SecretError, SecretStoreUnreachable
from drkit.redact import register_secret

if TYPE_CHECKING:
    from drkit.config import Settings

# Keys of the seed's secret that name things rather than grant access; they may be shown.
PUBLIC_KEYS = frozenset({"azure_storage_account", "azure_tenant_id", "azure_subscription_id"})


class SecretsManagerSecrets:
    """Reads the secret ``aws.secret_id`` at most once and hands out its keys."""

    def __init__(self, settings: Settings) -> None:
        self.aws = settings.aws
        self.timeout = settings.secret_timeout_seconds
        self._secret_json: dict[str, str] | None = None

    def lookup(self, key: str) -> str:
        secret = self.load()
        if key not in secret:
            raise SecretError(
                f"Secret {self.aws.secret_id} has no key {key!r}.",
                f"Add {key!r} to the secret's JSON (keys present: {', '.join(sorted(secret))}).",
            )
        return str(secret[key])

    def load(self) -> dict[str, str]:
        """The whole secret (every value registered for redaction); fetched once."""
        if self._secret_json is not None:
            return self._secret_json
        secret_id = self.aws.secret_id
        if not secret_id:
            raise SecretError(
                "A setting refers to 'secret:...' but aws.secret_id is not configured.",
                "Set aws.secret_id to the Secrets Manager secret (e.g. backup-credentials-prod).",
            )
        try:
            response = boto_client(self.aws, "secretsmanager", self.timeout).get_secret_value(
                SecretId=secret_id)
        except ClientError as exc:
            raise _secret_client_error(exc, secret_id, self.aws.region) from None
        except BotoCoreError as exc:
            raise SecretStoreUnreachable(
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
