"""``drkit failover open``: the failover notebook for a person, in a folder of its own.

The incident commander runs the failover cell by cell in JupyterLab. Each incident gets a
copy of the notebook under the state directory (``incidents/<UTC time>-<env>/``), with the
config and environment filled in, so the checkout's notebook is never modified and
``drkit audit publish`` takes exactly the copy that was run. JupyterLab runs on drkit's own
interpreter through the same private kernelspec as ``drkit run``, on loopback with a token.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drkit.config import Settings
from drkit.errors import ParameterError, RunInterrupted
from drkit.interrupts import carry_on
from drkit.programs import require_extra
from drkit.runbooks.handrun import INCIDENT, RESULTS
from drkit.runbooks.parameters import check_parameters
from drkit.runbooks.runbook import Runbook
from drkit.runbooks.runner import kernel_environment, new_run_id

_STOP_WITHIN_SECONDS = 10
# JupyterLab without its INFO lines (they would bury drkit's three) and without the news and
# update toasts (one covers the notebook): an incident is no time for announcements.
_QUIET = {"Application": {"log_level": "WARN"}, "ServerApp": {"log_level": "WARN"},
          "LabApp": {"log_level": "WARN", "news_url": None,
                     "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}


# JupyterLab's own settings for the incident: every cell's start and end recorded in the
# notebook (the audit record's times), and no news.
_LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"recordTiming": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


@dataclass(frozen=True)
class Incident:
    folder: Path
    notebook: Path

    @property
    def publish_command(self) -> str:
        return f"drkit audit publish {self.notebook} --by YOUR_NAME"

    def url(self, port: int, token: str) -> str:
        return f"http://127.0.0.1:{port}/lab/tree/{self.notebook.name}?token={token}"


def new_incident(settings: Settings, config_path: Path, runbook: Runbook,
                 environment: str) -> Incident:
    """A fresh folder holding a parameterised copy of the runbook's notebook."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    runbook.environment(environment)  # an unknown environment is refused here
    started = datetime.now(UTC)
    folder = (settings.backup.state_dir.expanduser() / "incidents"
              / f"{started:%Y%m%dT%H%M%SZ}-{environment}")
    folder.mkdir(parents=True, mode=0o700)
    # The incident's run id and start: what its audit record is published under.
    (folder / INCIDENT).write_text(json.dumps({
        "run_id": new_run_id(runbook.name, environment, started),
        "started_at": started.isoformat(), "opened_by": getpass.getuser()}))
    notebook = folder / Path(runbook.notebook).name
    shutil.copyfile(runbook.notebook_path(), notebook)
    # The steps' results (timeline, gate answers, figures) are saved beside it as they
    # happen, as drkit run has them saved: audit publish builds the record from them.
    # The runbook's parameters for the environment too, as drkit run passes them: a person
    # starts from what an unattended run of this environment would do.
    parameters = check_parameters(runbook.name, runbook.notebook_path(),
                                  runbook.parameters_for(environment, {}))
    parameterized = parameterize_notebook(
        load_notebook_node(str(notebook)),
        {**parameters, "config_path": str(config_path.absolute()), "environment": environment,
         "results_path": str(folder / RESULTS)})
    nbformat.write(parameterized, notebook)
    return Incident(folder, notebook)


def run_lab(incident: Incident, port: int, token: str, say: Callable[[str], None]) -> int:
    """JupyterLab on the incident folder until it is stopped; its exit code.

    drkit's three lines (``say``) come once it serves, so they are last. Ctrl-C reaches drkit
    alone (JupyterLab runs in a session of its own): the first reminds the person to save,
    as the browser holds what was not saved; a second within ten seconds stops JupyterLab
    (RunInterrupted, 130) after saying how to keep the record."""
    require_extra("lab", "drkit failover open")
    _refuse_taken(port)
    with lab(incident, port, token) as (command, environment):
        process = subprocess.Popen(command, env=environment, start_new_session=True)
        try:
            if _serving(process, port):
                say(f"incident notebook: {incident.notebook}")
                say(f"open: {incident.url(port, token)}")
                say(f"afterwards: {incident.publish_command}")
            return _wait(process, lambda: say(
                "Save the notebook in JupyterLab first (Ctrl-S): what is not saved is lost "
                "when it stops. Press Ctrl-C again within 10 s to stop it."))
        except RunInterrupted:
            say(f"JupyterLab stopped. Keep the incident's record: {incident.publish_command}")
            raise
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()


def _wait(process: subprocess.Popen, remind: Callable[[], None]) -> int:
    asked = None
    while True:
        try:
            return process.wait()
        except RunInterrupted:
            if asked is not None and time.monotonic() - asked < _STOP_WITHIN_SECONDS:
                raise
            asked = time.monotonic()
            carry_on()
            remind()


def _refuse_taken(port: int) -> None:
    """A port another program listens on would answer for JupyterLab: drkit would print a
    URL, with the token, that leads to that program, while JupyterLab exits."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise ParameterError(
                f"Port {port} on 127.0.0.1 is not free for JupyterLab ({error.strerror}); "
                "nothing was started.", "Pass another one with --port.") from None


def _serving(process: subprocess.Popen, port: int) -> bool:
    """Whether JupyterLab came to answer on ``port`` (False: it exited first)."""
    while process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def lab(incident: Incident, port: int, token: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The command and environment of a JupyterLab on the incident folder, with drkit's
    kernel. Its token is in a config file only its user reads, for as long as it runs: not
    in its arguments (any local user can list them) nor in its environment (its kernels
    inherit that, and a notebook could print it into the record), nor left behind."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={incident.folder}",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", "--no-browser"]
    if os.geteuid() == 0:  # JupyterLab refuses root unless told (the quick start is root)
        command.append("--allow-root")
    with kernel_environment() as environment, \
            tempfile.TemporaryDirectory(prefix="drkit-lab-") as private:
        config = Path(private) / "jupyter_server_config.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"IdentityProvider": {"token": token}, **_QUIET}, handle)
        settings = Path(private) / "settings"
        for name, values in _LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        # Its runtime files (one holds the token in a URL) in the same private folder,
        # removed when the lab ends, not in ~/.local/share/jupyter/runtime.
        yield command, {**environment, "JUPYTER_CONFIG_DIR": private,
                        "JUPYTER_RUNTIME_DIR": private, "JUPYTERLAB_SETTINGS_DIR": str(settings)}


def new_token() -> str:
    return secrets.token_urlsafe(24)
