"""drkit's one settings model: a YAML file, overridden by ``DRKIT_*`` environment variables.

Credentials never live in the file. A credential field holds a *reference*:

- ``secret:KEY``  the key ``KEY`` of the JSON secret ``aws.secret_id`` in AWS Secrets Manager
  (the seed's keys: ``rds_password``, ``azure_storage_account``, ``azure_storage_key``, ...);
- ``keyvault:NAME`` the secret ``NAME`` in the Azure Key Vault ``azure.key_vault_url``
  (read with the same Azure login as Flexible Server control: it answers when AWS is down);
- ``env:NAME``    the environment variable ``NAME``;
- ``file:PATH``   the contents of the file ``PATH`` (absolute, readable by its owner only:
  a mounted credential, as systemd's ``LoadCredential`` or a Kubernetes secret gives one).

A field may list references in order, ``[secret:rds_password, keyvault:rds-password]``: the
first that answers wins, and a store that does not answer within ``secret_timeout_seconds``
is passed over (and not asked again in that run).

Nested fields are overridden with a double underscore: ``DRKIT_SOURCE__HOST=db.internal``.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from drkit.agekeys import age_recipient, identity_reference
from drkit.errors import ConfigError
from drkit.redact import find_secrets

CONFIG_ENV = "DRKIT_CONFIG"
_REF = re.compile(r"^(?:(?:secret|env):[A-Za-z0-9_.\-/]+|keyvault:[0-9A-Za-z-]{1,127}"
                  r"|file:/[^\n]+)$")
_SENSITIVE_FIELDS = ("password", "key", "identity")
_SCHEMES = ("secret:", "env:", "keyvault:", "file:")


def _references(value: str | list[str]) -> str | list[str]:
    for reference in [value] if isinstance(value, str) else value or [""]:
        if reference.startswith("file:") and not reference.startswith("file:/"):
            raise ValueError(f"{reference!r}: a file: reference needs an absolute path, "
                             "e.g. file:/run/credentials/drkit/rds-password")
        if not _REF.match(reference):
            raise ValueError(
                "expected a reference 'secret:KEY' (a key of the AWS secret), 'keyvault:NAME' "
                "(an Azure Key Vault secret), 'env:NAME' or 'file:/PATH', or a list of them; "
                "secret values are not accepted inline")
    return value


def _value_or_references(value: str | list[str]) -> str | list[str]:
    if isinstance(value, list) or value.startswith(_SCHEMES):
        return _references(value)
    return value


def is_reference(value: str | list[str]) -> bool:
    return isinstance(value, list) or value.startswith(_SCHEMES)


def references(value: str | list[str]) -> list[str]:
    """A setting's references in the order they are tried."""
    return [value] if isinstance(value, str) else list(value)


# A credential: only references, never the value itself.
SecretRef = Annotated[str | list[str], AfterValidator(_references)]
# A plain setting that may also be looked up the same way (the seed keeps the storage
# account name in the secret).
ValueRef = Annotated[str | list[str], AfterValidator(_value_or_references)]


def _identifier(name: str) -> str:
    # MySQL: up to 64 characters, any but NUL, not ending in a space. Control characters
    # (a newline, a tab, an escape) MySQL takes, but no one means them: a name that holds
    # one was pasted or typed wrong, and would make a database no one can name again. So
    # are invisible ones (Unicode's format characters: a zero-width space, a joiner, a
    # byte-order mark, a bidi override, a soft hyphen): 'shop' and 'shop<U+200B>' read
    # the same everywhere drkit or MySQL prints them, and are two databases.
    if not 1 <= len(name) <= 64 or name.endswith(" ") or any(
            ord(c) > 0xFFFF or unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise ValueError("a database name has 1 to 64 characters up to U+FFFF (no emoji), "
                         "no control or invisible characters (tab, zero-width space), no "
                         "trailing space")
    # A full-width letter (an input method's 'ｓ') or a ligature stands in for a plain one: it
    # names a database that is not the one meant, found missing only once the run started.
    for character in name:
        plain = unicodedata.normalize("NFKC", character)
        if not character.isascii() and plain and plain.isascii():
            raise ValueError(f"{character!r} (U+{ord(character):04X}) in a database name is a "
                             f"lookalike of {plain!r}: type the name in plain characters")
    return name


Identifier = Annotated[str, AfterValidator(_identifier)]


# TLS to a MySQL server, as MySQL's --ssl-mode names it: verify the certificate and that
# it names the host (the default), only the certificate, encrypt without verifying, or not.
TlsMode = Literal["verify-identity", "verify-ca", "required", "disabled"]

# Which side of the estate a config serves (docs/immutability.md): the backup host in AWS
# (backup, binlog stream), which should hold a storage credential that cannot delete; the
# Azure side (prune, verify, drills, failover, maintenance page); or both, the seed's one
# config with the account key everywhere.
Side = Literal["backup", "azure", "both"]

# How backups are compressed (backup.compression, backup --compression).
Compression = Literal["gzip", "zstd"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsSettings(Section):
    region: str = "ap-northeast-2"
    secret_id: str | None = Field(
        None, description="Secrets Manager secret id or ARN holding the seed's JSON keys"
    )
    endpoint_url: str | None = Field(None, pattern=r"^https?://")
    profile: str | None = None
    credentials_file: Path | None = None


class SourceSettings(Section):
    """The production MySQL (AWS RDS)."""

    host: str
    port: int = Field(3306, ge=1, le=65535)
    user: str = "admin"
    password: SecretRef = "secret:rds_password"
    databases: list[Identifier] = Field(min_length=1)
    rds_instance_id: str | None = None
    tls: TlsMode = "verify-identity"
    ssl_ca: Path | None = Field(None, description="CA bundle: RDS's global-bundle.pem")
    connect_timeout: int = Field(10, ge=1)


class StorageSettings(Section):
    """Azure Blob Storage, where backups live."""

    account: ValueRef = "secret:azure_storage_account"
    auth: Literal["key", "aad", "sas"] = "key"
    key: SecretRef = "secret:azure_storage_key"
    sas: SecretRef | None = Field(
        None, description="with auth sas: the SAS token (account or container), e.g. "
                          "secret:azure_storage_sas; the backup side's, without d")
    endpoint: str | None = Field(
        None, pattern=r"^https?://", description="default https://ACCOUNT.blob.core.windows.net"
    )
    container: str = Field("mysql-backups", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    prefix: str = Field("backups/", pattern=r"^([^/]+/)*$")
    resource_group: str | None = Field(
        None, description="the account's resource group, to read its website endpoint from "
                          "Resource Manager; default azure.resource_group")
    retries: int = Field(3, ge=0, le=10, description="retries of a failed storage request, "
                         "2, 4, 8... s apart: a transient error passes, an outage is named "
                         "within about 20 s at 3")

    @model_validator(mode="after")
    def _sas_named(self) -> StorageSettings:
        if self.auth == "sas" and self.sas is None:
            raise ValueError("storage.auth is sas but storage.sas names no SAS token; set it "
                             "to a reference, e.g. secret:azure_storage_sas")
        return self


class TargetSettings(Section):
    """Where restores go: Azure Database for MySQL Flexible Server."""

    kind: Literal["azure", "mysql"] = "azure"
    host: str
    port: int = Field(3306, ge=1, le=65535)
    user: str
    password: SecretRef = "secret:azure_mysql_password"
    tls: TlsMode = "verify-identity"
    ssl_ca: Path | None = Field(None, description="CA bundle; Flexible Server's root is "
                                                  "DigiCert Global Root G2 (system bundle)")


class AzureSettings(Section):
    """Azure Resource Manager access, for the Flexible Server the failover restores into."""

    tenant_id: ValueRef = "secret:azure_tenant_id"
    subscription_id: ValueRef = "secret:azure_subscription_id"
    auth: Literal["default", "service-principal", "managed-identity", "cli"] = "default"
    client_id: str | None = None
    client_secret: SecretRef | None = None
    resource_group: str | None = None
    flexible_server: str | None = Field(None, description="unset: no server control")
    arm_endpoint: str = Field("https://management.azure.com", pattern=r"^https://")
    authority: str | None = Field(None, pattern=r"^https://",
                                  description="default: https://login.microsoftonline.com")
    ca_bundle: Path | None = None
    poll_seconds: float = Field(10, gt=0)
    start_timeout_seconds: int = Field(1800, ge=1)
    restore_sku: str | None = Field(None, description="e.g. Standard_D4ds_v4 for the restore")
    restore_sku_tier: Literal["Burstable", "GeneralPurpose", "MemoryOptimized"] | None = None
    restore_storage_gb: int | None = Field(None, ge=20)
    website_url: str | None = Field(None, description="static website URL of the storage "
                                                      "account (maintenance page)")
    # $web is where Azure serves an account's static website from; the page's place in it
    # is the operator's choice (a site may serve more than the DR page) and each test's own.
    website_page: str = Field("index.html", pattern=r"^([^/]+/)*[^/]+\.html$",
                              description="the maintenance page's blob in the $web container; "
                                          "index.html is the website's root")
    key_vault_url: str | None = Field(None, pattern=r"^https://",
                                      description="for keyvault: references, e.g. "
                                                  "https://drkit-dr.vault.azure.net")
    key_vault_proxy: str | None = Field(None, pattern=r"^https?://",
                                        description="HTTPS proxy to the vault; default: the "
                                                    "HTTPS_PROXY environment")

    @model_validator(mode="after")
    def _login_not_from_key_vault(self) -> AzureSettings:
        # Key Vault is read with this login: the login cannot come from Key Vault.
        for name in ("tenant_id", "client_secret"):
            value = getattr(self, name)
            if value is not None and is_reference(value) and any(
                    r.startswith("keyvault:") for r in references(value)):
                raise ValueError(f"azure.{name} cannot be a keyvault: reference, because "
                                 "Key Vault is read with the Azure login it is part of")
        return self


class BackupSettings(Section):
    compression: Compression = "gzip"
    gzip_level: int = Field(6, ge=1, le=9)
    zstd_level: int = Field(3, ge=1, le=19)
    block_size_mib: int = Field(8, ge=1, le=4000)
    local_copy_dir: Path | None = None
    local_copy_max_age_hours: float = Field(24, gt=0)
    state_dir: Path = Path("~/.local/state/drkit")
    log_file: Path | None = None
    locks: Literal["local", "blob"] = Field(
        "local", description="one backup per database, one --replace per target database: "
        "local: a lock file under state_dir (this host); blob: a lease in the backup "
        "container, held across hosts (the fleet's default)")


class RestoreSettings(Section):
    # 3 on a 2-core target measured 5% faster than 2 (a connection waiting on its redo
    # log flush leaves a core to another) and 4 slower (bench/restore_bench.py).
    workers: int = Field(3, ge=1, le=16, description="parallel connections loading rows")
    azure_compat: Literal["auto", "on", "off"] = Field(
        "auto", description="rewrite for Azure Flexible Server; auto: when target.kind is azure")
    definer: Literal["strip", "admin"] = "strip"
    # --replace swaps the proven copy in with RENAME TABLE, which waits for other sessions'
    # transactions on the old tables; after this long it gives up and leaves them as they were.
    swap_lock_wait_seconds: int = Field(
        60, ge=1, le=86400, description="how long --replace waits for locks on the old tables")


class BinlogSettings(Section):
    """The binlog archive (``drkit binlog stream``), for point-in-time recovery."""

    enabled: bool = Field(False, description="this environment keeps a binlog archive: "
                                             "doctor checks it, alarms watch its lag")
    prefix: str = Field("binlogs/", pattern=r"^([^/]+/)+$",
                        description="under the backup container")
    runner: Literal["cron", "systemd"] = Field(
        "cron", description="cron: drkit schedule adds 'binlog stream --once' every minute; "
                            "systemd: the unit drkit schedule unit prints follows the log")
    flush_seconds: float = Field(30, gt=0, le=3600,
                                 description="what was read is in Azure at most this late")
    # The id drkit's dump session shows the source, as a replica's server_id: it must
    # differ from every real replica's.
    replica_id: int = Field(4_150_000_001, ge=1, le=2**32 - 1)
    heartbeat: bool = Field(False, description="write drkit_heartbeat.beat on the source, so "
                                               "a point-in-time restore proves the time it "
                                               "reached")
    heartbeat_seconds: float = Field(5, gt=0, le=300)
    snapshot_lock_seconds: float = Field(
        5, ge=0, le=60, description="where the source cannot give a dump's binlog "
        "coordinates inside its snapshot (MySQL 8): writes to the dumped tables wait at most "
        "this long while the snapshot starts (LOCK TABLES ... READ); 0: never lock, and "
        "such backups are no point-in-time base")
    lag_alarm_seconds: int = Field(300, ge=60, description="doctor warns and the alarm fires "
                                                          "when the archive is this far behind")

    @property
    def beat_interval(self) -> float:
        """How far apart the heartbeats in the archive are: a follower (systemd) beats every
        ``heartbeat_seconds``; cron's ``--once`` beats once a run, every minute."""
        return self.heartbeat_seconds if self.runner == "systemd" else 60.0


class EncryptionSettings(Section):
    """age public-key encryption of backups (drkit.stream.encryption)."""

    recipients: list[Annotated[str, AfterValidator(age_recipient)]] = Field(
        [], description="age1... keys new backups are encrypted to; none: not encrypted")
    identity: Annotated[SecretRef, AfterValidator(identity_reference)] | None = Field(
        None, description="keyvault:NAME or file:/PATH of the AGE-SECRET-KEY-1... that opens "
                          "backups, where they are read back (never the backup host)")


class StandbySettings(Section):
    """``drkit standby``: the target kept current from the binlog archive."""

    poll_seconds: float = Field(10, gt=0, le=600, description="standby follow: how long "
                                "it waits before reading the archive again once caught up")
    max_lag_minutes: float = Field(15, gt=0, description="how far (source time) the standby "
                                   "may be behind the archive's newest event")
    stop_server_after: bool = Field(False, description="pilot light: follow --once starts the "
                                    "stopped Flexible Server, catches up and stops it again")


class MetricsSettings(Section):
    enabled: bool = True
    namespace: str = "drkit/Backup"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRKIT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    environment: str = "dev"
    side: Side = Field("both", description="backup: the backup host (a storage credential "
                       "without delete); azure: prune, drills, failover; both: one config "
                       "for everything (doctor warns)")
    aws: AwsSettings = AwsSettings()
    source: SourceSettings
    storage: StorageSettings = StorageSettings()
    target: TargetSettings | None = None
    azure: AzureSettings = AzureSettings()
    backup: BackupSettings = BackupSettings()
    restore: RestoreSettings = RestoreSettings()
    metrics: MetricsSettings = MetricsSettings()
    binlog: BinlogSettings = BinlogSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    standby: StandbySettings = StandbySettings()
    secret_timeout_seconds: float = Field(
        5, gt=0, le=120, description="how long one secret store may take before the next "
                                     "reference is tried")
    runbooks: Path | None = Field(None, description="a folder of one's own runbook YAML files "
                                                    "(default: the ones drkit ships)")
    # The run's drkit.secrets.SecretResolver, made on first use by drkit.secrets.resolver_for
    # and kept with the settings so every adapter of the run shares it (typed Any: the
    # resolver is built on this module, not this module on it).
    _resolver: Any = PrivateAttr(None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file: cron and CI override one field without a new file.
        return env_settings, init_settings


def load_settings(path: str | os.PathLike[str] | None = None,
                  named_in: str = f"--config or {CONFIG_ENV}") -> Settings:
    """Load the config file (``path``, else ``$DRKIT_CONFIG``) and the environment overrides.
    ``named_in``: where ``path`` was given, what to correct when it cannot be read."""
    path = path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    where = "the environment"
    if path:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read config file {path}: {exc.strerror}.",
                f"Name an existing file in {named_in}.",
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"Config file {path} is not UTF-8 text.") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"Config file {path} is not valid YAML{line}.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of settings.")
    if not path and not any(key.upper().startswith("DRKIT_SOURCE") for key in os.environ):
        raise ConfigError("No configuration: pass --config FILE or set DRKIT_CONFIG "
                          "(drkit sandbox up writes one).")
    _refuse_unknown_sections(os.environ)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"Config from {where} is invalid: {describe_errors(exc)}.") from None
    except SettingsError as exc:  # an environment override that is not valid JSON
        raise _unparsable_override(str(exc), os.environ) from None
    _warn_about_unread_variables(settings, os.environ)
    if path and settings.runbooks is not None and not settings.runbooks.is_absolute() \
            and "DRKIT_RUNBOOKS" not in os.environ:
        # A folder the file names is relative to the file, as cron runs from elsewhere.
        settings.runbooks = Path(path).absolute().parent / settings.runbooks
    return settings


def _unparsable_override(error: str, environ: Mapping[str, str]) -> ConfigError:
    """pydantic-settings names the section (``source``) whose override is not JSON; the
    variable is mostly one of its fields' (DRKIT_SOURCE__DATABASES=shop: a list is JSON)."""
    field = re.search(r'field "(\w+)"', error)
    section = f"DRKIT_{field.group(1).upper()}" if field else None
    fields = sorted(v for v in environ if section and v.upper().startswith(section + "__"))
    variable = " or ".join(fields) or section or "a DRKIT_* variable"
    return ConfigError(f"The environment override {variable} cannot be parsed.",
                       "A list is written as JSON (DRKIT_SOURCE__DATABASES='[\"shop\"]'); a "
                       "section is overridden field by field (DRKIT_SOURCE__HOST=...), or with "
                       "a JSON object.")


def _refuse_unknown_sections(environ: Mapping[str, str]) -> None:
    """A DRKIT_SECTION__FIELD variable whose SECTION is none of the config's is refused, as an
    unknown FIELD is (pydantic-settings would ignore it: a typo would change nothing). Only
    names with ``__`` are settings for certain: DRKIT_CONFIG, DRKIT_FLEET, DRKIT_DEBUG,
    DRKIT_FAILPOINT and a secret an ``env:`` reference reads have none."""
    sections = sorted(_section_models())
    for variable in sorted(environ):
        section, nested, _ = variable.upper().removeprefix("DRKIT_").partition("__")
        if variable.upper().startswith("DRKIT_") and nested and section.lower() not in sections:
            raise ConfigError(f"The environment variable {variable} names no section of the "
                              f"config ({', '.join(sections)}).",
                              "Correct its name, or unset it.")


# DRKIT_* variables that are drkit's but no setting (none has a double underscore either).
_PROGRAM_VARIABLES = frozenset({CONFIG_ENV, "DRKIT_FLEET", "DRKIT_DEBUG", "DRKIT_FAILPOINT",
                                "DRKIT_FAILPOINT_LOG"})
_warned_variables: set[str] = set()  # each said once a process (a fleet loads many configs)


def _warn_about_unread_variables(settings: Settings, environ: Mapping[str, str]) -> None:
    """Say on stderr, once, that a variable shaped like an override but without the double
    underscore (DRKIT_BACKUP_STATE_DIR) is ignored, with the spelling meant if one is close.
    Never fails: it may be a variable of someone else's that only looks like drkit's."""
    spellings = _override_spellings()
    referenced = {reference.removeprefix("env:").upper()
                  for reference in _env_references(settings.model_dump())}
    sections = tuple(f"DRKIT_{name.upper()}_" for name in _section_models())
    for variable in sorted(environ):
        name = variable.upper()
        if (not name.startswith("DRKIT_") or "__" in name or name in spellings
                or name in _PROGRAM_VARIABLES or name in referenced
                or variable in _warned_variables):
            continue
        # DRKIT_CONFG: drkit's own variables are misspelt too, and then another config
        # (the default path's) is read without a word.
        meant = _meant_spelling(name, spellings | _PROGRAM_VARIABLES)
        if meant is None and not name.startswith(sections):
            continue  # DRKIT_TEST_PASSWORD: not shaped like a setting
        _warned_variables.add(variable)
        guess = f"did you mean {meant}? " if meant else ""
        rule = "" if meant in _PROGRAM_VARIABLES else (
            "a section and its field are joined by two underscores, as in DRKIT_SOURCE__HOST")
        print(f"drkit: warning: the environment variable {variable} is ignored: it names no "
              f"setting ({guess}{rule}".rstrip() + ").", file=sys.stderr)


def _section_models() -> dict[str, type[BaseModel]]:
    """The config's sections by name, each with its model."""
    return {name: model for name, field in Settings.model_fields.items()
            for model in (field.annotation, *get_args(field.annotation))
            if isinstance(model, type) and issubclass(model, BaseModel)}


def _override_spellings() -> set[str]:
    """Every variable that overrides a setting: DRKIT_FIELD and DRKIT_SECTION__FIELD."""
    top = {f"DRKIT_{name.upper()}" for name in Settings.model_fields}
    return top | {f"DRKIT_{section.upper()}__{field.upper()}"
                  for section, model in _section_models().items()
                  for field in model.model_fields}


def _meant_spelling(name: str, spellings: set[str]) -> str | None:
    """The override ``name`` most likely stands for: the same letters with the underscores
    put right (DRKIT_BACKUPSTATE_DIR), else a close typo."""
    letters = name.replace("_", "")
    same = sorted(s for s in spellings if s.replace("_", "") == letters)
    # Compared without the prefix every spelling shares, which would make any two close.
    bare = {s.removeprefix("DRKIT_"): s for s in spellings}
    close = difflib.get_close_matches(name.removeprefix("DRKIT_"), sorted(bare), n=1,
                                      cutoff=0.85)
    return (same or [bare[c] for c in close] or [None])[0]


def _env_references(value: Any) -> list[str]:
    """The ``env:NAME`` references anywhere in a dumped config: variables it reads itself."""
    if isinstance(value, dict):
        return [r for item in value.values() for r in _env_references(item)]
    if isinstance(value, list):
        return [r for item in value for r in _env_references(item)]
    return [value] if isinstance(value, str) and value.startswith("env:") else []


def _override_variable(loc: tuple) -> str | None:
    """The DRKIT_* variable that set the field at ``loc`` (or its section), if one did."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    for depth in range(len(names), 0, -1):
        variable = "DRKIT_" + "__".join(names[:depth]).upper()
        if any(key.upper() == variable for key in os.environ):
            return variable
    return None


def describe_errors(exc: ValidationError) -> str:
    """One clause per bad field: its dotted name, what is expected, and what was given."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "(top level)"
        # A value from the environment is named by its variable: that is where to fix it.
        variable = _override_variable(error["loc"])
        if variable is not None:
            field = f"{field} (from {variable})"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        given = error.get("input")
        # A secret pasted where a public value belongs (an age identity as a recipient).
        sensitive = any(word in field for word in _SENSITIVE_FIELDS) or \
            bool(find_secrets(str(given), ()))
        shown = error["type"] not in ("missing", "extra_forbidden") and given is not None
        if shown and not sensitive:
            message += f" (got {given!r})"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
