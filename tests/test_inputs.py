"""Input and state on the real sandbox: drkit.yaml edits survive `sandbox up`, a `drkit run`
killed with -9 leaves a record that says interrupted, a storage outage during a backup."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from drkit.sandbox.services import STORAGE_ACCOUNT
from tests.helpers import point_cli_at, run_cli, wait_until

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
    wait_until(lambda: any(root.rglob("notebook.ipynb")) or process.poll() is not None,
               "papermill starting", seconds=120, every=0.2)
    assert process.poll() is None, log.read_text()
    marker = next(root.rglob("run.json"))
    assert json.loads(marker.read_text())["status"] == "running"
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    # papermill, in its own session, goes on to its end; the record's lock tells when.
    wait_until(lambda: _lock_free(marker.parent / "run.lock"), "papermill ending", seconds=600,
               every=0.2)
    run_id = marker.parent.name

    listed = run_cli("audit", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    run = next(r for r in json.loads(listed.stdout)["runs"] if r["run_id"] == run_id)
    assert run["status"] == "interrupted" and run["verdict"] == "INTERRUPTED"
    assert run["exit_code"] == 137
    assert "was killed (SIGKILL" in run["message"]
    assert run["files"]  # the notebook papermill finished, with its HTML, is the record
    assert json.loads(marker.read_text())["status"] == "interrupted"
    # Closed once: the next listing publishes nothing again, and says the same.
    again = run_cli("audit", "list", "--json")
    assert again.exit_code == 0, again.stderr
    assert [r["status"] for r in json.loads(again.stdout)["runs"] if r["run_id"] == run_id] == [
        "interrupted"]


class StorageProxy:
    """A TCP proxy in front of Azurite that fails requests as an outage would: from the
    ``nth`` PUT of a manifest on, either every connection dies and the port refuses
    (``cut``: the storage is gone) or only those PUTs fail (``fail``)."""

    def __init__(self, port: int, nth: int, mode: str) -> None:
        self.upstream, self.nth, self.mode = port, nth, mode
        self.seen, self.cut = 0, False
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and MANIFEST_PUT.search(data):
                    with self.lock:
                        self.seen += 1
                        failing = self.seen >= self.nth
                    if failing:
                        self._fail(source, sink)
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _fail(self, client: socket.socket, upstream: socket.socket) -> None:
        if self.mode == "cut":  # the storage is gone: no connection, none accepted
            self.close()
        else:
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self.cut = True
        with contextlib.suppress(OSError):  # close() alone leaves a blocked accept() taking
            self.server.shutdown(socket.SHUT_RDWR)  # the next connection: the port refuses
        with contextlib.suppress(OSError):
            self.server.close()
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


MANIFEST_PUT = re.compile(rb"^PUT [^ ]*\.manifest\.json[ ?]", re.MULTILINE)


def _blobs(sandbox, prefix: str) -> list[str]:
    store = BackupStore.from_settings(load_settings(sandbox.config_path), prefix=prefix)
    return [b.name for b in store.container.list_blobs(name_starts_with=prefix)]


@pytest.fixture
def through_proxy(sandbox, tmp_path, monkeypatch):
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    proxies = []

    def start(nth: int, mode: str) -> StorageProxy:
        proxy = StorageProxy(sandbox.port("azurite"), nth, mode)
        proxies.append(proxy)
        monkeypatch.setenv("DRKIT_STORAGE__ENDPOINT",
                           f"http://127.0.0.1:{proxy.port}/{STORAGE_ACCOUNT}")
        return proxy

    yield prefix, start
    for proxy in proxies:
        proxy.close()


def test_storage_outage_at_publish_is_an_upload_failure_and_doctor_names_the_claim(
        sandbox, through_proxy, monkeypatch):
    prefix, start = through_proxy
    proxy = start(2, "cut")  # the 1st manifest PUT is the claim, the 2nd the manifest itself
    # A process of its own, gone afterwards, as under cron.
    monkeypatch.setenv("DRKIT_STORAGE__RETRIES", "0")  # failing at once: retries only wait
    result = subprocess.run([DRKIT, "backup"], capture_output=True, text=True, timeout=600)
    assert proxy.cut
    assert result.returncode == 21, result.stderr
    assert "Publishing backup " in result.stderr and "nothing was committed" in result.stderr
    assert "could not be removed" in result.stderr  # the claim it had to leave is named

    monkeypatch.delenv("DRKIT_STORAGE__ENDPOINT")  # the storage is back
    left = _blobs(sandbox, prefix)
    assert len(left) == 1 and left[0].endswith(".manifest.json")  # the claim, nothing else
    doctor = run_cli("doctor", "--json")
    claims = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "backup name claim"]
    assert [c["status"] for c in claims] == ["WARNING"], doctor.stdout
    assert left[0] in claims[0]["detail"] and "pid " in claims[0]["detail"]
    assert left[0] in claims[0]["fix"]


def test_storage_failing_the_publish_removes_the_claim_when_it_can(sandbox, through_proxy,
                                                                    monkeypatch):
    monkeypatch.setenv("DRKIT_STORAGE__RETRIES", "0")  # failing at once: retries only wait
    prefix, start = through_proxy
    start(2, "fail")  # the manifest's PUTs fail, everything else (the claim's delete) works
    result = run_cli("backup")
    assert result.exit_code == 21, result.stderr
    assert "nothing was committed" in result.stderr
    monkeypatch.delenv("DRKIT_STORAGE__ENDPOINT")
    assert _blobs(sandbox, prefix) == []  # no claim, no blob


def test_backup_of_a_database_the_source_lacks_points_at_the_name_given(sandbox, tmp_path,
                                                                        monkeypatch):
    """``backup -d nosuchdb`` said "check the database names in the config", which did not
    name it: the fix names where the name came from."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    result = run_cli("backup", "-d", "nosuchdb")
    assert result.exit_code == 12
    assert "Database 'nosuchdb' does not exist on the source server" in result.stderr
    assert "Name a database the source has (SHOW DATABASES lists them): with --database" in \
        result.stderr and "Check the database names in the config" not in result.stderr
