#!/usr/bin/env python3
"""Run the sandbox fleet's jobs under ``dagster dev`` and photograph the Dagster UI's asset
view for docs/fleet-assets.png.

    .venv/bin/python docs/fleet_screenshot.py [--dir .drkit-sandbox] [--jobs backup verify drill]

Starts (or reuses) the sandbox with two sources (its fleet.yaml: 2 sources x 3 databases),
starts ``dagster dev -m drkit.fleet`` on it (DRKIT_FLEET, a DAGSTER_HOME of its own whose
dagster.yaml holds the per-source and global run limits of docs/fleet.md), launches each
job of ``--jobs`` for every member through Dagster's GraphQL API (a run per partition, as a
schedule asks for them), waits for every run to end, then the rpo check's job, and
photographs the global asset lineage with headless Chromium. Prints each run's member and
status; exits 1 if any run did not succeed. Needs what install.sh installs (chromium, the
sandbox and fleet extras).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from drkit.fleet.description import load_fleet
from drkit.sandbox.estate import Sandbox
from drkit.sandbox.services import free_port

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
from screenshots import screenshot  # noqa: E402

DAGSTER = str(Path(sys.executable).parent / "dagster")
LOCATION = "drkit.fleet"
STARTUP_SECONDS = 300  # dagster dev's webserver and code location on a loaded 2-core host
RUN_SECONDS = 900  # every run of one job, the fleet's limits holding them back
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# docs/fleet.md, "Per-source limit": runs held back before they start.
DAGSTER_YAML = {"concurrency": {
    "runs": {"max_concurrent_runs": 2,
             "tag_concurrency_limits": [{"key": "drkit/source",
                                         "value": {"applyLimitPerUniqueValue": True},
                                         "limit": 1}]},
    "pools": {"default_limit": 2}},
    "telemetry": {"enabled": False}}

_LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
_STATUS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
_LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name locationOrLoadError { __typename ... on RepositoryLocation { name }
  ... on PythonError { message } } } } } }"""


class DagsterDev:
    """``dagster dev -m drkit.fleet`` on a port of its own, in its own process group."""

    def __init__(self, fleet_path: Path, home: Path) -> None:
        self.port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(yaml.safe_dump(DAGSTER_YAML))
        self.log = (home / "dagster-dev.log").open("w")
        self.process = subprocess.Popen(
            [DAGSTER, "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "DRKIT_FLEET": str(fleet_path), "DAGSTER_HOME": str(home)},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"query": query, "variables": variables or {}}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise SystemExit(f"Dagster's GraphQL API refused: {answer['errors']}")
        return answer["data"]

    def wait_until_loaded(self) -> None:
        """Until the code location answers as loaded (it fails here if it failed to load)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"dagster dev exited ({self.process.returncode}); see "
                                 f"{self.log.name}")
            try:
                entries = self.graphql(_LOCATIONS)["workspaceOrError"]["locationEntries"]
            except OSError:
                entries = []
            loaded = [e["locationOrLoadError"] for e in entries if e["name"] == LOCATION
                      and e["locationOrLoadError"]]
            if loaded and loaded[0]["__typename"] == "PythonError":
                raise SystemExit(f"drkit.fleet failed to load: {loaded[0]['message']}")
            if loaded:
                return
            time.sleep(1)
        raise SystemExit(f"dagster dev did not load {LOCATION} in {STARTUP_SECONDS} s")

    def launch(self, job: str, member: str | None = None, tags: dict | None = None) -> str:
        tags = {**(tags or {}), **({"dagster/partition": member} if member else {})}
        answer = self.graphql(_LAUNCH, {"params": {
            "selector": {"repositoryLocationName": LOCATION,
                         "repositoryName": "__repository__", "jobName": job},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            "runConfigData": {}}})["launchRun"]
        if answer["__typename"] != "LaunchRunSuccess":
            raise SystemExit(f"launching {job} for {member} failed: {answer}")
        return answer["run"]["runId"]

    def wait_for(self, runs: dict[str, str]) -> dict[str, str]:
        """Each run's final status (run id -> what it ran for), waiting for all to end."""
        deadline, statuses = time.monotonic() + RUN_SECONDS, {}
        while time.monotonic() < deadline:
            statuses = {run_id: self.graphql(_STATUS, {"id": run_id})["runOrError"]["status"]
                        for run_id in runs}
            if set(statuses.values()) <= FINISHED:
                return statuses
            time.sleep(2)
        raise SystemExit(f"runs still unfinished after {RUN_SECONDS} s: {statuses}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def run_jobs(dev: DagsterDev, fleet_path: Path, jobs: list[str]) -> bool:
    """Each of ``jobs`` for every member, one job after the other; whether all succeeded."""
    fleet = load_fleet(fleet_path)
    all_ok = True
    for kind in jobs:
        started = time.monotonic()
        runs = {dev.launch(f"{kind}_job", member,
                           {"drkit/source": fleet.member(member).source_key()}): member
                for member in sorted(fleet.members)}
        statuses = dev.wait_for(runs)
        for run_id, member in sorted(runs.items(), key=lambda item: item[1]):
            print(f"{kind}_job {member}: {statuses[run_id]} (run {run_id})")
        print(f"{kind}_job: {len(runs)} runs in {time.monotonic() - started:.0f} s")
        all_ok &= set(statuses.values()) == {"SUCCESS"}
    rpo = dev.wait_for({dev.launch("rpo_job"): "the fleet"})
    print(f"rpo_job: {next(iter(rpo.values()))}")
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(".drkit-sandbox"))
    parser.add_argument("--jobs", nargs="*", default=["backup", "verify", "drill"],
                        choices=["backup", "verify", "drill"])
    parser.add_argument("--png", type=Path, default=DOCS / "fleet-assets.png")
    args = parser.parse_args()
    box = Sandbox(args.dir, sources=2)
    box.up()
    fleet_path = args.dir.absolute() / "fleet.yaml"
    with tempfile.TemporaryDirectory(prefix="drkit-dagster-home-") as home:
        dev = DagsterDev(fleet_path, Path(home))
        try:
            dev.wait_until_loaded()
            all_ok = run_jobs(dev, fleet_path, args.jobs)
            # The UI greets a new instance on 127.0.0.1 with a newsletter dialog over the
            # page; dismissed as its Skip button does.
            dev.graphql("mutation { setNuxSeen }")
            screenshot(f"{dev.url}/asset-groups", args.png.absolute(), wait_ms=15000,
                       height=640)
        finally:
            dev.stop()
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
