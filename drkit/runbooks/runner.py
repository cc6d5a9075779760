"""``drkit run``: execute a runbook's notebook with papermill and keep the audit record.

papermill runs in its own process group so the overall timeout can stop it and its kernel
together; the executed notebook it writes after every cell is the record even of a run
that failed or was stopped. How the run ended becomes drkit's exit code: a cell that raised
one of drkit's errors exits with that error's code, any other cell error with 40, and a
papermill or kernel failure (kernel missing or dead, timeout) with 41.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from drkit import __version__
from drkit.azure.blobstore import BackupStore
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    AuditRefusedError,
    ConfigError,
    DrkitError,
    RunbookStepError,
    RunStopped,
)
from drkit.exitstatus import ExitStatus
from drkit.redact import known_secrets
from drkit.runbooks import verdict
from drkit.runbooks.audit import HTML, LOCK, NOTEBOOK, AuditRecord, interrupted_records
from drkit.runbooks.handrun import examine, notebook_identity
from drkit.runbooks.outcome import KERNEL, failed_cell, outcome
from drkit.runbooks.parameters import check_parameters
from drkit.runbooks.runbook import Runbook
from drkit.runbooks.steps import running_step
from drkit.secrets import resolver_for

_STOP_GRACE_SECONDS = 20


@dataclass
class RunOutcome:
    run_id: str
    status: str  # succeeded or failed
    exit_code: int
    message: str
    record: Path
    published: list[str]
    summary: list[str] = field(default_factory=list)  # verdict line, then key figures
    record_url: str | None = None  # the published notebook (HTML)
    # Why the record was not published (a secret in it: 42; the storage: 13-16), if it was not.
    publish_failure: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["record"] = str(self.record)
        data["ok"] = self.exit_code == ExitStatus.OK
        return data


@dataclass(frozen=True)
class RunRequest:
    """A runbook to run: in which environment (None: the config's), with which parameters
    given on the command line (over the runbook's and its environment's own)."""

    runbook: Runbook
    environment: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    # DRKIT_* variables over the config, for the run's notebook: what the fleet imposes on
    # its members' runs (DRKIT_BACKUP__LOCKS).
    settings_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Run:
    """One run of a runbook, and the audit record it leaves."""

    runbook: Runbook
    environment: str
    run_id: str
    record: AuditRecord


@contextlib.contextmanager
def kernel_environment(python: str = sys.executable,
                       settings_env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """papermill's environment, in which the kernel ``drkit`` is ``python`` (drkit's own
    interpreter) whatever kernels the machine has: a kernelspec in a private folder, first
    on JUPYTER_PATH. A wheel installed anywhere runs its notebooks on itself, and nothing
    needs to be installed for it (JupyterLab uses the kernel install.sh installs)."""
    with tempfile.TemporaryDirectory(prefix="drkit-kernel-") as directory:
        spec = Path(directory) / "kernels" / KERNEL
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "drkit", "language": "python"}))
        search = [directory, *filter(None, [os.environ.get("JUPYTER_PATH")])]
        yield {**os.environ, **(settings_env or {}), "JUPYTER_PATH": os.pathsep.join(search)}


def run_runbook(settings: Settings, config_path: Path, request: RunRequest,
                env: Environment | None = None) -> RunOutcome:
    """Run ``request``'s runbook with papermill, ``config_path`` the notebook's config."""
    runbook, overrides = request.runbook, request.overrides
    environment = request.environment or settings.environment
    runbook.environment(environment)  # an unknown environment fails before anything runs
    # The backup side never reads backups back nor reaches the DR target: the Azure side's
    # runbooks are refused there before they leave a record (or turn the page on). The
    # Azure side may run the backup's (it holds a credential that can write).
    if settings.side == "backup" and runbook.side == "azure":
        raise ConfigError(f"Runbook {runbook.name} runs on the Azure side, and this config "
                          "is the backup side's (side: backup); nothing ran.",
                          "Run it with the Azure side's config.")
    # Typed and checked before anything runs (or leaves a record): approve=maybe is an error.
    parameters = check_parameters(runbook.name, runbook.notebook_path(),
                                  runbook.parameters_for(environment, overrides),
                                  from_command_line=frozenset(overrides))
    started = datetime.now(UTC)
    run = _new_record(settings, runbook, environment, started)
    run_id, record = run.run_id, run.record
    injected = {"config_path": str(config_path.absolute()), "environment": environment,
                "results_path": str(record.directory / "results.json")}
    log_event("run.start", f"Run {run_id}: {runbook.name} ({environment})", run_id=run_id)
    details = {"mode": "papermill",
               "parameters": parameters,  # references only; secrets are never parameters
               "started_at": started.isoformat()}
    # The record says "running" before papermill starts; its lock, shared with papermill,
    # tells a run killed with -9 from one going on (close_interrupted).
    lock = record.start({"run_id": run_id, "runbook": runbook.name, "environment": environment,
                         "notebook": str(runbook.notebook), **details, "pid": os.getpid(),
                         "audit": {"container": runbook.audit.container,
                                   "prefix": record.blob_prefix}})
    try:
        try:
            with (env or Environment()).status(f"{runbook.name} ({environment})") as show:
                code, stderr = _papermill(request, {**parameters, **injected},
                                          record.directory, show, lock)
            exit_code, message = outcome(runbook, code, stderr,
                                         failed_cell(record.directory / NOTEBOOK))
        except RunStopped as stop:  # papermill is gone: record that
            exit_code, message = stop.exit_code, f"{runbook.name} was interrupted: {stop}"
        return _close_papermill_run(settings, run, details, exit_code, message)
    finally:
        os.close(lock)
        (record.directory / LOCK).unlink(missing_ok=True)


def close_interrupted(settings: Settings) -> list[RunOutcome]:
    """Close and publish the records of runs killed with -9 (or by a reboot): they say
    interrupted, with what their notebook shows. Called by drkit run and audit list."""
    closed = []
    for record, running in interrupted_records(settings.backup.state_dir.expanduser() / "audit"):
        try:
            runbook = Runbook(name=running["runbook"], notebook=running["notebook"],
                              environments={running["environment"]: {}},
                              audit={"container": running["audit"]["container"]})
        except (KeyError, TypeError, ValueError):  # not one drkit wrote: never stop a run
            log_event("run.record_unreadable", f"{record.directory / 'run.json'} says running "
                      "but is not a record drkit can close; look at it.", logging.WARNING)
            continue
        message = (f"{runbook.name} was interrupted: its drkit run (pid {running.get('pid')}) "
                   "was killed (SIGKILL, out of memory or a reboot) before it finished; the "
                   f"record was closed at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by a later "
                   "drkit")
        details = {k: running.get(k) for k in ("mode", "parameters", "started_at")}
        run = _Run(runbook, running["environment"], running["run_id"], record)
        closed.append(_close_papermill_run(settings, run, details, ExitStatus.KILLED, message))
    return closed


def _close_papermill_run(settings: Settings, run: _Run, details: dict[str, Any],
                         exit_code: int, message: str) -> RunOutcome:
    failed = failed_cell(run.record.directory / NOTEBOOK)
    results_file = run.record.directory / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results_file.unlink(missing_ok=True)
    return _close_record(settings, run, {
        **details, "failed_cell": asdict(failed) if failed else None, "results": results,
    }, (exit_code, message))


def record_notebook(settings: Settings, runbook: Runbook, notebook: Path,
                    environment: str | None = None, by: str | None = None) -> RunOutcome:
    """Keep a notebook a person ran (the failover, in JupyterLab) as an audit record: once,
    saying who published it, when its cells ran, and failed if any cell failed or never
    ran. A notebook that was never executed is refused (exit 42)."""
    environment = environment or settings.environment
    examined = examine(notebook, list(runbook.parameters_for(environment, {})))
    _refuse_republishing(_audit_store(settings, runbook), runbook, examined.notebook_sha256)
    saved = datetime.fromtimestamp(notebook.stat().st_mtime, UTC)
    started = examined.incident_started or examined.started
    run = _new_record(settings, runbook, environment, started or saved, examined.run_id)
    shutil.copyfile(notebook, run.record.directory / NOTEBOOK)
    failed = failed_cell(run.record.directory / NOTEBOOK)
    exit_code, message = outcome(runbook, 1 if failed else 0, "", failed)
    if failed is None and examined.unexecuted:
        exit_code = RunbookStepError.exit_code
        message = (f"{runbook.name} stopped before its end: {examined.unexecuted} of its "
                   f"{examined.code_cells} code cells never ran")
    return _close_record(settings, run, {
        "mode": "interactive",
        "parameters": examined.parameters,
        "started_at": started.isoformat() if started else None,
        "failed_cell": asdict(failed) if failed else None,
        "results": examined.results,
        "notebook_sha256": examined.notebook_sha256,
        "published_by": {"os_user": getpass.getuser(), "name": by},
    }, (exit_code, message), ended=examined.ended or saved)


def _audit_store(settings: Settings, runbook: Runbook) -> BackupStore:
    return BackupStore.from_settings(settings, container=runbook.audit.container, prefix="")


def _refuse_republishing(store: BackupStore, runbook: Runbook, notebook_sha256: str) -> None:
    published = [b.name for b in store.blobs(f"{runbook.name}/", metadata=True)
                 if b.metadata.get("notebook_sha256") == notebook_sha256]
    if published:
        raise AuditRefusedError(
            f"This notebook was published already, as {published[0].rsplit('/', 2)[-2]}; "
            "it was not published again.", "drkit audit show RUN_ID shows that record.")


def new_run_id(runbook_name: str, environment: str, started: datetime) -> str:
    return f"{started:%Y%m%dT%H%M%SZ}-{runbook_name}-{environment}-{uuid.uuid4().hex[:6]}"


def _new_record(settings: Settings, runbook: Runbook, environment: str,
                started: datetime, run_id: str | None = None) -> _Run:
    run_id = run_id or new_run_id(runbook.name, environment, started)
    blob_prefix = f"{runbook.name}/{started:%Y/%m/%d}/{run_id}/"
    directory = settings.backup.state_dir.expanduser() / "audit" / blob_prefix
    directory.mkdir(parents=True, mode=0o700)
    return _Run(runbook, environment, run_id, AuditRecord(directory, blob_prefix))


def _close_record(settings: Settings, run: _Run, details: dict[str, Any],
                  ending: tuple[int, str], ended: datetime | None = None) -> RunOutcome:
    """Write run.json, check the record for secrets, publish it once; say how it went
    (``ending``: the run's exit code and message, before publishing)."""
    runbook, environment, run_id, record = run.runbook, run.environment, run.run_id, run.record
    exit_code, message = ending
    ended = ended or datetime.now(UTC)
    started = details["started_at"]
    lines = verdict.summary(runbook.name, exit_code, message, details.get("results") or {},
                            details.get("parameters") or {})
    if (record.directory / NOTEBOOK).exists():
        verdict.insert(record.directory / NOTEBOOK, verdict.markdown(lines, exit_code))
    document = {  # run.json
        "run_id": run_id,
        "runbook": runbook.name,
        "environment": environment,
        "notebook": str(runbook.notebook),
        **details,
        "ended_at": ended.isoformat(),
        "duration_seconds": round((ended - datetime.fromisoformat(started)).total_seconds(), 3)
        if started else None,
        "status": _status(exit_code),
        "verdict": verdict.verdict_of(exit_code),
        "exit_code": exit_code,
        "message": message,
        "versions": _versions(details["results"]),
        "audit": {"container": runbook.audit.container, "prefix": record.blob_prefix},
    }
    record.finish(document)
    published: list[str] = []
    record_url, publish_failure = None, None
    try:
        record.check_for_secrets(_secret_values(settings))
        identity = details.get("notebook_sha256") or _identity(record.directory / NOTEBOOK)
        store = _audit_store(settings, runbook)
        published = record.publish(store, {"notebook_sha256": identity})
        page = next((name for name in published if name.endswith(HTML)), None)
        record_url = store.url(page) if page else None
    except DrkitError as error:
        log_event("run.audit_failed", f"Audit record not published: {error}", run_id=run_id)
        publish_failure = error.exit_code
        if exit_code == ExitStatus.OK:
            exit_code, message = error.exit_code, str(error)
        else:
            message += (f" (the audit record was not published: {error.message} "
                        f"It is kept at {record.directory}.)")
    log_event("run.finished", f"Run {run_id} {document['status']}: {message}", run_id=run_id,
              exit_code=exit_code, published=published)
    return RunOutcome(run_id=run_id, status=_status(exit_code),
                      exit_code=exit_code, message=message, record=record.directory,
                      published=published, summary=lines, record_url=record_url,
                      publish_failure=publish_failure)


def _papermill(request: RunRequest, parameters: dict[str, Any], directory: Path,
               show: Callable[[str], None], lock: int) -> tuple[int, str]:
    """Run papermill, showing the step it is at; return its exit code (None-safe) and the
    tail of its stderr. papermill holds the record's ``lock`` with us, to its end."""
    runbook = request.runbook
    (directory / "parameters.yaml").write_text(yaml.safe_dump(parameters))
    command = [sys.executable, "-m", "papermill", str(runbook.notebook_path()),
               str(directory / NOTEBOOK), "-f", str(directory / "parameters.yaml"),
               "-k", KERNEL, "--execution-timeout", str(runbook.timeouts.cell_seconds),
               "--no-progress-bar", "--log-level", "WARNING"]
    log = directory / "papermill.log"
    with log.open("wb") as stderr, \
            kernel_environment(settings_env=request.settings_env) as environment:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr,
                                   stderr=stderr, env=environment, start_new_session=True,
                                   pass_fds=(lock,))
        try:
            code = _wait_showing_steps(process, directory / NOTEBOOK,
                                       runbook.timeouts.total_seconds, show)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = -1
            stderr.write(f"\nTOTAL TIMEOUT after {runbook.timeouts.total_seconds} s\n".encode())
        except RunStopped:
            _stop_group(process)  # papermill and its kernel, before the lock goes
            raise
    (directory / "parameters.yaml").unlink()
    text = log.read_text(errors="replace")
    log.unlink()
    return code, text[-4000:]


def _wait_showing_steps(process: subprocess.Popen, notebook: Path, timeout: float,
                        show: Callable[[str], None]) -> int:
    """``process.wait(timeout)``, naming each step as papermill starts it."""
    deadline = time.monotonic() + timeout
    shown = None
    while True:
        try:
            return process.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        step = running_step(notebook)
        if step is not None and step != shown:
            shown = step
            show(str(step))
            log_event("run.step", f"Step: {step}", level=logging.DEBUG, step=step.heading,
                      cell=step.cell, cells=step.cells)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to papermill's process group (the kernel with it), SIGKILL after a grace."""
    for signum, grace in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # the kernel may outlive papermill
        os.killpg(process.pid, signal.SIGKILL)


def _identity(notebook: Path) -> str:
    """What ``audit publish`` matches to refuse publishing this run's notebook again."""
    try:
        return notebook_identity(json.loads(notebook.read_text())["cells"])
    except (OSError, ValueError, KeyError):
        return ""


def _status(exit_code: int) -> str:
    if exit_code in RunStopped.codes:
        return "interrupted"
    return "succeeded" if exit_code == ExitStatus.OK else "failed"


def _secret_values(settings: Settings) -> list[str]:
    """Every secret this run could have seen: the config's references and the AWS secret."""
    references = [settings.source.password, settings.storage.key]
    if settings.target:
        references.append(settings.target.password)
    for reference in references:
        # Resolving registers the value (and the AWS secret's others); one that cannot be
        # resolved here is still caught by the shape patterns.
        with contextlib.suppress(DrkitError):
            resolver_for(settings).resolve(reference)
    return list(known_secrets())


def _versions(results: dict[str, Any]) -> dict[str, Any]:
    import papermill

    return {"drkit": __version__, "papermill": papermill.__version__,
            "python": platform.python_version(), "servers": results.get("servers", {})}
