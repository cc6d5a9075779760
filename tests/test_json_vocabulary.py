"""One JSON vocabulary for every ``--json`` (README, "JSON output"): ``backup`` names the
backup, ``ok`` says whether it worked, ``exit_code`` where there is one, durations end in
``_seconds`` and sizes in ``_bytes``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.helpers import point_cli_at, run_cli

# What the vocabulary replaced: each has its one name now.
RETIRED = {"blob": "backup", "bytes": "*_bytes", "size": "*_bytes", "seconds": "*_seconds",
           "duration": "*_seconds", "success": "ok", "succeeded": "ok"}


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


def test_every_json_output_speaks_one_vocabulary(sandbox, tmp_path, monkeypatch):
    prefix = point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BINLOG__PREFIX", f"{prefix}binlogs/")
    database = f"vocabulary_{uuid.uuid4().hex[:8]}"
    backup = json.loads(run_cli("backup", "--json").stdout)
    name = backup["backup"]
    commands = {
        "backup": backup,
        "list": ["list", "--json"],
        "list --versions": ["list", "--versions", "--json"],
        "verify": ["verify", name, "--json"],
        "restore --check": ["restore", name, "--as", database, "--check", "--json"],
        "restore": ["restore", name, "--as", database, "--json"],
        "prove": ["prove", name, "--as", database, "--json"],
        "prune": ["prune", "--older-than", "3650d", "--json"],
        "doctor": ["doctor", "--json"],
        "monitor publish": ["monitor", "publish"],
        "run": ["run", "nightly-backup", "--json"],
        "audit list": ["audit", "list", "--json"],
        "sandbox status": ["sandbox", "status", "--dir", str(sandbox.directory), "--json"],
        "binlog stream": ["binlog", "stream", "--once", "--json"],
        "binlog status": ["binlog", "status", "--json"],
        "binlog verify": ["binlog", "verify", "--json"],
    }
    outputs = {}
    for command, args in commands.items():
        outputs[command] = args if isinstance(args, dict) else json.loads(run_cli(*args).stdout)
    problems = {c: _retired_keys(o) for c, o in outputs.items() if _retired_keys(o)}
    assert problems == {}
    for command in ("backup", "verify", "restore --check", "restore", "prove", "prune",
                    "monitor publish", "run", "binlog stream", "binlog status",
                    "binlog verify"):
        assert outputs[command]["ok"] is True, (command, outputs[command])
    # a laptop's sandbox has no cron entries: WARNING, so not ok, and said so
    assert outputs["doctor"]["ok"] is (outputs["doctor"]["status"] == "OK")
    for command in ("backup", "verify", "restore --check", "restore"):
        assert outputs[command]["backup"] == name, command
    assert [entry["backup"] for entry in outputs["list"]][-1] == name
    assert outputs["doctor"]["exit_code"] in (0, 1) and outputs["run"]["exit_code"] == 0
