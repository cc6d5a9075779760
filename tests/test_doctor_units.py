"""Doctor checks that need no service."""

from __future__ import annotations

from drkit.checks import CRITICAL, OK
from drkit.health.doctor import _dump_client_check
from drkit.mysql.dump import dump_client


def test_a_dump_client_of_another_flavour_than_the_server_is_critical():
    """This machine's client is MariaDB's; against MySQL 8 it breaks generated columns."""
    assert dump_client().flavour == "mariadb"
    check = _dump_client_check({"flavour": "mysql", "version": "8.0.36"})
    assert check.status == CRITICAL and "ERROR 3105" in check.detail
    assert "MySQL's own client" in check.fix
    assert _dump_client_check({"flavour": "mariadb", "version": "10.11"}).status == OK
