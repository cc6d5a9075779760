"""Test helpers that talk to the sandbox's MariaDB servers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pymysql

from drkit.mysql.connection import OptionFile, Server
from drkit.programs import find_program
from drkit.sandbox.estate import Sandbox


def server(sandbox: Sandbox, role: str) -> Server:
    from pydantic import SecretStr

    if role in ("source", "source2"):
        user, key = "admin", "rds_password"
    else:
        user, key = "drkitadmin", "azure_mysql_password"
    return Server(role=role, host="127.0.0.1", port=sandbox.port(role), user=user,
                  password=SecretStr(sandbox.credential(key)), ssl_ca=sandbox.tls.ca)


def connect(sandbox: Sandbox, role: str, database: str | None = None) -> pymysql.Connection:
    s = server(sandbox, role)
    return pymysql.connect(host=s.host, port=s.port, user=s.user,
                           password=s.password.get_secret_value(), database=database,
                           charset="utf8mb4", autocommit=True, ssl=s.tls_context())


def query(sandbox: Sandbox, role: str, sql: str, database: str | None = None,
          args: tuple | None = None) -> list[tuple]:
    connection = connect(sandbox, role, database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())
    finally:
        connection.close()


def load_sql(sandbox: Sandbox, role: str, pipeline: str) -> None:
    """Run ``PIPELINE | mysql`` against a sandbox server, as the seed's restore does, as the
    server's root: a dump straight from mysqldump keeps its DEFINERs, which only a user
    with SUPER may give (Flexible Server's admin could not: drkit's restore rewrites them)."""
    with root_options(sandbox, role) as options:
        subprocess.run(f"{pipeline} | {find_program('mysql')} --defaults-file={options}",
                       shell=True, check=True, pass_fds=(options.fd,))


@contextlib.contextmanager
def root_options(sandbox: Sandbox, role: str) -> Iterator[OptionFile]:
    """A client option file (an open descriptor) for the server's root over its socket."""
    with tempfile.TemporaryFile("w+") as options:
        os.fchmod(options.fileno(), 0o600)
        password = sandbox.credential("mariadb_root_password")
        options.write(f'[client]\nuser=root\npassword="{password}"\n'
                      f"socket={sandbox.services[role].socket_path}\n")
        options.flush()
        yield OptionFile(options.fileno())


def table_fingerprint(sandbox: Sandbox, role: str, database: str) -> dict[str, tuple[int, str]]:
    """Every base table's row count and a hash of all its rows in primary-key/value order."""
    tables = [r[0] for r in query(sandbox, role,
              f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
              f"'{database}' AND TABLE_TYPE = 'BASE TABLE'")]
    result = {}
    connection = connect(sandbox, role, database)
    try:
        with connection.cursor() as cursor:
            for table in sorted(tables):
                cursor.execute(f"SELECT * FROM `{table}`")
                rows = sorted(repr(row).encode() for row in cursor.fetchall())
                # by lower-case name: the target folds them (lower_case_table_names=1)
                result[table.lower()] = (len(rows),
                                         hashlib.sha256(b"\n".join(rows)).hexdigest())
    finally:
        connection.close()
    return result


def objects(sandbox: Sandbox, role: str, database: str) -> dict[str, list]:
    from drkit.mysql.inventory import stored_objects

    connection = connect(sandbox, role)
    try:
        return stored_objects(connection, [database])
    finally:
        connection.close()


def as_root(sandbox: Sandbox, role: str, sql: str) -> list[tuple]:
    """As the server's operator (root): what Azure changes through server parameters, and
    the admin (no SUPER, as on Flexible Server) may not."""
    connection = sandbox.services[role].root_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def replay(sandbox: Sandbox, load_as: dict[str, str], notes: list, events,
           begin_twice: bool = False):
    """``events`` ((kind, data) pairs, after the table maps and formats in ``notes``)
    replayed into the target as restore --until replays them; the applier, closed.
    ``begin_twice``: each transaction begun twice, as MySQL's GTID event then its BEGIN
    begin it."""
    from drkit.binlog.events import GTID_EVENTS, QUERY
    from drkit.binlog.replay import RowApplier

    applier = RowApplier(server(sandbox, "target"), load_as)
    try:
        for kind, data in notes:
            applier.note(kind, data)
        for kind, data in events:
            if kind in GTID_EVENTS or (kind == QUERY and applier.is_begin(data)):
                applier.begin()
                if begin_twice:
                    applier.begin()
            applier.apply(kind, data)
        applier.finish()
    finally:
        applier.close()
    return applier
