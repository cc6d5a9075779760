"""The sandbox's services: how each is started, probed, checked and seeded.

Each service is a process on a loopback port standing in for one part of the real estate;
:class:`drkit.sandbox.estate.Sandbox` starts them, records them and stops them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import pymysql

from drkit.errors import SandboxError
from drkit.programs import find_program
from drkit.sandbox import demodb, flexible, rds
from drkit.sandbox.host import ServiceHost

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do: a port left in TIME_WAIT by the previous process is reusable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live ``pid``; tells our process from a recycled pid."""
    fields = stat_fields(pid)
    if fields is None or fields[0] == "Z":  # gone, or exited and not yet reaped
        return None
    return fields[19]


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from the state field on (the command name may hold spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


class Service(ABC):
    name: str
    role: str
    program: str | None  # None: drkit's own Python

    def __init__(self, sandbox: ServiceHost) -> None:
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
    buffer_pool = "256M"  # InnoDB's: what the sandbox's small data needs

    @property
    def socket_path(self) -> Path:
        return self.home / "mysqld.sock"

    @property
    def tmpdir(self) -> Path:
        """Its own temporary folder, for the server and its bootstrap alike: a cleaner of the
        shared /tmp once took a temporary table from under a running server (ERROR 6 on
        delete of /tmp/#sql-temptable)."""
        return self.home / "tmp"

    def install_command(self) -> list[str]:
        """What initialises the data directory (unknown options go on to its mariadbd)."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        command = [find_program("mariadb-install-db"), "--no-defaults",
                   f"--datadir={self.home / 'data'}", f"--tmpdir={self.tmpdir}",
                   "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.geteuid() == 0:
            command.append("--user=root")
        return command

    def prepare(self) -> None:
        if (self.home / "data" / "mysql").is_dir():
            return
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        result = subprocess.run(self.install_command(), capture_output=True, text=True)
        if result.returncode != 0:
            raise SandboxError(
                f"Initialising the {self.name} MariaDB data directory failed: "
                f"{result.stderr.strip()[-300:]}"
            )

    def command(self, port: int) -> list[str]:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        command = [
            find_program("mariadbd"),
            "--no-defaults",
            f"--datadir={self.home / 'data'}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.home / 'mariadbd.pid'}",
            f"--log-error={self.home / 'error.log'}",
            f"--tmpdir={self.tmpdir}",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            "--innodb-log-file-size=256M",
            # Pages are written once, not twice: only a host crash, which no test makes,
            # could tear one. (Commits stay flushed as on RDS: MariaDB purges a binlog only
            # once InnoDB flushed its transactions, which tests of gaps rely on.)
            "--innodb-doublewrite=0",
            "--max-allowed-packet=64M",
            "--event-scheduler=OFF",
            # Verified TLS, as RDS and Flexible Server offer it (drkit's default).
            f"--ssl-ca={self.sandbox.tls.ca}",
            f"--ssl-cert={self.sandbox.tls.certificate}",
            f"--ssl-key={self.sandbox.tls.key}",
            "--tls-version=TLSv1.2,TLSv1.3",
            *self.extra_options(),
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        return command

    def extra_options(self) -> list[str]:
        return []

    def root_connection(self) -> pymysql.Connection:
        """The server's operator (root over the socket): what Azure keeps for itself."""
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
            self.root_connection().close()
        except pymysql.err.MySQLError:
            return False
        return True

    def healthy(self, port: int) -> tuple[bool, str]:
        try:
            connection = pymysql.connect(
                host="127.0.0.1", port=port, user=self.admin_user,
                password=self.sandbox.credential(self.admin_password_key), connect_timeout=5,
                ssl_ca=str(self.sandbox.tls.ca), ssl_verify_identity=True,
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                version = cursor.fetchone()[0]
            connection.close()
        except pymysql.err.MySQLError as exc:
            return False, str(exc.args[-1])
        return True, version

    admin_privileges = "ALL PRIVILEGES"

    def seed(self, port: int) -> None:
        password = self.sandbox.credential(self.admin_password_key)
        with contextlib.closing(self.root_connection()) as root, root.cursor() as cursor:
            # mariadb-install-db leaves root@127.0.0.1, @::1 and @HOSTNAME without a password:
            # anyone on the machine would be the server's SUPER user over TCP.
            cursor.execute("SELECT host FROM mysql.user WHERE user = 'root' AND "
                           "host <> 'localhost'")
            for (host,) in cursor.fetchall():
                cursor.execute("DROP USER 'root'@%s", (host,))
            cursor.execute(f"CREATE USER IF NOT EXISTS '{self.admin_user}'@'%%' IDENTIFIED BY %s",
                           (password,))
            cursor.execute(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{self.admin_user}'@'%'")
            cursor.execute(f"GRANT {self.admin_privileges} ON *.* TO '{self.admin_user}'@'%' "
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
        with contextlib.closing(self.root_connection()) as root, root.cursor() as cursor:
            rds.install(cursor)
            cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                           "WHERE SCHEMA_NAME = %s", (DEMO_DATABASE,))
            if cursor.fetchone()[0] == 0:
                flexible.load_time_zones(cursor)  # RDS has them; the demo's event uses one
                demodb.build(root, DEMO_DATABASE, self.sandbox.demo_size)


class SecondSource(SourceDatabase):
    """``drkit sandbox up --sources 2``: a second source server, for the fleet's per-source
    limits; it holds the fleet's databases only (:mod:`drkit.sandbox.fleetfile`)."""

    name = "source2"
    role = "a second AWS RDS MySQL (the fleet's)"

    def extra_options(self) -> list[str]:
        return [f"--log-bin={self.home / 'data' / 'binlog'}", "--server-id=2",
                "--binlog-format=ROW"]

    def seed(self, port: int) -> None:
        MariaDB.seed(self, port)
        with contextlib.closing(self.root_connection()) as root, root.cursor() as cursor:
            rds.install(cursor)
            flexible.load_time_zones(cursor)  # RDS has them; the demo's event uses one


class TargetDatabase(MariaDB):
    name = "target"
    role = "Azure Database for MySQL Flexible Server (restore target)"
    admin_user = TARGET_USER
    admin_password_key = "azure_mysql_password"

    admin_privileges = flexible.ADMIN_PRIVILEGES
    # As Flexible Server sizes it: a large share of the server's memory (a 2-vCore General
    # Purpose server has 8 GiB). A restore or a standby's catch-up writes where the source
    # wrote; in 256M each change to a row of a 2 GB database read its page from disk first,
    # one at a time, which no Flexible Server sized for that database does
    # (bench/standby_bench.py). Memory is taken only as data is loaded: tests load little.
    buffer_pool = "4G"

    def extra_options(self) -> list[str]:
        # As Flexible Server: its default max_allowed_packet (it allows up to 1 GiB), no
        # connection without TLS, table names folded to lower case, and (by default) empty
        # time-zone tables until mysql.az_load_timezone() runs.
        return ["--max-allowed-packet=512M", "--require-secure-transport=ON",
                "--lower-case-table-names=1"]

    def seed(self, port: int) -> None:
        super().seed(port)
        with contextlib.closing(self.root_connection()) as root, root.cursor() as cursor:
            cursor.execute(flexible.AZ_LOAD_TIMEZONE)





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
        from drkit.aws.clients import boto_client

        return boto_client(self.sandbox.aws_settings(port), service)

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
        secret = json.dumps(self.sandbox.secret())
        if SECRET_ID not in existing:
            manager.create_secret(Name=SECRET_ID, SecretString=secret)
        elif manager.get_secret_value(SecretId=SECRET_ID)["SecretString"] != secret:
            manager.put_secret_value(SecretId=SECRET_ID, SecretString=secret)  # a key added
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

