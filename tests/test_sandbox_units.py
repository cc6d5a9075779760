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
