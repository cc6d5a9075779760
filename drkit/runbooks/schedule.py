"""Cron entries for an environment's runbooks, managed as one marked block per config file
and environment (two configs that share an environment name keep their own entries).

Each line uses absolute paths, holds a ``flock`` so runs of one runbook never overlap (the
seed's ``*/5`` test schedule stays safe when a run takes longer than five minutes), stops
the run with ``timeout`` a minute after the runbook's own total timeout, and appends its
output to a log file. ``show`` prints exactly the block ``install`` writes. A config
schedules only its own side's runbooks (``side``: the backup host's nightly and the binlog
streamer, the Azure side's drill; a config of both sides, all of them).

The block sets ``CRON_TZ=UTC``: the runbooks' schedules are UTC (the seed's; prod-kst's
``0 18 * * *`` is 03:00 KST). cronie honours it; Debian's cron ignores it, so doctor warns on
a host whose zone is not UTC. cron applies it to the lines after it, so ``install`` keeps the
block last.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from drkit.config import Settings
from drkit.errors import (
    ConfigError,
    MissingProgramError,
    ParameterError,
    RunbookEngineError,
    RunbookNotFoundError,
)
from drkit.exitstatus import ExitStatus
from drkit.runbooks.runbook import Runbook, runbook_dirs

SKIPPED = 75  # flock's exit code when the previous run still holds the lock
# A name written into a cron line or a unit: no quoting can make a newline safe there (cron
# and systemd read one entry per line), so names are plain words.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Five fields of digits, names, * / , - (and @daily-style macros): nothing a shell acts on.
_SCHEDULE = re.compile(r"(@[a-z]+|[A-Za-z0-9*/,-]+( [A-Za-z0-9*/,-]+){4})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_environment(environment: str, runbooks: list[Runbook] | None = None) -> str:
    """``environment`` if it is a plain name (and, given runbooks, one of theirs); a name
    with a newline or a shell character would write a line of its own into cron."""
    if not _NAME.fullmatch(environment):
        raise ParameterError(f"The environment {environment!r} is not a name: it may hold "
                             "only letters, digits, '.', '_' and '-'; nothing was written.",
                             "Pass --env with one of the runbooks' environments.")
    if runbooks is not None:
        known = sorted({name for runbook in runbooks for name in runbook.environments})
        if environment not in known:
            raise RunbookNotFoundError(f"No runbook has an environment {environment!r}; "
                                       "nothing was written.",
                                       f"Use one of: {', '.join(known) or 'none'}.")
    return environment


def _checked(what: str, value: str, pattern: re.Pattern[str] | None = None) -> str:
    """``value`` as it may go into a cron line or unit; ConfigError (3) otherwise."""
    if _CONTROL.search(value) or (pattern is not None and not pattern.fullmatch(value)):
        raise ConfigError(f"The {what} {value!r} cannot be written into a crontab or unit "
                          "(a newline, a control or shell character); nothing was written.",
                          "Rename it to plain letters, digits, '.', '_' and '-'.")
    return value


def _program(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise MissingProgramError(f"{name} was not found: install the Debian package {package}.")
    return path


def cron_block(settings: Settings, config_path: Path, environment: str,
               runbooks: list[Runbook]) -> list[str]:
    check_environment(environment, runbooks)
    state = Path(_checked("state folder (backup.state_dir)",
                          str(settings.backup.state_dir.expanduser().absolute())))
    config_path = Path(_checked("config path", str(config_path.absolute())))
    drkit = _checked("drkit program path", str(Path(sys.executable).parent / "drkit"))
    flock, timeout = _program("flock", "util-linux"), _program("timeout", "coreutils")
    # cron has none of the caller's environment: a runbook folder given as DRKIT_RUNBOOKS
    # must be in the line.
    folder = "" if settings.runbooks is None else "DRKIT_RUNBOOKS={} ".format(
        shlex.quote(_checked("runbook folder", str(runbook_dirs(settings)[0]))))
    key = block_key(environment, config_path)
    lines = [f"# BEGIN {key} (written by drkit schedule install; "
             "change the runbooks, then install again)", "CRON_TZ=UTC"]
    for runbook in runbooks:
        run = runbook.environments.get(environment)
        if run is None or run.schedule is None or not runbook.runs_on(settings.side):
            continue
        _checked("runbook name", runbook.name, _NAME)
        schedule = _checked(f"schedule of runbook {runbook.name}", run.schedule, _SCHEDULE)
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
    # The streamer reads the source in AWS: the backup host's, never the Azure side's (in an
    # incident it cannot reach the source, and it holds a credential that deletes).
    if settings.binlog.enabled and settings.binlog.runner == "cron" and settings.side != "azure":
        lock = state / "locks" / f"binlog-stream-{environment}.lock"
        log = state / "logs" / f"binlog-stream-{environment}.log"
        q = shlex.quote
        lines.append(
            f"* * * * * mkdir -p {q(str(lock.parent))} {q(str(log.parent))} && "
            f"DRKIT_CONFIG={q(str(config_path.absolute()))} {flock} -n {q(str(lock))} "
            f"{timeout} -k 10 300 {q(drkit)} binlog stream --once >> {q(str(log))} 2>&1"
            .replace("%", chr(92) + "%"))  # cron reads an unescaped % as a newline
    lines.append(f"# END {key}")
    return lines


def block_key(environment: str, config_path: Path) -> str:
    """What names a block: the environment and the config file whose entries it holds."""
    return f"drkit {environment} {Path(config_path).absolute()}"


# What a systemd unit can follow: the source's binary log into the archive, or the archive
# into the standby.
Follower = Literal["binlog", "standby"]
_FOLLOWS: dict[str, tuple[str, str, str]] = {
    "binlog": ("drkit binlog archive", "the source's binary log to Azure, continuously",
               "binlog stream"),
    "standby": ("drkit standby", "the DR target kept current from the binlog archive",
                "standby follow"),
}


def systemd_unit(settings: Settings, config_path: Path, environment: str,
                 follows: Follower = "binlog") -> str:
    """The unit that follows the binary log (``binlog.runner: systemd``) or the archive into
    the standby: restarted when it stops, stopped with SIGTERM, on which it commits what it
    read or applied before it exits. A standby's follower is not restarted once it exits 50:
    a standby that was promoted or is unlike the source is never followed again."""
    check_environment(environment)
    config_path = Path(_checked("config path", str(config_path.absolute())))
    drkit = _checked("drkit program path", str(Path(sys.executable).parent / "drkit"))
    name, what, command = _FOLLOWS[follows]
    never_again = (f"RestartPreventExitStatus={int(ExitStatus.STANDBY_UNUSABLE)}\n"
                   if follows == "standby" else "")
    return f"""[Unit]
Description={name} ({environment}): {what}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment={_unit_word(f"DRKIT_CONFIG={config_path}")}
ExecStart={_unit_word(drkit).replace("$", "$$")} {command}
Restart=always
RestartSec=10
{never_again}KillSignal=SIGTERM
TimeoutStopSec=60
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def _unit_word(value: str) -> str:
    """One word of a unit file: quoted (a path may hold spaces), % not a specifier."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


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


def without_block(lines: list[str], environment: str, config_path: Path) -> list[str]:
    """``lines`` without this config's block for ``environment``; also without a block
    written before blocks were keyed by config (``# BEGIN drkit ENV (written...``) when its
    entries use this config."""
    key, config = block_key(environment, config_path), Path(config_path).absolute()
    kept, block = [], None
    for line in lines:
        if block is None and (line.startswith(f"# BEGIN {key} (")
                              or line.startswith(f"# BEGIN drkit {environment} (written")):
            block = [line]
        elif block is not None:
            block.append(line)
            if line.startswith("# END drkit "):
                ours = block[0].startswith(f"# BEGIN {key} (") or any(
                    f"DRKIT_CONFIG={shlex.quote(str(config))} " in entry for entry in block)
                kept += [] if ours else block
                block = None
        else:
            kept.append(line)
    return kept + (block or [])


def installed_for(lines: list[str], environment: str, config_path: Path | None) -> bool:
    """Whether ``lines`` hold this config's block for ``environment`` (without a config: any
    block for it)."""
    if config_path is None:
        return any(line.startswith(f"# BEGIN drkit {environment} ") for line in lines)
    return len(without_block(lines, environment, config_path)) < len(lines)


def install(crontab: Crontab, block: list[str], environment: str, config_path: Path) -> None:
    crontab.write(without_block(crontab.read(), environment, config_path) + block)


def remove(crontab: Crontab, environment: str, config_path: Path) -> None:
    crontab.write(without_block(crontab.read(), environment, config_path))
