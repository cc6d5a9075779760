"""The sandbox's lifecycle on real MariaDB, Azurite and moto processes."""

from __future__ import annotations

import json

import pymysql
import pytest

from drkit import programs
from drkit.config import load_settings
from drkit.sandbox.estate import Sandbox
from drkit.secrets import resolver_for
from tests.helpers import port_listening, process_alive, run_cli

pytestmark = pytest.mark.integration


def test_up_twice_status_and_down_leaves_nothing(tmp_path):
    directory = tmp_path / "box"
    first = run_cli("sandbox", "up", "--dir", str(directory), "--size", "1MiB")
    assert first.exit_code == 0, first.stderr
    try:
        status = run_cli("sandbox", "status", "--dir", str(directory), "--json")
        assert status.exit_code == 0, status.stdout
        services = {s["name"]: s for s in json.loads(status.stdout)}
        assert set(services) == {"source", "target", "azurite", "moto", "azure"}
        assert all(s["healthy"] and s["running"] for s in services.values())

        again = run_cli("sandbox", "up", "--dir", str(directory))
        assert again.exit_code == 0, again.stderr
        after = {s["name"]: s for s in json.loads(
            run_cli("sandbox", "status", "--dir", str(directory), "--json").stdout)}
        # Idempotent: the same processes on the same ports, nothing started twice.
        assert {n: (s["pid"], s["port"]) for n, s in after.items()} == {
            n: (s["pid"], s["port"]) for n, s in services.items()}

        settings = load_settings(directory / "drkit.yaml")
        assert settings.source.port == services["source"]["port"]
        assert "secret:" in settings.source.password  # a reference, not the value
        # The Azure login is a file only its owner reads; the vault answers with it.
        secret_file = directory / "private" / "azure-client-secret"
        assert settings.azure.client_secret == f"file:{secret_file}"
        assert secret_file.stat().st_mode & 0o077 == 0
        assert resolver_for(settings).value(["keyvault:azure-storage-account"]) == "bloberry01"
        box = Sandbox(directory)
        for role in ("source", "target"):  # temporary tables inside the sandbox's directory
            with box.services[role].root_connection() as connection, \
                    connection.cursor() as cursor:
                cursor.execute("SELECT @@GLOBAL.tmpdir")
                assert cursor.fetchone()[0] == str(directory / role / "tmp")
        for role in ("source", "target"):  # no root without a password over TCP
            with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
                pymysql.connect(host="127.0.0.1", port=services[role]["port"], user="root",
                                ssl_ca=str(directory / "private" / "tls" / "ca.pem"))
    finally:
        down = run_cli("sandbox", "down", "--dir", str(directory))
    assert down.exit_code == 0
    for service in services.values():
        assert not process_alive(service["pid"]), service
        assert not port_listening(service["port"]), service
    stopped = run_cli("sandbox", "status", "--dir", str(directory), "--json")
    assert stopped.exit_code == 1
    assert not any(s["running"] for s in json.loads(stopped.stdout))


def test_up_restarts_a_dead_service_and_keeps_its_data(tmp_path):
    box = Sandbox(tmp_path / "box", demo_size=512 * 1024)
    box.up()
    try:
        source = next(s for s in box.status() if s.name == "source")
        box.stop_service("source")
        assert not next(s for s in box.status() if s.name == "source").healthy
        box.up()
        restarted = next(s for s in box.status() if s.name == "source")
        assert restarted.healthy and restarted.pid != source.pid
        assert restarted.port == source.port
        secret = box.secret()
        connection = pymysql.connect(host="127.0.0.1", port=restarted.port, user="admin",
                                     password=secret["rds_password"], database="shop")
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM customers")
            assert cursor.fetchone()[0] > 0
        connection.close()
    finally:
        box.down()


def test_missing_program_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(programs, "_EXTRA_DIRS", ())
    result = run_cli("sandbox", "up", "--dir", str(tmp_path / "box"))
    assert result.exit_code == 5
    assert "mariadbd was not found: install the Debian package mariadb-server" in result.stderr
    assert not (tmp_path / "box").exists()


@pytest.mark.parametrize("missing,package", [
    ("azurite-blob", "install the npm package azurite"),
    ("moto_server", "install the PyPI package moto[server]"),
])
def test_missing_tools_are_named(tmp_path, monkeypatch, missing, package):
    # A PATH holding every sandbox program but one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for key in ("mariadbd", "mariadb-install-db", "azurite-blob", "moto_server"):
        if key != missing:
            (bin_dir / key).symlink_to(programs.find_program(key))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(programs, "_EXTRA_DIRS", ())
    result = run_cli("sandbox", "up", "--dir", str(tmp_path / "box"))
    assert result.exit_code == 5
    assert f"{missing} was not found: {package}" in result.stderr
