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


def _parent(process: Path) -> int | None:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _processes(lab: subprocess.Popen, kernel: str) -> list[Path]:
    """drkit, its JupyterLab (a session of its own: Ctrl-C reaches drkit alone) and the
    kernel, once all three run."""
    def group() -> list[Path]:
        return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()
                and (int(entry.name) == lab.pid or _parent(entry) == lab.pid
                     or kernel.encode() in _cmdline(entry))]

    wait_until(lambda: len(group()) >= 3, f"kernel {kernel} started", seconds=30, every=0.5)
    return group()


def _stop_with_two_ctrl_c(lab: subprocess.Popen, jupyterlab: list[Path], publish: str) -> None:
    """Ctrl-C at the terminal: the first reminds to save, the second stops JupyterLab and
    says how to keep the record."""
    os.kill(lab.pid, signal.SIGINT)
    assert "Save the notebook in JupyterLab first" in lab.stdout.readline()
    assert lab.poll() is None and all(p.exists() for p in jupyterlab)
    os.kill(lab.pid, signal.SIGINT)
    assert lab.stdout.readline().strip() == \
        f"JupyterLab stopped. Keep the incident's record: {publish}"
    assert lab.wait(timeout=30) == 130
    assert jupyterlab and not any(p.exists() for p in jupyterlab)


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
        # Its three lines come once JupyterLab answers.
        assert "drkit" in _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")[
            "kernelspecs"]
        # Nothing of JupyterLab's below them: its INFO log is off, and so are the news and
        # update toasts that cover the notebook.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}") as page:
            assert '"news": {"disabled": true}' in page.read().decode()
        assert "[I " not in (tmp_path / "lab.log").read_text()
        # Every cell's start and end go into the notebook: the audit record's times.
        tracker = _get(f"http://127.0.0.1:{port}/lab/api/settings/"
                       f"@jupyterlab/notebook-extension:tracker?token={token}")
        assert json.loads(tracker["raw"])["recordTiming"] is True
        content = _get(f"http://127.0.0.1:{port}/api/contents/{notebook.name}?token={token}")
        assert content["type"] == "notebook"
        # The token opens a kernel holding the credentials: not in any process's arguments,
        # nor in the environment a kernel inherits (a cell could print it into the record).
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels?token={token}",
                                         data=b'{"name": "drkit"}', method="POST")
        kernel = json.loads(urllib.request.urlopen(request, timeout=30).read())["id"]
        group = _processes(lab, kernel)
        for process in group:
            assert token.encode() not in (process / "cmdline").read_bytes()
            assert token.encode() not in (process / "environ").read_bytes()
        _stop_with_two_ctrl_c(lab, [p for p in group if _parent(p) == lab.pid],
                              lines[2].split(": ", 1)[1])
    finally:
        if lab.poll() is None:
            os.kill(lab.pid, signal.SIGTERM)  # drkit alone: JupyterLab goes with it
            lab.wait(timeout=30)
    runtime = Path.home() / ".local" / "share" / "jupyter" / "runtime"
    for left in runtime.glob("*") if runtime.exists() else []:  # nothing of it left behind
        assert token.encode() not in left.read_bytes(), left
    copy = nbformat.read(notebook, as_version=4)
    injected = next(c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f"config_path = \"{os.environ['DRKIT_CONFIG']}\"" in injected.source
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
