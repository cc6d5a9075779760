#!/usr/bin/env python3
"""Benchmark what the fleet adds to a run: the same runbook (nightly-backup of the same
database) run by ``drkit run`` and by the fleet, interleaved, in one run.

    .venv/bin/python bench/fleet_bench.py [--repeat 3]

Uses the small sandbox (bench/out/sandbox-small) and a fleet of one member, a copy of its
drkit.yaml with a blob prefix and state folder of its own (bench/out/fleet-bench/). Times,
interleaved and REPEAT times each (median reported):

- drkit run:         ``drkit run nightly-backup`` (a process; the config's local locks)
- drkit fleet run:   ``drkit fleet run backup --member bench`` (a process: Dagster imported,
                     its definitions built, the job run in process, the fleet's blob locks)
- runbook in-process: run_runbook() as ``drkit run`` calls it, in this process
- fleet in-process:  run_fleet_job() for the member, in this process (definitions built
                     once, beforehand)

A backup's own time varies by seconds on a shared machine, more than the fleet adds; so each
process's time outside its runbook (wall less run.json's duration) is compared too, and its
CPU time (user and system, with every process it waited for: the kernel, the dumps), which
other load on the machine changes far less than wall time. The parts the fleet adds are
timed alone (REPEAT x 3 each, median):

- dagster per run:   run_fleet_job() with the member's step a no-op (Dagster's ephemeral
                     instance, the in-process run, its events read back)
- dagster import:    a process importing drkit's CLI and the fleet's definitions, less one
                     importing the CLI alone (what ``drkit fleet run`` pays once)
- blob lock:         a database's lease taken and released (Azurite), less the lock file

Not a test: figures go to the closing note and bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from drkit.fleet.definitions import build_definitions
from drkit.fleet.description import load_fleet
from drkit.fleet.jobs import run_fleet_job
from drkit.runbooks.runbook import load_runbook, runbook_dirs
from drkit.runbooks.runner import RunRequest, run_runbook
from drkit.sandbox.estate import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT, run  # noqa: E402


def write_fleet(box: Sandbox, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(box.config_path.read_text())
    config = {**base, "storage": {**base["storage"], "prefix": "bench-fleet/"},
              "backup": {**base["backup"], "state_dir": str(folder / "state")}}
    (folder / "bench.yaml").write_text(yaml.safe_dump(config))
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump({
        "fleet": {"state_dir": str(folder / "fleet-state"), "retry": {"max_retries": 0}},
        "members": {"bench": {"config": "bench.yaml"}}}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    box = Sandbox(OUT / "sandbox-small", demo_size=1024 * 1024)
    box.up()
    fleet_path = write_fleet(box, OUT / "fleet-bench")
    fleet = load_fleet(fleet_path)
    member = fleet.members["bench"]
    env = {**os.environ, "DRKIT_CONFIG": str(member.config)}
    definitions = build_definitions(fleet)
    runbook = load_runbook("nightly-backup", runbook_dirs(member.settings))
    timings: dict[str, list[float]] = {name: [] for name in (
        "drkit run", "drkit fleet run", "runbook in-process", "fleet in-process")}
    # A process's wall time less its runbook's own (run.json's duration): the same
    # backup's time varies by seconds here, what surrounds it much less.
    outside: dict[str, list[float]] = {"drkit run": [], "drkit fleet run": []}
    cpu: dict[str, list[float]] = {"drkit run": [], "drkit fleet run": []}
    audit = member.settings.backup.state_dir / "audit"
    for _ in range(args.repeat):
        for name, command in (("drkit run", [DRKIT, "run", "nightly-backup"]),
                              ("drkit fleet run", [DRKIT, "fleet", "run", "backup", "--member",
                                                   "bench", "--fleet", str(fleet_path)])):
            wall, cpu_seconds = _timed(command, env)
            timings[name].append(wall)
            cpu[name].append(cpu_seconds)
            outside[name].append(wall - _newest_run_seconds(audit))
        start = time.perf_counter()
        assert run_runbook(member.settings, member.config, RunRequest(runbook)).exit_code == 0
        timings["runbook in-process"].append(time.perf_counter() - start)
        start = time.perf_counter()
        [result] = run_fleet_job(fleet, "backup", ["bench"], definitions)
        assert result.ok, result
        timings["fleet in-process"].append(time.perf_counter() - start)
    medians = {name: round(statistics.median(values), 2) for name, values in timings.items()}
    parts = fleet_parts(fleet, definitions, 3 * args.repeat)
    report = {"repeat": args.repeat, "median_seconds": medians,
              "fleet_adds_seconds": {
                  "process": round(medians["drkit fleet run"] - medians["drkit run"], 2),
                  "process_outside_the_runbook": round(
                      statistics.median(outside["drkit fleet run"])
                      - statistics.median(outside["drkit run"]), 2),
                  "process_cpu": round(statistics.median(cpu["drkit fleet run"])
                                       - statistics.median(cpu["drkit run"]), 2),
                  # the median of each interleaved pair's difference: a slow moment of
                  # the machine falls on both runs of a pair
                  "paired": {"process": _paired(timings), "outside_the_runbook":
                             _paired(outside), "process_cpu": _paired(cpu)},
                  "in_process": round(medians["fleet in-process"]
                                      - medians["runbook in-process"], 2),
                  **parts, "sum_of_parts": round(sum(parts.values()), 2)},
              "all_seconds": {name: [round(v, 2) for v in values]
                              for name, values in timings.items()},
              "outside_the_runbook_seconds": {name: [round(v, 2) for v in values]
                                              for name, values in outside.items()},
              "process_cpu_seconds": {name: [round(v, 2) for v in values]
                                      for name, values in cpu.items()}}
    print(json.dumps(report, indent=2))
    (OUT / "fleet_bench.json").write_text(json.dumps(report, indent=2) + "\n")


def fleet_parts(fleet, definitions, repeat: int) -> dict[str, float]:
    """What the fleet adds to one run, each part timed alone (seconds, median)."""
    from drkit.exitstatus import ExitStatus
    from drkit.fleet import definitions as module
    from drkit.fleet.execution import StepOutcome
    from drkit.ops.lock import run_lock

    real_step = module.run_step
    module.run_step = lambda _fleet, member, kind: StepOutcome(member, kind, ExitStatus.OK,
                                                               "no-op")
    try:
        run_fleet_job(fleet, "backup", ["bench"], definitions)  # Dagster's first-run warm-up
        dagster = _median(lambda: run_fleet_job(fleet, "backup", ["bench"], definitions),
                          repeat)
    finally:
        module.run_step = real_step
    imports = statistics.median(
        run([sys.executable, "-c", "import drkit.cli.main, drkit.fleet.definitions"])[0]
        - run([sys.executable, "-c", "import drkit.cli.main"])[0] for _ in range(repeat))
    settings = fleet.members["bench"].settings.model_copy(deep=True)
    locks = {}
    for kind in ("local", "blob"):
        settings.backup.locks = kind

        def hold() -> None:
            with run_lock(settings, "backup-fleet-bench", "fleet bench"):
                pass

        locks[kind] = _median(hold, repeat)
    return {"dagster_per_run": round(dagster, 2), "dagster_import": round(imports, 2),
            "blob_lock": round(locks["blob"] - locks["local"], 3)}


def _paired(seconds: dict[str, list[float]]) -> float:
    """The median of fleet run less drkit run, pair by interleaved pair."""
    return round(statistics.median(fleet - alone for fleet, alone in zip(
        seconds["drkit fleet run"], seconds["drkit run"], strict=True)), 2)


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user and system, the process and every descendant it
    waited for) of one command, which must succeed."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"{command[:3]} failed: {stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def _newest_run_seconds(audit: Path) -> float:
    """The duration of the newest run recorded under ``audit`` (run ids sort by time)."""
    newest = max(audit.glob("nightly-backup/*/*/*/*/run.json"), key=lambda p: p.parent.name)
    return json.loads(newest.read_text())["duration_seconds"]


def _median(action, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
