"""How the sandbox starts its MariaDB servers, read from the commands it builds: no process is
started."""

from __future__ import annotations

import pytest

from drkit.sandbox import services
from drkit.sandbox.estate import Sandbox


@pytest.fixture
def box(tmp_path, monkeypatch) -> Sandbox:
    monkeypatch.setattr(services, "find_program", lambda name: name)
    return Sandbox(tmp_path / "box")


@pytest.mark.parametrize("role", ["source", "target"])
def test_each_server_and_its_bootstrap_keep_temporary_files_in_the_sandbox(box, role):
    """A cleaner of the shared /tmp once deleted a running server's temporary table."""
    server = box.services[role]
    own = box.directory / role / "tmp"
    for command in (server.command(3306), server.install_command()):
        assert f"--tmpdir={own}" in command, command
        assert not [option for option in command if option.startswith("--tmpdir=")
                    and option != f"--tmpdir={own}"]
    assert own.is_dir()  # made before the server starts: mariadbd refuses a missing one


def test_the_servers_never_share_a_temporary_folder(box):
    folders = {box.services[role].tmpdir for role in ("source", "target")}
    assert len(folders) == 2
    assert all(folder.is_relative_to(box.directory) for folder in folders)


def test_the_backup_sides_config_holds_a_sas_without_delete_and_no_identity(box):
    from urllib.parse import parse_qs

    from drkit.config import Settings
    from drkit.sandbox.estate import backup_side

    azure_side = {"side": "azure", "source": {"host": "db", "databases": ["shop"]},
                  "storage": {"account": "bloberry01", "key": "secret:azure_storage_key"},
                  "azure": {"resource_group": "rg"},
                  "encryption": {"recipients": [], "identity": "keyvault:backup-age-identity"}}
    config = backup_side(azure_side)
    assert config["storage"] == {"account": "bloberry01", "auth": "sas",
                                 "sas": "secret:azure_storage_sas"}
    assert "azure" not in config and config["encryption"] == {"recipients": []}
    assert Settings(**config).side == "backup"  # a valid config
    # The token the sandbox keeps in its AWS secret for it: no d, x or y.
    permissions = parse_qs(box.backup_side_sas())["sp"][0]
    assert sorted(permissions) == sorted("racwlt")
