"""Input and state on the real sandbox: drkit.yaml edits survive `sandbox up`, a `drkit run`
killed with -9 leaves a record that says interrupted, a storage outage during a backup."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from drkit.config import load_settings
from tests.conftest import point_cli_at
from tests.helpers import run_cli

pytestmark = pytest.mark.integration
DRKIT = str(Path(sys.executable).parent / "drkit")


def test_sandbox_up_after_a_stop_keeps_the_users_edits(sandbox):
    path = sandbox.config_path
    original = path.read_text()
    config = yaml.safe_load(original)
    config["binlog"] = {"enabled": False, "prefix": "binlogs/", "heartbeat_seconds": 7}
    config["backup"]["local_copy_max_age_hours"] = 12
    config["source"]["connect_timeout"] = 9
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    moto = sandbox.port("moto")
    try:
        sandbox.stop_service("moto")
        sandbox.up()
        kept = yaml.safe_load(path.read_text())
        assert kept["binlog"] == {"enabled": False, "prefix": "binlogs/",
                                  "heartbeat_seconds": 7}
        assert kept["backup"]["local_copy_max_age_hours"] == 12
        assert kept["source"]["connect_timeout"] == 9
        assert kept["source"]["port"] == sandbox.port("source")  # what up owns, up's
        assert sandbox.port("moto") == moto
        assert load_settings(path).binlog.heartbeat_seconds == 7  # still a valid config
        sandbox.up()  # and again: an edit is not taken for up's own value the second time
        assert yaml.safe_load(path.read_text())["source"]["connect_timeout"] == 9
    finally:
        path.write_text(original)
        sandbox.up()


def _wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.2)


def _lock_free(lock: Path) -> bool:
    """True once neither drkit run nor papermill holds the record's lock."""
    handle = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(handle)


def test_kill_9_of_drkit_run_leaves_a_record_audit_list_shows_interrupted(sandbox, tmp_path,
                                                                           monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    assert run_cli("backup").exit_code == 0
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    process = subprocess.Popen([DRKIT, "run", "restore-drill"], stdout=subprocess.DEVNULL,
                               stderr=log.open("wb"), env=dict(os.environ))
    root = tmp_path / "state" / "audit" / "restore-drill"
    # run.json is there, saying running, before papermill writes its first cell.
    _wait_until(lambda: any(root.rglob("notebook.ipynb")) or process.poll() is not None, 120,
                "papermill starting")
    assert process.poll() is None, log.read_text()
    marker = next(root.rglob("run.json"))
    assert json.loads(marker.read_text())["status"] == "running"
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    # papermill, in its own session, goes on to its end; the record's lock tells when.
    _wait_until(lambda: _lock_free(marker.parent / "run.lock"), 600, "papermill ending")
    run_id = marker.parent.name

    listed = run_cli("audit", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    run = next(r for r in json.loads(listed.stdout) if r["run_id"] == run_id)
    assert run["status"] == "interrupted" and run["verdict"] == "INTERRUPTED"
    assert run["exit_code"] == 137
    assert "was killed (SIGKILL" in run["message"]
    assert run["files"]  # the notebook papermill finished, with its HTML, is the record
    assert json.loads(marker.read_text())["status"] == "interrupted"
    # Closed once: the next listing publishes nothing again, and says the same.
    again = run_cli("audit", "list", "--json")
    assert again.exit_code == 0, again.stderr
    assert [r["status"] for r in json.loads(again.stdout) if r["run_id"] == run_id] == [
        "interrupted"]
