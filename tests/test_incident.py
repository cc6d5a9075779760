"""``drkit failover open``: a copy per incident, opened in a real JupyterLab with drkit's
kernel; the notebook drkit ships is never touched."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat

from drkit.runbooks.runbook import PACKAGED_NOTEBOOKS
from drkit.sandbox.services import free_port
from tests.helpers import point_cli_at, wait_until


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""


def _pgid(process: Path) -> int | None:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_failover_open_serves_a_copy_with_drkits_kernel(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    shipped = PACKAGED_NOTEBOOKS / "failover.ipynb"
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    port = free_port()
    log = (tmp_path / "lab.log").open("w")
    lab = subprocess.Popen([str(Path(sys.executable).parent / "drkit"), "failover", "open",
                            "--port", str(port)], stdout=subprocess.PIPE, text=True,
                           stderr=log, start_new_session=True, env=os.environ)
    try:
        lines = [lab.stdout.readline().strip() for _ in range(3)]
        notebook = Path(lines[0].removeprefix("incident notebook: "))
        url = lines[1].removeprefix("open: ")
        token = url.split("token=")[1]
        assert notebook.parent.parent.name == "incidents" and notebook.exists()
        assert lines[2] == f"afterwards: drkit audit publish {notebook} --by YOUR_NAME"
        def answering() -> bool:
            assert lab.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
            try:
                _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
            except OSError:
                return False
            return True

        wait_until(answering, "JupyterLab answering", every=0.5)
        specs = _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
        assert "drkit" in specs["kernelspecs"]
        content = _get(f"http://127.0.0.1:{port}/api/contents/{notebook.name}?token={token}")
        assert content["type"] == "notebook"
        # The token opens a kernel holding the credentials: not in any process's arguments,
        # nor in the environment a kernel inherits (a cell could print it into the record).
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels?token={token}",
                                         data=b'{"name": "drkit"}', method="POST")
        kernel = json.loads(urllib.request.urlopen(request, timeout=30).read())["id"]
        def group() -> list[Path]:  # drkit and JupyterLab (their group), and the kernel
            return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()
                    and (_pgid(entry) == lab.pid or kernel.encode() in _cmdline(entry))]

        wait_until(lambda: len(group()) >= 3, f"kernel {kernel} started", seconds=30,
                   every=0.5)
        for process in group():
            assert token.encode() not in (process / "cmdline").read_bytes()
            assert token.encode() not in (process / "environ").read_bytes()
    finally:
        # As systemd or a person's kill would: drkit alone; JupyterLab goes with it.
        os.kill(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
    runtime = Path.home() / ".local" / "share" / "jupyter" / "runtime"
    for left in runtime.glob("*") if runtime.exists() else []:  # nothing of it left behind
        assert token.encode() not in left.read_bytes(), left
    copy = nbformat.read(notebook, as_version=4)
    injected = next(c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f"config_path = \"{os.environ['DRKIT_CONFIG']}\"" in injected.source
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
