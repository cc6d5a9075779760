"""Talking to MySQL servers: connections with clear errors, and private client option files."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymysql
from pydantic import SecretStr

from drkit.config import Settings, TlsMode
from drkit.errors import (
    AccessDeniedError,
    ConfigError,
    DrkitError,
    ServerUnreachableError,
    TlsError,
    UnknownDatabaseError,
)
from drkit.mysql.clients import dump_client
from drkit.redact import redact
from drkit.secrets import resolver_for

_ER_ACCESS_DENIED = (1044, 1045, 1698)
_ER_BAD_DB = 1049


@dataclass(frozen=True)
class Server:
    """Where a MySQL server is and how to log in; ``role`` names it in messages."""

    role: str
    host: str
    port: int
    user: str
    password: SecretStr
    tls: TlsMode = "verify-identity"
    ssl_ca: Path | None = None  # None: the system's CA bundle
    connect_timeout: int = 10

    @property
    def ca_bundle(self) -> str | None:
        """The CA file both pymysql and the mysql clients verify against."""
        return str(self.ssl_ca) if self.ssl_ca else ssl.get_default_verify_paths().cafile

    def tls_context(self) -> ssl.SSLContext | None:
        """pymysql's TLS settings for ``tls``; None when TLS is disabled."""
        if self.tls == "disabled":
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.role}.ssl_ca {self.ca_bundle} cannot be used as a CA bundle "
                f"({getattr(exc, 'strerror', None) or exc}).",
                "Point it at a PEM file of CA certificates (RDS: global-bundle.pem).") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # as Flexible Server requires
        if self.tls != "verify-identity":
            context.check_hostname = False
        if self.tls == "required":
            context.verify_mode = ssl.CERT_NONE
        return context

    def client_tls_options(self, flavour: str) -> list[str]:
        """The same ``tls`` for mysqldump/mysql: MySQL's ``ssl-mode``; MariaDB's client knows
        no verify-ca, so it verifies the host name there too (stricter, never weaker)."""
        # A CA given to either client makes it verify (MySQL's REQUIRED turns VERIFY_CA).
        verifies = self.tls.startswith("verify")
        ca = [f"ssl-ca={self.ca_bundle}"] if self.ca_bundle and verifies else []
        if flavour == "mysql":
            return [f"ssl-mode={self.tls.upper().replace('-', '_')}", *ca]
        if self.tls == "disabled":
            return ["skip-ssl"]
        verify = ["ssl-verify-server-cert"] if verifies else []
        return ["ssl", "tls-version=TLSv1.2,TLSv1.3", *verify, *ca]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def source_server(settings: Settings) -> Server:
    """The production server (RDS) as the config describes it."""
    source = settings.source
    return Server(role="source", host=source.host, port=source.port, user=source.user,
                  password=resolver_for(settings).resolve(source.password), tls=source.tls,
                  ssl_ca=source.ssl_ca, connect_timeout=source.connect_timeout)


def target_server(settings: Settings, address: str | None = None) -> Server:
    """The restore target (Flexible Server); ``address`` (HOST[:PORT]) overrides its place.
    The backup side never writes there: AWS may be the attacker (docs/immutability.md)."""
    if settings.side == "backup":
        raise ConfigError("This config is the backup side's (side: backup): it backs up and "
                          "streams the binlog, and never connects to the DR target; nothing "
                          "was changed there.",
                          "Run restores, drills, the standby and the failover with the Azure "
                          "side's config.")
    if settings.target is None:
        raise ConfigError("No restore target is configured.",
                          "Add a target section (host, user, password) to the config.")
    target = settings.target
    host, _, port = (address or "").partition(":")
    return Server(role="target", host=host or target.host, port=int(port or target.port),
                  user=target.user, password=resolver_for(settings).resolve(target.password),
                  tls=target.tls, ssl_ca=target.ssl_ca)



class Connection(pymysql.connections.Connection):
    """pymysql's connection, whose whole connect (the server's greeting, TLS, the login)
    gives up after ``connect_timeout``: pymysql times only the TCP connect, so a port that
    accepts and never speaks MySQL (a wrong port, a stuck proxy) held a failover forever.
    Afterwards reads wait as configured (``read_timeout``): pymysql sets the socket's
    timeout again wherever it differs from that."""

    def connect(self, sock: Any = None) -> None:
        configured, self._read_timeout = self._read_timeout, self.connect_timeout
        try:
            super().connect(sock)
        finally:
            self._read_timeout = configured

    def cut(self) -> None:
        """From another thread: end the socket, so that a read waiting on a server that
        stopped answering fails at once (closing the socket would not wake that thread)."""
        with contextlib.suppress(AttributeError, OSError):  # not connected, or gone already
            self._sock.shutdown(socket.SHUT_RDWR)


def connect(server: Server, database: str | None = None, *,
            connection_class: type[Connection] = Connection, **kwargs) -> Connection:
    """Open a connection (a ``connection_class``, pymysql's by default), turning the usual
    failures into one sentence with the fix."""
    try:
        return connection_class(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password.get_secret_value(),
            database=database,
            charset="utf8mb4",
            connect_timeout=server.connect_timeout,
            ssl=server.tls_context(),
            ssl_disabled=server.tls == "disabled",
            autocommit=True,
            **kwargs,
        )
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] in _ER_ACCESS_DENIED and server.tls == "disabled" \
                and _logs_in_with_tls(server):
            # MariaDB answers a plain login under require_secure_transport with "access
            # denied" (MySQL with 3159): the same login over TLS tells which it is.
            raise TlsError(f"The {server.role} server {server.address} refuses connections "
                           "without TLS.", f"Set {server.role}.tls to verify-identity.") from None
        raise connection_error(server, exc, database) from None
    except pymysql.err.MySQLError as exc:
        raise server_failure(server, exc) from None


def server_failure(server: Server, exc: Exception) -> DrkitError:
    """A driver error no rule above knows (pymysql's InternalError for an error code below
    1000 or a broken handshake, an InterfaceError, ...): the server failed the connection,
    said in its own words (a server's message, never a value of ours; shortened)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    said = redact(str(exc.args[-1]) if exc.args else type(exc).__name__)
    said = said if len(said) <= 200 else said[:200] + "..."
    return ServerUnreachableError(
        f"The {server.role} server {server.address} failed the connection: {said}"
        + (f" (ERROR {code})." if code is not None else "."),
        "Check that it is a MySQL or MariaDB server and its error log; run again once it "
        "answers normally.")


def kill_query(server: Server, connection_id: int) -> None:
    """Stops the statement connection ``connection_id`` runs, from a connection of its own
    (a user may stop its own); best effort: a server that cannot be reached has nothing to
    stop for us."""
    with contextlib.suppress(DrkitError, pymysql.err.Error):
        killer = connect(server)
        with contextlib.closing(killer), killer.cursor() as cursor:
            cursor.execute(f"KILL QUERY {int(connection_id)}")


def _logs_in_with_tls(server: Server) -> bool:
    try:
        connect(replace(server, tls="required")).close()
    except DrkitError:
        return False
    return True


def connection_error(server: Server, exc: Exception, database: str | None = None) -> DrkitError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if (tls := _tls_failure(server, str(exc.args[-1]) if exc.args else "")) is not None:
        return tls
    if code in _ER_ACCESS_DENIED:
        return AccessDeniedError(
            f"The {server.role} server {server.address} refused the login of user {server.user}.",
            "Check the user name and the password in the secret.",
        )
    if code == _ER_BAD_DB:
        # The names come from the command line (backup --database) or the config: name both.
        return UnknownDatabaseError(
            f"Database {database!r} does not exist on the {server.role} server {server.address}.",
            "Name a database the source has (SHOW DATABASES lists them): with --database, or "
            "in source.databases of the config when no --database is given."
            if server.role == "source" else "Check the database names given and in the config.",
        )
    return ServerUnreachableError(
        f"Cannot connect to the {server.role} server {server.address} (ERROR {code}).",
        "Check the host and port, security groups and routing "
        f"(e.g. nc -vz {server.host} {server.port}).",
    )


def _tls_failure(server: Server, text: str) -> TlsError | None:
    """The TLS failures, each with its own fix (never "check the security group")."""
    where = f"TLS to the {server.role} server {server.address} failed"
    ca = server.ssl_ca or "the system's CA bundle"
    if "CERTIFICATE_VERIFY_FAILED" in text and "match" in text.lower():
        return TlsError(f"{where}: its certificate does not name {server.host}.",
                        "Connect by a name the certificate holds (MariaDB's mysqldump checks "
                        f"it even under verify-ca), or set {server.role}.tls to required.")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return TlsError(f"{where}: its certificate is not signed by a CA in {ca}.",
                        f"Set {server.role}.ssl_ca to the server's CA bundle (RDS: "
                        "global-bundle.pem from truststore.pki.rds.amazonaws.com; Flexible "
                        "Server: DigiCert Global Root G2).")
    if "SSL is required but the server doesn't support it" in text:
        return TlsError(f"{where}: the server does not offer TLS.",
                        f"Enable TLS on the server; {server.role}.tls: disabled only where "
                        "the network is trusted.")
    if "insecure transport" in text.lower():
        return TlsError(f"The {server.role} server {server.address} refuses connections "
                        "without TLS.", f"Set {server.role}.tls to verify-identity.")
    if "SSL" in text or "TLS" in text:
        return TlsError(f"{where} ({text[:200]}).",
                        f"Check {server.role}.tls and {server.role}.ssl_ca.")
    return None


def _quote_option(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def option_file(server: Server) -> Iterator[OptionFile]:
    """A ``[client]`` option file that exists only as an open descriptor: written to a
    private (0600) temporary file that is unlinked at once, then read by the client through
    ``/dev/fd/N`` (pass ``pass_fds=(options.fd,)`` to the subprocess).

    Handing the password to mysql/mysqldump this way keeps it out of argv (visible to every
    user in ``ps``) and out of the environment (``/proc/PID/environ``); and nothing is left
    on disk, whatever ends the run (``kill -9`` included): the kernel drops the file with
    the last descriptor.
    """
    lines = [
        "[client]",
        f"host={server.host}",
        f"port={server.port}",
        f"user={_quote_option(server.user)}",
        f"password={_quote_option(server.password.get_secret_value())}",
        "protocol=TCP",
        *server.client_tls_options(dump_client().flavour),
    ]
    fd, path = tempfile.mkstemp(prefix="drkit-", suffix=".cnf")  # mode 0600
    try:
        os.unlink(path)
        os.write(fd, ("\n".join(lines) + "\n").encode())
        yield OptionFile(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class OptionFile:
    """An open, unlinked option file; its path is the descriptor's."""

    fd: int

    @property
    def path(self) -> str:
        return f"/dev/fd/{self.fd}"

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


_MAX_PACKET = 2**24 - 1  # the protocol's largest packet payload
_COM_QUERY = 3


def query_without_copies(connection: pymysql.Connection, sql: bytes | bytearray) -> int:
    """Run one (huge) statement as ``connection.query`` does, without its copies.

    pymysql builds each 16 MiB packet as a new bytes object and keeps the first one for the
    whole send: for a row of 80 MB that is 32 MB more than the statement itself. Here each
    packet's 4-byte header goes out, then a view of its payload. Packets as the protocol
    has them: the first carries the command byte, a full packet is always followed by
    another (an empty one if nothing is left). Uses pymysql's socket writer and result
    reader, so errors are pymysql's own.
    """
    view = memoryview(sql)
    sequence, sent, size = 0, 0, min(_MAX_PACKET, len(view) + 1)
    connection._write_bytes(_packet_header(size, sequence) + bytes((_COM_QUERY,)))
    connection._write_bytes(view[:size - 1])
    sent = size - 1
    while size == _MAX_PACKET:
        sequence = (sequence + 1) % 256
        size = min(_MAX_PACKET, len(view) - sent)
        connection._write_bytes(_packet_header(size, sequence))
        if size:
            connection._write_bytes(view[sent:sent + size])
        sent += size
    connection._next_seq_id = (sequence + 1) % 256
    connection._affected_rows = connection._read_query_result()
    return connection._affected_rows


def _packet_header(size: int, sequence: int) -> bytes:
    return size.to_bytes(3, "little") + bytes((sequence,))
