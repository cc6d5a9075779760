"""Verified TLS to both servers, the target refusing plain connections as Flexible Server
does, and each TLS failure with its own message (exit 17)."""

from __future__ import annotations

import pymysql
import pytest
from pydantic import SecretStr

from drkit.mysql.connection import Server
from drkit.sandbox.tls import SandboxTls
from tests import dbtools
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def cli(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    return monkeypatch


def test_the_target_refuses_a_connection_without_tls(sandbox):
    with dbtools.connect(sandbox, "target") as verified, verified.cursor() as cursor:
        cursor.execute("SELECT @@require_secure_transport")
        assert cursor.fetchone() == (1,)
    server = dbtools.server(sandbox, "target")
    # MariaDB says "access denied" to a plain login here (MySQL 8 says ERROR 3159).
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(host=server.host, port=server.port, user=server.user,
                        password=server.password.get_secret_value(), ssl_disabled=True)


def test_tls_disabled_against_the_target_says_it_needs_tls(sandbox, cli):
    assert run_cli("backup").exit_code == 0
    cli.setenv("DRKIT_TARGET__TLS", "disabled")
    result = run_cli("restore", "latest", "--as", "never_made")
    assert result.exit_code == 17, result.stderr
    assert "refuses connections without TLS" in result.stderr
    assert "target.tls to verify-identity" in result.stderr


def test_a_certificate_from_another_ca_is_refused_by_pymysql_and_mysqldump(sandbox, cli,
                                                                          tmp_path):
    other_ca = SandboxTls(tmp_path / "other").ensure().ca
    cli.setenv("DRKIT_SOURCE__SSL_CA", str(other_ca))
    result = run_cli("backup")
    assert result.exit_code == 17, result.stderr
    assert "is not signed by a CA in" in result.stderr and "source.ssl_ca" in result.stderr
    # "required" encrypts without verifying: the same CA mismatch goes through
    cli.setenv("DRKIT_SOURCE__TLS", "required")
    assert run_cli("backup").exit_code == 0


@pytest.mark.parametrize(("tls", "mariadb", "mysql"), [
    ("verify-identity", ["ssl", "tls-version=TLSv1.2,TLSv1.3", "ssl-verify-server-cert",
                         "ssl-ca=/ca.pem"], ["ssl-mode=VERIFY_IDENTITY", "ssl-ca=/ca.pem"]),
    # MariaDB's client verifies the CA only with the host name: stricter, never weaker.
    ("verify-ca", ["ssl", "tls-version=TLSv1.2,TLSv1.3", "ssl-verify-server-cert",
                   "ssl-ca=/ca.pem"], ["ssl-mode=VERIFY_CA", "ssl-ca=/ca.pem"]),
    ("required", ["ssl", "tls-version=TLSv1.2,TLSv1.3"], ["ssl-mode=REQUIRED"]),
    ("disabled", ["skip-ssl"], ["ssl-mode=DISABLED"]),
])
def test_the_clients_get_the_same_tls_mode(tls, mariadb, mysql):
    """MySQL 8's client options from its manual (--ssl-mode); MariaDB's from mariadb-dump
    --help (--ssl, --ssl-verify-server-cert, --tls-version)."""
    server = Server("source", "db", 3306, "u", SecretStr("p"), tls=tls, ssl_ca="/ca.pem")
    assert server.client_tls_options("mariadb") == mariadb
    assert server.client_tls_options("mysql") == mysql


def test_a_ca_file_that_is_not_one_is_a_config_error(sandbox, cli, tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path in (tmp_path / "missing.pem", not_pem):
        cli.setenv("DRKIT_SOURCE__SSL_CA", str(path))
        result = run_cli("backup")
        assert result.exit_code == 3, result.stderr
        assert f"source.ssl_ca {path} cannot be used as a CA bundle" in result.stderr
