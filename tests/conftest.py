"""One sandbox (real MariaDB x2, Azurite, moto) for the whole test session.

Tests that need to stop or break a service start their own sandbox instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkit.config import Settings, load_settings
from drkit.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        box.up()
        yield box
    finally:
        box.down()


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return load_settings(sandbox.config_path)


@pytest.fixture(autouse=True)
def _no_drkit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own DRKIT_* variables must not leak into tests.
    for name in list(os.environ):
        if name.startswith("DRKIT_"):
            monkeypatch.delenv(name)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def store(settings: Settings):
    from drkit.blobstore import BackupStore
    from drkit.secrets import SecretResolver

    return BackupStore.from_settings(settings, SecretResolver(settings))


@pytest.fixture
def backup_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Sandbox settings with this test's own lock directory and run log."""
    settings.backup.state_dir = tmp_path / "state"
    settings.backup.log_file = tmp_path / "backup.log"
    return settings
