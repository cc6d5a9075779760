"""Test helpers that talk to the sandbox's MariaDB servers."""

from __future__ import annotations

import hashlib
import subprocess

import pymysql

from drkit.mysql.connection import Server, option_file
from drkit.programs import find_program
from drkit.sandbox.estate import Sandbox


def server(sandbox: Sandbox, role: str) -> Server:
    from pydantic import SecretStr

    if role == "source":
        user, key = "admin", "rds_password"
    else:
        user, key = "drkitadmin", "azure_mysql_password"
    return Server(role=role, host="127.0.0.1", port=sandbox.port(role), user=user,
                  password=SecretStr(sandbox.credential(key)))


def connect(sandbox: Sandbox, role: str, database: str | None = None) -> pymysql.Connection:
    s = server(sandbox, role)
    return pymysql.connect(host=s.host, port=s.port, user=s.user,
                           password=s.password.get_secret_value(), database=database,
                           charset="utf8mb4", autocommit=True)


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
    """Run ``PIPELINE | mysql`` against a sandbox server, as the seed's restore does."""
    with option_file(server(sandbox, role)) as options:
        subprocess.run(f"{pipeline} | {find_program('mysql')} --defaults-file={options}",
                       shell=True, check=True, pass_fds=(options.fd,))


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
                result[table] = (len(rows), hashlib.sha256(b"\n".join(rows)).hexdigest())
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
