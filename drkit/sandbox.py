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
import socket
import subprocess
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import yaml

from drkit import demodb
from drkit.config import AwsSettings
from drkit.errors import SandboxError
from drkit.programs import find_program

DEFAULT_DIR = Path(".drkit-sandbox")
SECRET_ID = "backup-credentials-sandbox"
STORAGE_ACCOUNT = "bloberry01"
CONTAINER = "mysql-backups"
AUDIT_CONTAINER = "dr-audit"
WEB_CONTAINER = "$web"  # the static website (DR maintenance page)
DEMO_DATABASE = "shop"
RDS_INSTANCE_ID = "drkit-sandbox-source"
AWS_REGION = "us-east-1"
AWS_PROFILE = "drkit-sandbox"
SOURCE_USER = "admin"
TARGET_USER = "drkitadmin"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


@dataclass
class ServiceStatus:
    name: str
    role: str
    port: int | None
    pid: int | None
    running: bool
    healthy: bool
    detail: str = ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do: a port left in TIME_WAIT by the previous process is reusable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live ``pid``; tells our process from a recycled pid."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":  # gone, or exited and not yet reaped
        return None
    return fields[19]


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from the state field on (the command name may hold spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


class Service(ABC):
    name: str
    role: str
    program: str

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.home = sandbox.directory / self.name

    def prepare(self) -> None:  # noqa: B027 - most services need no preparation
        """One-time initialisation of the service's state directory."""

    @abstractmethod
    def command(self, port: int) -> list[str]: ...

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abstractmethod
    def answers(self, port: int) -> bool:
        """Whether the service accepts requests (used while starting)."""

    def healthy(self, port: int) -> tuple[bool, str]:
        """A real request with the sandbox's credentials, for ``status``."""
        return self.answers(port), ""

    def seed(self, port: int) -> None:  # noqa: B027 - most services need no seeding
        """Add what drkit expects to find, if missing."""


class MariaDB(Service):
    program = "mariadbd"
    admin_user: str
    admin_password_key: str

    @property
    def socket_path(self) -> Path:
        return self.home / "mysqld.sock"

    def prepare(self) -> None:
        if (self.home / "data" / "mysql").is_dir():
            return
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        command = [
            find_program("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.home / 'data'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SandboxError(
                f"Initialising the {self.name} MariaDB data directory failed: "
                f"{result.stderr.strip()[-300:]}"
            )

    def command(self, port: int) -> list[str]:
        command = [
            find_program("mariadbd"),
            "--no-defaults",
            f"--datadir={self.home / 'data'}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.home / 'mariadbd.pid'}",
            f"--log-error={self.home / 'error.log'}",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=256M",
            "--max-allowed-packet=64M",
            "--event-scheduler=OFF",
            *self.extra_options(),
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        return command

    def extra_options(self) -> list[str]:
        return []

    def _root(self) -> pymysql.Connection:
        password = self.sandbox.credential("mariadb_root_password")
        try:
            return pymysql.connect(unix_socket=str(self.socket_path), user="root",
                                   password=password, autocommit=True, charset="utf8mb4")
        except pymysql.err.OperationalError:
            # A fresh data directory: root has no password yet; set it now.
            connection = pymysql.connect(unix_socket=str(self.socket_path), user="root",
                                         autocommit=True, charset="utf8mb4")
            with connection.cursor() as cursor:
                cursor.execute("ALTER USER root@localhost IDENTIFIED BY %s", (password,))
            return connection

    def answers(self, port: int) -> bool:
        try:
            self._root().close()
        except pymysql.err.MySQLError:
            return False
        return True

    def healthy(self, port: int) -> tuple[bool, str]:
        try:
            connection = pymysql.connect(
                host="127.0.0.1", port=port, user=self.admin_user,
                password=self.sandbox.credential(self.admin_password_key), connect_timeout=5,
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                version = cursor.fetchone()[0]
            connection.close()
        except pymysql.err.MySQLError as exc:
            return False, str(exc.args[-1])
        return True, version

    def seed(self, port: int) -> None:
        password = self.sandbox.credential(self.admin_password_key)
        with contextlib.closing(self._root()) as root, root.cursor() as cursor:
            cursor.execute(f"CREATE USER IF NOT EXISTS '{self.admin_user}'@'%%' IDENTIFIED BY %s",
                           (password,))
            cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.admin_user}'@'%' "
                           "WITH GRANT OPTION")


class SourceDatabase(MariaDB):
    name = "source"
    role = "AWS RDS MySQL (production)"
    admin_user = SOURCE_USER
    admin_password_key = "rds_password"

    def extra_options(self) -> list[str]:
        # Binary logging as on RDS with backups on: gives the backup a binlog position.
        return [f"--log-bin={self.home / 'data' / 'binlog'}", "--server-id=1",
                "--binlog-format=ROW"]

    def seed(self, port: int) -> None:
        super().seed(port)
        with contextlib.closing(self._root()) as root, root.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                           "WHERE SCHEMA_NAME = %s", (DEMO_DATABASE,))
            if cursor.fetchone()[0] == 0:
                demodb.build(root, DEMO_DATABASE, self.sandbox.demo_size)


class TargetDatabase(MariaDB):
    name = "target"
    role = "Azure Database for MySQL Flexible Server (restore target)"
    admin_user = TARGET_USER
    admin_password_key = "azure_mysql_password"


class Azurite(Service):
    name = "azurite"
    role = f"Azure Blob Storage (account {STORAGE_ACCOUNT})"
    program = "azurite-blob"

    def command(self, port: int) -> list[str]:
        return [
            find_program("azurite-blob"),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--location", str(self.home),
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
            "--silent",
        ]

    def environment(self) -> dict[str, str]:
        # Azurite reads extra accounts from its environment, not its argv.
        account = f"{STORAGE_ACCOUNT}:{self.sandbox.credential('azure_storage_key')}"
        return {**os.environ, "AZURITE_ACCOUNTS": account}

    def endpoint(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/{STORAGE_ACCOUNT}"

    def answers(self, port: int) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint(port)}?comp=list", timeout=2)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: it is up.
        except OSError:
            return False
        return True

    def _service(self, port: int):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.endpoint(port),
            credential={"account_name": STORAGE_ACCOUNT,
                        "account_key": self.sandbox.credential("azure_storage_key")},
        )

    def healthy(self, port: int) -> tuple[bool, str]:
        from azure.core.exceptions import AzureError

        try:
            names = [c.name for c in self._service(port).list_containers(timeout=5)]
        except AzureError as exc:
            return False, type(exc).__name__
        return True, f"containers: {', '.join(names) or '-'}"

    def seed(self, port: int) -> None:
        from azure.core.exceptions import ResourceExistsError

        for container in (CONTAINER, AUDIT_CONTAINER, WEB_CONTAINER):
            with contextlib.suppress(ResourceExistsError):
                self._service(port).create_container(container)  # private: no public access


class Moto(Service):
    name = "moto"
    role = "AWS Secrets Manager, CloudWatch and RDS API"
    program = "moto_server"

    def command(self, port: int) -> list[str]:
        return [find_program("moto_server"), "-H", "127.0.0.1", "-p", str(port)]

    def answers(self, port: int) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=2)
        except OSError:
            return False
        return True

    def _client(self, port: int, service: str):
        from drkit import aws

        return aws.client(self.sandbox.aws_settings(port), service)

    def healthy(self, port: int) -> tuple[bool, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client(port, "secretsmanager").describe_secret(SecretId=SECRET_ID)
        except (BotoCoreError, ClientError) as exc:
            return False, str(exc)
        return True, f"secret {SECRET_ID}"

    def seed(self, port: int) -> None:
        # moto keeps state in memory: after a restart everything is added again.
        self.sandbox.write_aws_credentials()
        manager = self._client(port, "secretsmanager")
        existing = {s["Name"] for s in manager.list_secrets()["SecretList"]}
        if SECRET_ID not in existing:
            manager.create_secret(Name=SECRET_ID, SecretString=json.dumps(self.sandbox.secret()))
        rds = self._client(port, "rds")
        instances = rds.describe_db_instances()["DBInstances"]
        if not any(i["DBInstanceIdentifier"] == RDS_INSTANCE_ID for i in instances):
            rds.create_db_instance(
                DBInstanceIdentifier=RDS_INSTANCE_ID,
                Engine="mysql",
                DBInstanceClass="db.t3.micro",
                AllocatedStorage=20,
                MasterUsername=SOURCE_USER,
                MasterUserPassword=self.sandbox.credential("rds_password"),
                DBName=DEMO_DATABASE,
                Port=self.sandbox.port("source") or 3306,
            )


SERVICES: tuple[type[Service], ...] = (SourceDatabase, TargetDatabase, Azurite, Moto)


class Sandbox:
    """The sandbox under ``directory``: start, inspect and stop its services."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR,
                 demo_size: int = demodb.DEFAULT_SIZE) -> None:
        self.directory = Path(directory).absolute()
        self.demo_size = demo_size
        self.services = {cls.name: cls(self) for cls in SERVICES}

    # -- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.directory / "sandbox.json"

    @property
    def config_path(self) -> Path:
        return self.directory / "drkit.yaml"

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

    def secret(self) -> dict[str, str]:
        """The JSON the seed keeps in ``backup-credentials-<env>``, plus the restore admin's."""
        return {
            "rds_password": self.credential("rds_password"),
            "azure_storage_account": STORAGE_ACCOUNT,
            "azure_storage_key": self.credential("azure_storage_key"),
            "azure_tenant_id": "00000000-0000-4000-8000-000000000001",
            "azure_subscription_id": "00000000-0000-4000-8000-000000000002",
            "azure_mysql_password": self.credential("azure_mysql_password"),
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
        return _process_start_time(record["pid"]) == record.get("started")

    def up(self) -> list[ServiceStatus]:
        """Start whatever is not running, seed it, write ``drkit.yaml``; return the status."""
        for service in self.services.values():
            find_program(service.program)  # every missing program is named before any start
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
        return self.status()

    def _start(self, service: Service, previous: dict[str, Any] | None) -> dict[str, Any]:
        service.home.mkdir(parents=True, exist_ok=True)
        service.prepare()
        port = previous["port"] if previous and _port_free(previous["port"]) else _free_port()
        log = open(self.directory / "logs" / f"{service.name}.log", "ab")  # noqa: SIM115
        with log:
            process = subprocess.Popen(
                service.command(port), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=service.environment(), start_new_session=True, cwd=service.home,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not service.answers(port):
            if process.poll() is not None:
                raise SandboxError(
                    f"The sandbox's {service.name} service exited with code {process.returncode} "
                    "while starting.", f"See {self.directory / 'logs' / service.name}.log."
                )
            if time.monotonic() > deadline:
                self._stop_pid(process.pid)
                raise SandboxError(
                    f"The sandbox's {service.name} service did not answer within "
                    f"{START_TIMEOUT:.0f} s.", f"See {self.directory / 'logs' / service.name}.log."
                )
            time.sleep(0.2)
        return {"pid": process.pid, "port": port, "started": _process_start_time(process.pid)}

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

    def stop_service(self, name: str) -> None:
        """Stop one service (to rehearse its failure); ``up`` starts it again."""
        record = self._state().get(name)
        if self._running(record):
            self._stop_pid(record["pid"])

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
            "aws": {k: str(v) for k, v in self.aws_settings(state["moto"]["port"])
                    .model_dump(exclude_none=True).items()},
            "source": {
                "host": "127.0.0.1",
                "port": state["source"]["port"],
                "user": SOURCE_USER,
                "password": "secret:rds_password",
                "databases": [DEMO_DATABASE],
                "rds_instance_id": RDS_INSTANCE_ID,
            },
            "storage": {
                "account": "secret:azure_storage_account",
                "key": "secret:azure_storage_key",
                "endpoint": self.services["azurite"].endpoint(state["azurite"]["port"]),
                "container": CONTAINER,
                "prefix": "backups/",
            },
            "target": {
                "kind": "azure",
                "host": "127.0.0.1",
                "port": state["target"]["port"],
                "user": TARGET_USER,
                "password": "secret:azure_mysql_password",
            },
            "backup": {
                "state_dir": str(self.directory / "state"),
                "log_file": str(self.directory / "logs" / "mysql-backup-to-azure.log"),
            },
        }
        header = ("# drkit config for the local sandbox, written by `drkit sandbox up`.\n"
                  "# Credentials are references into the sandbox's Secrets Manager (moto).\n")
        self.config_path.write_text(header + yaml.safe_dump(config, sort_keys=False))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of our own children count as gone.
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
