"""SIGTERM (cron's timeout, systemd, kill) stops a backup or a runbook run cleanly: exit 143,
the run says "interrupted", nothing half-done is published, no process is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from drkit.aws.clients import boto_client
from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from tests import dbtools
from tests.helpers import point_cli_at, process_stopped, wait_until

DRKIT = str(Path(sys.executable).parent / "drkit")
DATABASE = "signal_big"


@pytest.fixture(scope="module")
def big_database(sandbox):
    """About 80 MB of dump: a backup of it runs for seconds."""
    dbtools.query(sandbox, "source", f"DROP DATABASE IF EXISTS {DATABASE}")
    dbtools.query(sandbox, "source", f"CREATE DATABASE {DATABASE}")
    dbtools.query(sandbox, "source", f"CREATE TABLE {DATABASE}.t (id INT PRIMARY KEY, "
                                     "b LONGBLOB)")
    for start in range(0, 40, 8):
        dbtools.query(sandbox, "source", f"INSERT INTO {DATABASE}.t SELECT seq, "
                      f"RANDOM_BYTES(1024) FROM seq_{start}_to_{start + 7}", DATABASE)
        dbtools.query(sandbox, "source", f"UPDATE {DATABASE}.t SET b = REPEAT(b, 2048) "
                      f"WHERE id BETWEEN {start} AND {start + 7}")
    yield
    dbtools.query(sandbox, "source", f"DROP DATABASE {DATABASE}")


def start(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    process = subprocess.Popen([DRKIT, *args], stdout=subprocess.DEVNULL,
                               stderr=log.open("wb"), env=env)
    return process, log


def wait_for(log: Path, text: str, process: subprocess.Popen, seconds: float = 60) -> None:
    def seen() -> bool:
        assert process.poll() is None, log.read_text()
        return text in log.read_text(errors="replace")

    wait_until(seen, f"{text!r} in the log", seconds)


def dump_reads(sandbox, process: subprocess.Popen) -> bool:
    """True once mysqldump reads the big table on the source (its SELECT is running)."""
    assert process.poll() is None
    return bool(dbtools.as_root(sandbox, "source", "SELECT ID FROM information_schema."
                                f"PROCESSLIST WHERE INFO LIKE 'SELECT %FROM `t`%' "
                                f"AND DB = '{DATABASE}'"))


def cell_running(record_root: Path, cell_id: str) -> bool:
    """True once papermill's copy of the notebook says the cell ``cell_id`` runs (papermill
    saves the notebook as each cell starts, its status ``running``)."""
    for notebook in record_root.rglob("notebook.ipynb"):
        try:
            cells = json.loads(notebook.read_text())["cells"]
        except (OSError, ValueError):  # being written: not yet
            return False
        return any(cell.get("id") == cell_id and
                   cell["metadata"].get("papermill", {}).get("status") == "running"
                   for cell in cells)
    return False


def processes_mentioning(text: str) -> list[str]:
    found = []
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and "pytest" not in command:
            found.append(command)
    return found


def test_sigterm_stops_a_backup_cleanly(sandbox, big_database, tmp_path, monkeypatch):
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    env = {**os.environ, "DRKIT_SOURCE__DATABASES": json.dumps([DATABASE])}
    process, log = start("backup", env=env)
    wait_for(log, "[1/4] preflight ... done", process)
    wait_until(lambda: dump_reads(sandbox, process), "mysqldump reading the table")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    text = log.read_text()
    assert "Backup INTERRUPTED: Interrupted by SIGTERM" in text
    assert "[2/4] dump + compress + upload ... done" not in text  # stopped inside the dump
    settings = load_settings(sandbox.config_path)
    store = BackupStore.from_settings(settings, prefix=prefix)
    assert list(store.container.list_blobs(name_starts_with=prefix)) == []  # no claim either
    assert processes_mentioning(DATABASE) == []  # mysqldump went with it
    assert not list(Path(tempfile.gettempdir()).glob("drkit-*.cnf"))
    cloudwatch = boto_client(settings.aws, "cloudwatch")  # the metrics say it was stopped
    now = time.time()
    interrupted = cloudwatch.get_metric_statistics(
        Namespace="drkit/Backup", MetricName="BackupInterrupted", StartTime=now - 600,
        EndTime=now + 60, Period=60, Statistics=["Sum"],
        Dimensions=[{"Name": "Database", "Value": DATABASE},
                    {"Name": "Environment", "Value": settings.environment}])["Datapoints"]
    assert sum(p["Sum"] for p in interrupted) >= 1


def test_sigterm_stops_a_runbook_run_and_its_notebook(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    folder = tmp_path / "runbooks"
    folder.mkdir()
    notebook = folder / "sleeper.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
                   "source": "config_path: str = None\nenvironment: str = None\n"
                             "results_path: str = None", "outputs": [],
                   "execution_count": None},
                  {"cell_type": "code", "id": "s", "metadata": {},
                   "source": "import time\ntime.sleep(300)", "outputs": [],
                   "execution_count": None}],
        "metadata": {"kernelspec": {"name": "drkit", "display_name": "drkit",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    (folder / "sleeper.yaml").write_text(textwrap.dedent("""\
        name: sleeper
        notebook: sleeper.ipynb
        environments: {sandbox: {}}
        """))
    env = {**os.environ, "DRKIT_RUNBOOKS": str(folder)}
    process, log = start("run", "sleeper", "--json", env=env)
    record_root = tmp_path / "state" / "audit" / "sleeper"
    wait_until(lambda: cell_running(record_root, "s"), "the kernel running the sleeping cell",
               seconds=120, every=0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 143, log.read_text()
    run = json.loads(next(record_root.rglob("run.json")).read_text())
    assert run["status"] == "interrupted" and run["exit_code"] == 143
    assert "Interrupted by SIGTERM" in run["message"]
    assert processes_mentioning(str(record_root)) == []  # papermill is gone


def test_sigterm_after_the_dump_leaves_a_whole_backup_or_nothing(sandbox, big_database,
                                                                  tmp_path, monkeypatch):
    """Between the dump's end and the commit (held there by a failpoint: on a quiet
    machine the commit came before the signal): never a manifest without its blob (the
    claim) or a blob without its manifest."""
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    env = {**os.environ, "DRKIT_SOURCE__DATABASES": json.dumps([DATABASE]),
           "DRKIT_FAILPOINT": "backup:2:stop"}  # 1: the lock taken; 2: all staged
    process, log = start("backup", env=env)
    wait_until(lambda: process_stopped(process.pid), "the backup held after its dump")
    assert "[2/4] dump + compress + upload ... done" in log.read_text()
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=60) == 143
    settings = load_settings(sandbox.config_path)
    store = BackupStore.from_settings(settings, prefix=prefix)
    names = sorted(b.name for b in store.container.list_blobs(name_starts_with=prefix))
    assert names == [] or [n.endswith(".manifest.json") for n in names] == [False, True]
