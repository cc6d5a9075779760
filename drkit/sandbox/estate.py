"""A local stand-in for the whole DR estate, on loopback, all state under one directory.

=========  ==========================================  ===============================
service    stands in for                               program
=========  ==========================================  ===============================
source     AWS RDS MySQL (the production database)     mariadbd
target     Azure Database for MySQL Flexible Server    mariadbd
azurite    Azure Blob Storage (account ``bloberry01``)  azurite-blob (npm ``azurite``)
moto       AWS Secrets Manager, CloudWatch, RDS API    moto_server (``moto[server]``)
=========  ==========================================  ===============================

``up`` is idempotent: services already running are kept, dead ones are restarted on their
old ports, and the seeding (users, demo database, container, secret) only adds what is
missing. Processes run in their own sessions so they outlive the ``drkit`` command; ``down``
stops exactly the processes recorded in ``sandbox.json`` and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from drkit.azure.credentials import BACKUP_SIDE_PERMISSIONS
from drkit.config import AwsSettings
from drkit.errors import ConfigError, SandboxError
from drkit.programs import find_program, require_extra
from drkit.sandbox import demodb
from drkit.sandbox.azure_control import IDENTITY_SECRET, VAULT_SECRETS, AzureControl
from drkit.sandbox.azure_standin import SANDBOX_TENANT
from drkit.sandbox.fleetfile import build_fleet_databases, write_fleet_file
from drkit.sandbox.services import (
    AWS_PROFILE,
    AWS_REGION,
    CONTAINER,
    DEFAULT_DIR,
    DEMO_DATABASE,
    RDS_INSTANCE_ID,
    SECRET_ID,
    SOURCE_USER,
    START_TIMEOUT,
    STOP_TIMEOUT,
    STORAGE_ACCOUNT,
    TARGET_USER,
    Azurite,
    Moto,
    SecondSource,
    Service,
    ServiceStatus,
    SourceDatabase,
    TargetDatabase,
    free_port,
    port_free,
    process_start_time,
    stat_fields,
)
from drkit.sandbox.tls import SandboxTls

# In start order: the Azure stand-in's seed reads nothing of the others.
SERVICES: tuple[type[Service], ...] = (SourceDatabase, TargetDatabase, Azurite, Moto,
                                       AzureControl)


# The sandbox's backup-side SAS: valid long enough for any sandbox's life, and the same on
# every up (moto's secret is written once).
SAS_EXPIRY = datetime(2099, 12, 31, tzinfo=UTC)

SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000002"  # the stand-in's, in both sides' secrets


def _aws_then_vault(key: str) -> list[str]:
    """The seed's AWS secret first, the DR region's Key Vault when AWS does not answer."""
    return [f"secret:{key}", f"keyvault:{VAULT_SECRETS[key]}"]


class Sandbox:
    """The sandbox under ``directory``: start, inspect and stop its services."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR,
                 demo_size: int = demodb.DEFAULT_SIZE, sources: int = 1) -> None:
        self.directory = Path(directory).absolute()
        self.demo_size = demo_size
        # A second source once started stays one of the sandbox's services (status, down).
        kinds = SERVICES if sources < 2 and SecondSource.name not in self._state() \
            else (*SERVICES, SecondSource)
        self.services: dict[str, Service] = {cls.name: cls(self) for cls in kinds}

    # -- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.directory / "sandbox.json"

    @property
    def config_path(self) -> Path:
        """The Azure side's config (the account key; also takes backups, as a fail-back
        does)."""
        return self.directory / "drkit.yaml"

    @property
    def backup_config_path(self) -> Path:
        """The backup side's config: the backup host's SAS that cannot delete."""
        return self.directory / "drkit-backup.yaml"

    @property
    def tls(self) -> SandboxTls:
        """The sandbox's CA and server certificate (made on first use)."""
        return SandboxTls(self.directory / "private" / "tls").ensure()

    @property
    def _credentials_path(self) -> Path:
        return self.directory / "private" / "credentials.json"

    def _state(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.state_path.read_text())["services"]
        except (OSError, ValueError, KeyError):
            return {}

    def _save_state(self, services: dict[str, dict[str, Any]]) -> None:
        self.state_path.write_text(json.dumps({"services": services}, indent=2) + "\n")

    def port(self, name: str) -> int | None:
        return self._state().get(name, {}).get("port")

    def credential(self, key: str) -> str:
        """A generated sandbox credential (the sandbox's own secrets, kept 0600 on disk)."""
        return self._credentials()[key]

    def _credentials(self) -> dict[str, str]:
        path = self._credentials_path
        if path.exists():
            return json.loads(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        values = {
            "mariadb_root_password": secrets.token_urlsafe(18),
            "rds_password": secrets.token_urlsafe(18),
            "azure_mysql_password": secrets.token_urlsafe(18),
            "azure_storage_key": base64.b64encode(secrets.token_bytes(64)).decode(),
            "aws_secret_access_key": secrets.token_urlsafe(30),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        return values

    def age_identity(self, which: str) -> str:
        """An age identity of the sandbox's backups, made once and kept 0600 under private/:
        ``restore`` (also in the Key Vault stand-in, what drkit opens backups with) or
        ``break-glass`` (a key file only, as the offline one a person keeps in a safe)."""
        path = self.directory / "private" / f"age-{which}.key"
        if not path.exists():
            from pyrage import x25519

            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{x25519.Identity.generate()}\n")
        return path.read_text().strip()

    def age_recipient(self, which: str) -> str:
        from pyrage import x25519

        return str(x25519.Identity.from_str(self.age_identity(which)).to_public())

    def backup_side_sas(self) -> str:
        """The backup side's storage credential: an account SAS without delete
        (``racwlt``), signed with the account key, as an operator issues one for the backup
        host. A fixed expiry, so every ``up`` gives the same token."""
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

        return generate_account_sas(
            STORAGE_ACCOUNT, self.credential("azure_storage_key"),
            ResourceTypes(container=True, object=True),
            AccountSasPermissions.from_string(BACKUP_SIDE_PERMISSIONS), expiry=SAS_EXPIRY)

    def secret(self) -> dict[str, str]:
        """The JSON in the AWS secret ``backup-credentials-<env>``, which the backup side
        reads: the seed's keys but the account key, and the backup side's SAS. What only the
        Azure side needs (the account key, the DR target's password) is in the Key Vault
        alone (:meth:`azure_secrets`): AWS may be hostile."""
        return {
            "rds_password": self.credential("rds_password"),
            "azure_storage_account": STORAGE_ACCOUNT,
            "azure_storage_sas": self.backup_side_sas(),
            "azure_tenant_id": SANDBOX_TENANT,
            "azure_subscription_id": SUBSCRIPTION_ID,
        }

    def azure_secrets(self) -> dict[str, str]:
        """The Azure side's credentials, by the seed's key names, as the Key Vault stand-in
        holds them (VAULT_SECRETS)."""
        return {
            "azure_storage_account": STORAGE_ACCOUNT,
            "azure_storage_key": self.credential("azure_storage_key"),
            "azure_mysql_password": self.credential("azure_mysql_password"),
            "azure_subscription_id": SUBSCRIPTION_ID,
        }

    def aws_settings(self, moto_port: int | None = None) -> AwsSettings:
        return AwsSettings(
            region=AWS_REGION,
            secret_id=SECRET_ID,
            endpoint_url=f"http://127.0.0.1:{moto_port or self.port('moto')}",
            profile=AWS_PROFILE,
            credentials_file=self.directory / "aws-credentials",
        )

    def write_aws_credentials(self) -> None:
        # moto accepts any key; a profile file keeps them out of the config and environment.
        path = self.directory / "aws-credentials"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"[{AWS_PROFILE}]\naws_access_key_id = AKIADRKITSANDBOX0001\n"
                         f"aws_secret_access_key = {self.credential('aws_secret_access_key')}\n")

    # -- lifecycle ---------------------------------------------------------------------
    def _running(self, record: dict[str, Any] | None) -> bool:
        if not record:
            return False
        return process_start_time(record["pid"]) == record.get("started")

    def up(self) -> list[ServiceStatus]:
        """Start whatever is not running, seed it, write ``drkit.yaml``; return the status."""
        require_extra("sandbox", "The sandbox")
        for service in self.services.values():
            if service.program:  # every missing program is named before any start
                find_program(service.program)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        state = self._state()
        for name, service in self.services.items():
            record = state.get(name)
            if not self._running(record):
                record = self._start(service, record)
                state[name] = record
                self._save_state(state)
            service.seed(record["port"])
        self._write_config(state)
        sources = {name: service for name, service in self.services.items()
                   if isinstance(service, SourceDatabase)}
        if len(sources) > 1:
            build_fleet_databases(sources.values())
        write_fleet_file(self.directory, self.config_path,
                         {name: state[name]["port"] for name in sources})
        return self.status()

    def _start(self, service: Service, previous: dict[str, Any] | None) -> dict[str, Any]:
        service.home.mkdir(parents=True, exist_ok=True)
        service.prepare()
        port = previous["port"] if previous and port_free(previous["port"]) else free_port()
        log = open(self.directory / "logs" / f"{service.name}.log", "ab")  # noqa: SIM115
        with log:
            process = subprocess.Popen(
                service.command(port), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=service.environment(), start_new_session=True, cwd=service.home,
            )
        try:
            self._wait_until_it_answers(service, process, port)
        except BaseException:
            self._stop_pid(process.pid)  # never a process that no record points at
            raise
        return {"pid": process.pid, "port": port, "started": process_start_time(process.pid)}

    def _wait_until_it_answers(self, service: Service, process: subprocess.Popen,
                               port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not service.answers(port):
            if process.poll() is not None:
                raise SandboxError(
                    f"The sandbox's {service.name} service exited with code {process.returncode} "
                    "while starting.", f"See {self.directory / 'logs' / service.name}.log."
                )
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"The sandbox's {service.name} service did not answer within "
                    f"{START_TIMEOUT:.0f} s.", f"See {self.directory / 'logs' / service.name}.log."
                )
            time.sleep(0.2)

    def status(self) -> list[ServiceStatus]:
        state = self._state()
        statuses = []
        for name, service in self.services.items():
            record = state.get(name)
            running = self._running(record)
            healthy, detail = service.healthy(record["port"]) if running else (False, "stopped")
            statuses.append(ServiceStatus(
                name=name, role=service.role, port=record["port"] if record else None,
                pid=record["pid"] if running else None, running=running, healthy=healthy,
                detail=detail,
            ))
        return statuses

    def stop_service(self, name: str) -> bool:
        """Stop one service (to rehearse its failure); ``up`` starts it again. False if it
        was not running."""
        record = self._state().get(name)
        if not self._running(record):
            return False
        self._stop_pid(record["pid"])
        return True

    def down(self) -> list[str]:
        """Stop every recorded process that is still ours; return the names stopped."""
        stopped = []
        for name, record in self._state().items():
            if self._running(record):
                self._stop_pid(record["pid"])
                stopped.append(name)
        self.state_path.unlink(missing_ok=True)
        return stopped

    @staticmethod
    def _stop_pid(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid):
            time.sleep(0.05)

    # -- config ------------------------------------------------------------------------
    def _write_config(self, state: dict[str, dict[str, Any]]) -> None:
        config = {
            "environment": "sandbox",
            "side": "azure",
            "aws": {k: str(v) for k, v in self.aws_settings(state["moto"]["port"])
                    .model_dump(exclude_none=True).items()},
            "source": {
                "host": "127.0.0.1",
                "port": state["source"]["port"],
                "user": SOURCE_USER,
                "password": "secret:rds_password",
                "databases": [DEMO_DATABASE],
                "rds_instance_id": RDS_INSTANCE_ID,
                "tls": "verify-identity",
                "ssl_ca": str(self.tls.ca),
            },
            "storage": {
                "account": _aws_then_vault("azure_storage_account"),
                "key": f"keyvault:{VAULT_SECRETS['azure_storage_key']}",
                "endpoint": self.services["azurite"].endpoint(state["azurite"]["port"]),
                "container": CONTAINER,
                "prefix": "backups/",
            },
            "target": {
                "kind": "azure",
                "host": "127.0.0.1",
                "port": state["target"]["port"],
                "user": TARGET_USER,
                "password": f"keyvault:{VAULT_SECRETS['azure_mysql_password']}",
                "tls": "verify-identity",
                "ssl_ca": str(self.tls.ca),
            },
            "azure": self.services["azure"].settings(state["azure"]["port"]),
            "backup": {
                "state_dir": str(self.directory / "state"),
                "log_file": str(self.directory / "logs" / "mysql-backup-to-azure.log"),
            },
            # Backups are written for two identities: the one drkit reads from the vault,
            # and the break-glass key (private/age-break-glass.key) for age -d by hand.
            "encryption": {
                "recipients": [self.age_recipient("restore"), self.age_recipient("break-glass")],
                "identity": f"keyvault:{IDENTITY_SECRET}",
            },
        }
        # What the user changed or added since up last wrote it stays (a binlog section, a
        # database); what is as up wrote it takes the new ports and endpoints.
        written_path = self.directory / "private" / "drkit-yaml-written.json"
        written = json.loads(written_path.read_text()) if written_path.exists() else None
        generated = config  # what up itself writes, remembered to tell the user's edits next time
        if self.config_path.exists():
            config = merged(config, written, self._current_config())
        written_path.parent.mkdir(mode=0o700, exist_ok=True)
        written_path.write_text(json.dumps(generated))
        header = ("# drkit config for the local sandbox, written by `drkit sandbox up`.\n"
                  "# Credentials are references into the sandbox's Secrets Manager (moto) and\n"
                  "# its Key Vault (the azure stand-in), which alone holds the account key and\n"
                  "# the DR target's password and answers the rest when AWS is down.\n"
                  "# Edits are kept when up runs again (comments are not).\n")
        self.config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))
        self.backup_config_path.write_text(
            "# The backup side's drkit config (backup, binlog stream), written by `drkit "
            "sandbox up`\n# from drkit.yaml each time: its SAS cannot delete, and it holds no "
            "identity.\n" + yaml.safe_dump(backup_side(config), sort_keys=False))

    def _current_config(self) -> dict[str, Any]:
        try:
            current = yaml.safe_load(self.config_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{self.config_path} cannot be read as YAML ({exc}); it was "
                              "left as it is.", "Fix it, or move it away for up to write "
                              "a new one.") from None
        if not isinstance(current, dict):
            raise ConfigError(f"{self.config_path} does not hold a mapping; it was left as "
                              "it is.", "Fix it, or move it away for up to write a new one.")
        return current


def backup_side(config: dict[str, Any]) -> dict[str, Any]:
    """The backup host's config from the Azure side's: the SAS without delete from the AWS
    secret instead of the account key, no identity that reads backups, no Azure login, no
    DR target."""
    storage = {k: v for k, v in config["storage"].items() if k != "key"}
    encryption = {k: v for k, v in config.get("encryption", {}).items() if k != "identity"}
    return {**{k: v for k, v in config.items() if k not in ("azure", "target")},
            "side": "backup",
            "storage": {**storage, "auth": "sas", "sas": "secret:azure_storage_sas"},
            "encryption": encryption}


def merged(new: Any, written: Any, current: Any) -> Any:
    """Three-way merge of drkit.yaml: ``new`` is what up writes now, ``written`` what it wrote
    last time (None when unknown), ``current`` the file as it is. A value the user changed or
    added is kept, one up wrote and nobody touched takes its new value, a key up owns that is
    missing is filled in."""
    if isinstance(new, dict) and isinstance(current, dict):
        written = written if isinstance(written, dict) else {}
        result = {key: merged(value, written.get(key), current[key]) if key in current
                  else value for key, value in new.items()}
        result.update({key: value for key, value in current.items() if key not in new})
        return result
    if written is None or current == written:
        return new
    return current


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of our own children count as gone.
    for entry in Path("/proc").iterdir():
        fields = stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
