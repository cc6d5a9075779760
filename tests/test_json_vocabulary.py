"""One JSON vocabulary for every ``--json`` (README, "JSON output"): ``backup`` names the
backup, ``ok`` says whether it worked, ``exit_code`` where there is one, durations end in
``_seconds`` and sizes in ``_bytes``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click
import yaml

from tests.helpers import point_cli_at, run_cli

# What the vocabulary replaced: each has its one name now.
RETIRED = {"blob": "backup", "bytes": "*_bytes", "size": "*_bytes", "seconds": "*_seconds",
           "duration": "*_seconds", "success": "ok", "succeeded": "ok"}


# Checked where a standby exists (tests/test_standby*.py, with speaks_the_vocabulary).
STANDBY_COMMANDS = {"standby init", "standby follow", "standby status", "standby check"}


def speaks_the_vocabulary(output: dict[str, Any]) -> bool:
    """One object, saying whether the command did what it was asked, in today's keys."""
    return isinstance(output, dict) and isinstance(output.get("ok"), bool) and \
        not _retired_keys(output)


def _retired_keys(value: Any, where: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in RETIRED:
                found.append(f"{where}.{key} (use {RETIRED[key]})")
            found += _retired_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _retired_keys(item, f"{where}[{index}]")
    return found


def _commands(name: str, database: str, sandbox_directory: str,
              member: str = "sandbox") -> dict[str, list[str]]:
    """Every command with a --json, once each (a unit test below holds the list to the CLI)."""
    return {
        "backup": ["backup", "--json"],
        "list": ["list", "--json"],
        "list --versions": ["list", "--versions", "--json"],
        "verify": ["verify", name, "--json"],
        "restore --check": ["restore", name, "--as", database, "--check", "--json"],
        "restore": ["restore", name, "--as", database, "--json"],
        "restore --recover-swap": ["restore", "--recover-swap", "--json"],
        "prove": ["prove", name, "--as", database, "--json"],
        "prune": ["prune", "--older-than", "3650d", "--json"],
        "doctor": ["doctor", "--json"],
        "doctor --print-policy": ["doctor", "--print-policy", "--json"],
        "monitor publish": ["monitor", "publish", "--json"],
        "run": ["run", "nightly-backup", "--json"],
        "audit list": ["audit", "list", "--json"],
        "audit report": ["audit", "report", "--format", "json"],
        "sandbox status": ["sandbox", "status", "--dir", sandbox_directory, "--json"],
        "binlog stream": ["binlog", "stream", "--once", "--json"],
        "binlog status": ["binlog", "status", "--json"],
        "binlog verify": ["binlog", "verify", "--json"],
        "show": ["show", name, "--json"],
        "maintenance status": ["maintenance", "status", "--json"],
        "fleet show": ["fleet", "show", "--fleet", f"{sandbox_directory}/fleet.yaml",
                       "--offline", "--json"],
        "fleet run": ["fleet", "run", "verify", "--fleet", f"{sandbox_directory}/fleet.yaml",
                      "--member", member, "--json"],
    }


def _first_member(sandbox_directory: Path) -> str:
    return next(iter(yaml.safe_load((sandbox_directory / "fleet.yaml").read_text())["members"]))


def _command_path(args: list[str]) -> str:
    """``["binlog", "stream", "--once"]`` -> ``"binlog stream"``: the command's names."""
    from drkit.cli.main import cli

    names, command = [], cli
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        command = command.commands[args[0]]
        names.append(args.pop(0))
    return " ".join(names)


def _json_commands(group: click.Group, above: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _json_commands(command, (*above, name))
        elif any("--json" in option.opts for option in command.params):
            found.add(" ".join((*above, name)))
    return found


def test_the_vocabulary_test_runs_every_command_that_has_a_json_option():
    from drkit.cli.main import cli

    covered = {_command_path(args) for args in _commands("b", "d", "dir").values()}
    assert _json_commands(cli) <= covered | STANDBY_COMMANDS


def test_every_json_output_speaks_one_vocabulary(sandbox, tmp_path, monkeypatch):
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BINLOG__PREFIX", f"{prefix}binlogs/")
    database = f"vocabulary_{uuid.uuid4().hex[:8]}"
    backup = json.loads(run_cli("backup", "--json").stdout)
    name = backup["backup"]
    outputs = {"backup": backup}
    # One member: the sandbox's fleet may have six (the fleet tests add a second source).
    member = _first_member(sandbox.directory)
    for command, args in _commands(name, database, str(sandbox.directory), member).items():
        if command not in outputs:
            outputs[command] = json.loads(run_cli(*args).stdout)
    problems = {c: _retired_keys(o) for c, o in outputs.items() if _retired_keys(o)}
    assert problems == {}
    # Every output is one object that says whether the command did what it was asked.
    assert {c: type(o.get("ok")) for c, o in outputs.items() if not isinstance(o, dict) or
            not isinstance(o.get("ok"), bool)} == {}
    for command in ("backup", "list", "list --versions", "verify", "restore --check",
                    "restore", "restore --recover-swap", "prove", "prune",
                    "doctor --print-policy", "monitor publish", "run", "audit list",
                    "audit report", "sandbox status", "binlog stream", "binlog status",
                    "binlog verify", "show"):
        assert outputs[command]["ok"] is True, (command, outputs[command])
    # a laptop's sandbox has no cron entries: WARNING, so not ok, and said so
    assert outputs["doctor"]["ok"] is (outputs["doctor"]["status"] == "OK")
    for command in ("backup", "verify", "restore --check", "restore", "prove", "show"):
        assert outputs[command]["backup"] == name, command
    assert [entry["backup"] for entry in outputs["list"]["backups"]][-1] == name
    assert outputs["doctor"]["exit_code"] in (0, 1) and outputs["run"]["exit_code"] == 0
    # what the text lists as kept, the JSON's keep names too
    assert outputs["prune"]["keep"][name].startswith("the newest verified backup of ")
