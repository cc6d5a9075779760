"""The wheel: built from the checkout, installed with its dependencies into a fresh virtual
environment outside it, then run as cron would run it, against the sandbox.

It proves that the runbooks and notebooks ship as package data, that the core install (no
extras) is what the nightly backup needs, and that a missing extra is named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from tests.conftest import repo_root

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _copy_sources(destination: Path) -> None:
    """The files git would commit (tracked and new), so no build output of the checkout leaks in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=repo_root(), check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = repo_root() / name, destination / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, outside the checkout, holding the wheel and its core dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    _copy_sources(work / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(work / "source")],
                   check=True, cwd=work)
    wheel = next((work / "dist").glob("drkit-*.whl"))
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(work / "venv" / "bin" / "pip"), "install", "-q",
                    "--disable-pip-version-check", "--no-compile", str(wheel)], check=True)
    return work / "venv"


def _clean_environment(venv: Path, **overrides: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DRKIT_", "VIRTUAL_ENV", "JUPYTER", "PYTHON"))}
    environment["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    return {**environment, **overrides}


def test_wheel_runs_the_nightly_backup_runbook_outside_the_checkout(installed, sandbox,
                                                                    tmp_path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import drkit, drkit.runbooks.runbook as r; "
                            "print(drkit.__file__); print(r.PACKAGED_NOTEBOOKS)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert all(line.startswith(str(installed)) for line in where.stdout.split())

    prefix = f"wheel-{uuid.uuid4().hex[:8]}/"
    environment = _clean_environment(installed, DRKIT_CONFIG=str(sandbox.config_path),
                                     DRKIT_STORAGE__PREFIX=prefix,
                                     DRKIT_BACKUP__STATE_DIR=str(tmp_path / "state"))
    run = subprocess.run([str(installed / "bin" / "drkit"), "run", "nightly-backup", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, env=environment,
                         stdin=subprocess.DEVNULL, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    outcome = json.loads(run.stdout)
    assert outcome["status"] == "succeeded" and outcome["published"]

    settings = load_settings(sandbox.config_path)
    settings.storage.prefix = prefix
    names = [b.name for b in BackupStore.from_settings(settings).container
             .list_blobs(name_starts_with=prefix)]
    assert any(name.endswith(".sql.gz.age") for name in names)  # the sandbox encrypts

    # The nightly is the backup host's: its config's schedule holds it.
    schedule = subprocess.run([str(installed / "bin" / "drkit"), "schedule", "show",
                               "--env", "prod"], capture_output=True, text=True,
                              cwd=tmp_path, env={**environment, "DRKIT_CONFIG": str(
                                  sandbox.backup_config_path)})
    assert schedule.returncode == 0, schedule.stderr
    assert f"{installed / 'bin' / 'drkit'} run nightly-backup --env prod" in schedule.stdout


def test_a_missing_extra_is_named_with_its_install_command(installed, tmp_path):
    up = subprocess.run([str(installed / "bin" / "drkit"), "sandbox", "up", "--dir",
                         str(tmp_path / "box")], capture_output=True, text=True, cwd=tmp_path,
                        env=_clean_environment(installed))
    assert up.returncode == 5
    assert "pip install 'drkit[sandbox]'" in up.stderr
    assert not (tmp_path / "box").exists()


def test_fleet_show_needs_no_dagster_and_fleet_run_names_its_extra(installed, tmp_path):
    (tmp_path / "shop.yaml").write_text(
        "environment: prod\nsource: {host: rds.example, databases: [shop]}\n")
    (tmp_path / "fleet.yaml").write_text(
        "members: {shop: {config: shop.yaml, objectives: {rpo_minutes: 60}}}\n")
    drkit = str(installed / "bin" / "drkit")
    environment = _clean_environment(installed, DRKIT_FLEET=str(tmp_path / "fleet.yaml"))
    assert subprocess.run([str(installed / "bin" / "python"), "-c", "import dagster"],
                          capture_output=True, env=environment).returncode != 0
    show = subprocess.run([drkit, "fleet", "show", "--offline", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=environment)
    assert show.returncode == 0, show.stderr
    assert [m["member"] for m in json.loads(show.stdout)["members"]] == ["shop"]
    run = subprocess.run([drkit, "fleet", "run", "backup"], capture_output=True, text=True,
                         cwd=tmp_path, env=environment)
    assert run.returncode == 5
    assert "pip install 'drkit[fleet]'" in run.stderr
