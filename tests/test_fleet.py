"""The fleet on the sandbox with two source servers (``drkit sandbox up --sources 2``, started
once for this module: the second server costs its start only here), run by Dagster in this
process: the sandbox's own fleet.yaml (2 sources x 3 databases), and fleets of a few of
those databases (each member its own drkit config, blob prefix and state folder).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from drkit.exitstatus import ExitStatus
from drkit.fleet.description import Fleet, load_fleet
from drkit.sandbox.estate import Sandbox
from drkit.sandbox.fleetfile import FLEET_DATABASES
from tests.dbtools import connect
from tests.helpers import run_cli

MEMBERS = {"fleet_a": "app1", "fleet_b": "app2"}  # member -> database (on the first source)


@pytest.fixture(scope="module")
def two_sources(sandbox) -> Sandbox:
    """The session's sandbox with its second source server (kept to the session's end)."""
    box = Sandbox(sandbox.directory, sources=2)
    box.up()
    return box


def write_fleet(sandbox, folder: Path, members: dict[str, str], **limits) -> Path:
    """A fleet.yaml of ``members`` (member -> database), each a copy of the sandbox's
    drkit.yaml with its own database, blob prefix and state folder."""
    base = yaml.safe_load(sandbox.config_path.read_text())
    run = uuid.uuid4().hex[:8]
    described = {"fleet": {"per_source_concurrency": 1, "global_concurrency": 3,
                           "retry": {"max_retries": 1, "backoff_seconds": 0}, **limits},
                 "members": {}}
    for member, database in members.items():
        config = {**base, "source": {**base["source"], "databases": [database]},
                  "storage": {**base["storage"], "prefix": f"fleet-{run}/{member}/"},
                  "backup": {**base["backup"], "state_dir": str(folder / member / "state")}}
        path = folder / f"{member}.yaml"
        path.write_text(yaml.safe_dump(config))
        described["members"][member] = {"config": path.name,
                                        "objectives": {"rpo_minutes": 60}}
    fleet_path = folder / "fleet.yaml"
    fleet_path.write_text(yaml.safe_dump(described))
    return fleet_path


class ProcessListWatcher:
    """Samples the source's process list until stopped: the most connections at once that
    were running a statement in one of ``databases`` (mysqldump's)."""

    def __init__(self, sandbox, databases: set[str], source: str = "source") -> None:
        self.connection = connect(sandbox, source)
        self.databases, self.most, self.samples = databases, 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with self.connection.cursor() as cursor:
            while not self.stopped.is_set():
                cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                               "WHERE DB IN %s AND COMMAND = 'Query' AND ID <> "
                               "CONNECTION_ID()", (tuple(self.databases),))
                self.most = max(self.most, cursor.fetchone()[0])
                self.samples += 1

    def __enter__(self) -> ProcessListWatcher:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.connection.close()


def _interval(record: str) -> tuple[datetime, datetime]:
    run = json.loads((Path(record) / "run.json").read_text())
    return datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["ended_at"])


def test_the_backup_job_backs_up_every_member_one_at_a_time_per_source(two_sources):
    from drkit.fleet.jobs import run_fleet_job
    from drkit.fleet.state import fleet_state

    fleet = load_fleet(two_sources.directory / "fleet.yaml")
    assert len(fleet.members) == 6 and {m.source_key() for m in fleet.members.values()} == {
        f"127.0.0.1:{two_sources.port('source')}", f"127.0.0.1:{two_sources.port('source2')}"}
    with ProcessListWatcher(two_sources, set(FLEET_DATABASES)) as first, \
            ProcessListWatcher(two_sources, set(FLEET_DATABASES), "source2") as second:
        results = run_fleet_job(fleet, "backup")
    assert [(r.member, r.ok, r.attempts) for r in results] == [
        (member, True, 1) for member in sorted(fleet.members)], results
    # each partition is one drkit run with its own published record, in its member's state
    spans = defaultdict(list)
    for result in results:
        settings = load_settings(fleet.members[result.member].config)
        found = list((settings.backup.state_dir / "audit").glob(f"*/*/*/*/{result.run_id}"))
        assert len(found) == 1 and (found[0] / "run.json").exists()
        assert result.record_url and result.record_url.endswith("notebook.html")
        spans[fleet.members[result.member].source_key()].append(_interval(str(found[0])))
    # per_source_concurrency 1: on each source, no two runs overlapped, and the source's
    # process list never showed two dumps at once
    for source, intervals in spans.items():
        intervals.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(intervals)), (source, intervals)
    for watcher in (first, second):
        assert watcher.samples > 0 and watcher.most <= 1, (watcher.samples, watcher.most)
    # each run held its database's lease (the fleet's locks: blob), and released it
    store = BackupStore.from_settings(fleet.members["source2-app1"].settings)
    lease = store.container.get_blob_client("fleet/source2-app1/locks/backup-app1.lock")
    assert lease.get_blob_properties().lease.state == "available"
    # and fleet show sees them: every member's newest backup verified, within its RPO (the
    # sandbox's fleet also asks for a drill a day: none ran)
    states = fleet_state(fleet)
    assert [(s.member, s.rpo_problem, s.problems) for s in states] == [
        (m, None, ["no good drill"]) for m in sorted(fleet.members)]


def test_a_corrupt_backup_fails_its_verify_once_without_retries(
        two_sources, tmp_path):
    """Retries of transient failures: tests/test_fleet_units.py (an unreachable storage
    account costs the SDK's own retries, ~25 s an attempt here)."""
    from drkit.ops.backup import run_backup

    fleet = load_fleet(write_fleet(two_sources, tmp_path, {"fleet_a": "app1"}))
    settings = fleet.members["fleet_a"].settings
    name = run_backup(settings).name
    store = BackupStore.from_settings(settings)
    data = bytearray(store.container.download_blob(name).readall())
    data[len(data) // 2] ^= 0x01  # one bit flipped
    store.container.upload_blob(name, bytes(data), overwrite=True)

    result = run_cli("fleet", "run", "verify", "--fleet", str(fleet.path), "--json")
    assert result.exit_code == ExitStatus.RUNBOOK_STEP_FAILED, result
    assert "fleet verify failed for 1 of 1 members: fleet_a." in result.stderr
    [corrupt] = json.loads(result.stdout)["partitions"]
    assert (corrupt["member"], corrupt["ok"], corrupt["attempts"]) == ("fleet_a", False, 1)
    assert corrupt["exit_code"] == ExitStatus.CHECKSUM_MISMATCH, corrupt
    assert corrupt["run_id"] and corrupt["record_url"]  # the verify-backup runbook's record


def test_a_stale_member_fails_the_rpo_check(two_sources, tmp_path):
    import dagster as dg

    from drkit.fleet.definitions import build_definitions
    from drkit.ops.backup import run_backup
    from drkit.ops.verify import verify_backup

    fleet: Fleet = load_fleet(write_fleet(two_sources, tmp_path, MEMBERS))
    settings = fleet.members["fleet_a"].settings
    store = BackupStore.from_settings(settings)
    from drkit.azure.catalog import Catalog

    verify_backup(store, Catalog(store).select(run_backup(settings).name))  # fresh, verified
    # fleet_b has no backup under its prefix at all: older than any RPO
    job = build_definitions(fleet).resolve_job_def("rpo_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        [evaluation] = [e.event_specific_data for e in result.all_events
                        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert evaluation.passed is False
    assert set(evaluation.metadata["stale"].value) == {"fleet_b"}
    assert "no verified backup" in evaluation.metadata["stale"].value["fleet_b"]
    # fleet show says the same, from storage, and exits 44
    shown = run_cli("fleet", "show", "--fleet", str(fleet.path), "--json")
    assert shown.exit_code == ExitStatus.OBJECTIVE_BREACHED, shown
    assert {m["member"]: m["status"] for m in json.loads(shown.stdout)["members"]} == {
        "fleet_a": "ok", "fleet_b": "breached"}


def test_sandbox_up_writes_its_fleet_beside_its_config(two_sources):
    fleet = load_fleet(two_sources.directory / "fleet.yaml")
    assert sorted(fleet.members) == [f"{source}-{database}" for source in ("source", "source2")
                                     for database in FLEET_DATABASES]
    member = fleet.members["source2-app3"]
    assert member.config == two_sources.directory.absolute() / "fleet" / "source2-app3.yaml"
    assert member.source_key() == f"127.0.0.1:{two_sources.port('source2')}"
    assert member.settings.source.databases == ["app3"]
    assert fleet.fleet.state_dir == two_sources.directory.absolute() / "fleet-state"
    assert fleet.fleet.locks == "blob"
