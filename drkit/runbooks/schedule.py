"""Cron entries for an environment's runbooks, managed as one marked block per environment.

Each line uses absolute paths, holds a ``flock`` so runs of one runbook never overlap (the
seed's ``*/5`` test schedule stays safe when a run takes longer than five minutes), stops
the run with ``timeout`` a minute after the runbook's own total timeout, and appends its
output to a log file. ``show`` prints exactly the block ``install`` writes.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from drkit.config import Settings
from drkit.errors import MissingProgramError, RunbookEngineError
from drkit.runbooks.runbook import Runbook, runbook_dirs

SKIPPED = 75  # flock's exit code when the previous run still holds the lock


def _program(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise MissingProgramError(f"{name} was not found: install the Debian package {package}.")
    return path


def cron_block(settings: Settings, config_path: Path, environment: str,
               runbooks: list[Runbook]) -> list[str]:
    state = settings.backup.state_dir.expanduser().absolute()
    drkit = str(Path(sys.executable).parent / "drkit")
    flock, timeout = _program("flock", "util-linux"), _program("timeout", "coreutils")
    # cron has none of the caller's environment: a runbook folder given as DRKIT_RUNBOOKS
    # must be in the line.
    folder = f"DRKIT_RUNBOOKS={shlex.quote(str(runbook_dirs(settings)[0]))} " \
        if settings.runbooks is not None else ""
    lines = [f"# BEGIN drkit {environment} (written by drkit schedule install; "
             "change the runbooks, then install again)"]
    for runbook in runbooks:
        run = runbook.environments.get(environment)
        if run is None or run.schedule is None:
            continue
        schedule = run.schedule
        lock = state / "locks" / f"runbook-{runbook.name}-{environment}.lock"
        log = state / "logs" / f"{runbook.name}-{environment}.log"
        q = shlex.quote
        skipped = (f"echo \"$(date -u +%FT%TZ) drkit: {runbook.name} skipped, the previous run "
                   f"still holds {lock}\" >> {q(str(log))}")
        command = (
            f"mkdir -p {q(str(lock.parent))} {q(str(log.parent))} && "
            f"DRKIT_CONFIG={q(str(config_path.absolute()))} {folder}"
            f"{flock} -n -E {SKIPPED} {q(str(lock))} "
            f"{timeout} -k 60 {runbook.timeouts.total_seconds + 60} "
            f"{q(drkit)} run {runbook.name} --env {q(environment)} >> {q(str(log))} 2>&1"
            f" || {{ [ $? -eq {SKIPPED} ] && {skipped}; }}")
        lines.append(f"{schedule} {command.replace('%', chr(92) + '%')}")
    if settings.binlog.enabled and settings.binlog.runner == "cron":
        lock = state / "locks" / f"binlog-stream-{environment}.lock"
        log = state / "logs" / f"binlog-stream-{environment}.log"
        q = shlex.quote
        lines.append(
            f"* * * * * mkdir -p {q(str(lock.parent))} {q(str(log.parent))} && "
            f"DRKIT_CONFIG={q(str(config_path.absolute()))} {flock} -n {q(str(lock))} "
            f"{timeout} -k 10 300 {q(drkit)} binlog stream --once >> {q(str(log))} 2>&1")
    lines.append(f"# END drkit {environment}")
    return lines


def systemd_unit(settings: Settings, config_path: Path, environment: str) -> str:
    """The unit that follows the binary log (``binlog.runner: systemd``): restarted when it
    stops, stopped with SIGTERM, on which it commits what it read before it exits."""
    drkit = str(Path(sys.executable).parent / "drkit")
    return f"""[Unit]
Description=drkit binlog archive ({environment}): the source's binary log to Azure, continuously
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment=DRKIT_CONFIG={config_path.absolute()}
ExecStart={drkit} binlog stream
Restart=always
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=60
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


class Crontab:
    """The invoking user's crontab, through the ``crontab`` program."""

    def __init__(self) -> None:
        self.program = _program("crontab", "cron")

    def read(self) -> list[str]:
        result = subprocess.run([self.program, "-l"], capture_output=True, text=True)
        if result.returncode != 0:
            if "no crontab" in result.stderr.lower():
                return []
            raise RunbookEngineError(f"crontab -l failed: {result.stderr.strip()}")
        return result.stdout.splitlines()

    def write(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n" if lines else ""
        result = subprocess.run([self.program, "-"], input=text, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RunbookEngineError(f"crontab - failed: {result.stderr.strip()}")


def without_block(lines: list[str], environment: str) -> list[str]:
    kept, inside = [], False
    for line in lines:
        if line.startswith(f"# BEGIN drkit {environment} "):
            inside = True
        elif inside and line == f"# END drkit {environment}":
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def install(crontab: Crontab, block: list[str], environment: str) -> None:
    crontab.write(without_block(crontab.read(), environment) + block)


def remove(crontab: Crontab, environment: str) -> None:
    crontab.write(without_block(crontab.read(), environment))
