"""The fleet on the sandbox with two source servers (``drkit sandbox up --sources 2``, started
once for this module: the second server costs its start only here), run by Dagster in this
process: the sandbox's own fleet.yaml (2 sources x 3 databases), and fleets of a few of
those databases (each member its own drkit config, blob prefix and state folder).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
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


@dataclass(frozen=True)
class MemberSpan:
    database: str  # the member's (one per member, on a source)
    first: datetime  # the first event of its sessions in the server's general log
    last: datetime  # their last


class MembersServed:
    """When the source served each member's backup, from the server's general log (a
    table, on while in ``with``): a member's sessions are those naming its database, at
    login (the backup's preflight, ``connect(server, database)``) or by selecting it
    (mysqldump --databases, COM_INIT_DB); drkit's other sessions name none.

    Exact to the microsecond, where the process list is sampled; and the process list's
    DB column is no witness: MariaDB lists there, for a session that has none, the schema
    whose trigger or view it is parsing while it reads information_schema, and one backup
    reads its table shapes on five sessions at once (drkit.mysql.inventory.table_shapes)."""

    def __init__(self, sandbox: Sandbox, source: str) -> None:
        self.root = sandbox.services[source].root_connection()
        self.spans: list[MemberSpan] = []  # in the order they began

    def __enter__(self) -> MembersServed:
        with self.root.cursor() as cursor:
            cursor.execute("SELECT NOW(6), @@general_log, @@log_output")
            self._since, *self._settings = cursor.fetchone()
            cursor.execute("SET GLOBAL log_output = 'TABLE', general_log = ON")
        return self

    def __exit__(self, *_exc) -> None:
        with contextlib.closing(self.root), self.root.cursor() as cursor:
            cursor.execute("SET GLOBAL general_log = %s, log_output = %s", self._settings)
            cursor.execute("SELECT thread_id, command_type, argument, event_time "
                           "FROM mysql.general_log WHERE event_time >= %s", (self._since,))
            events = cursor.fetchall()
        times: dict[int, list[datetime]] = defaultdict(list)  # session -> its events'
        named: dict[int, str] = {}  # session -> the database it named
        for session, command, argument, at in events:
            times[session].append(at)
            if command == "Init DB":
                named[session] = argument
            elif command == "Connect" and (
                    login := re.fullmatch(r".* on (\S+) using .*", argument)):
                named[session] = login.group(1)
        members: dict[str, list[datetime]] = defaultdict(list)
        for session, database in named.items():
            members[database] += times[session]
        self.spans = sorted((MemberSpan(database, min(times), max(times))
                             for database, times in members.items()),
                            key=lambda span: span.first)


def _interval(record: str) -> tuple[datetime, datetime]:
    run = json.loads((Path(record) / "run.json").read_text())
    return datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["ended_at"])


def test_the_backup_job_backs_up_every_member_one_at_a_time_per_source(two_sources):
    from drkit.fleet.jobs import run_fleet_job
    from drkit.fleet.state import fleet_state

    fleet = load_fleet(two_sources.directory / "fleet.yaml")
    assert len(fleet.members) == 6 and {m.source_key() for m in fleet.members.values()} == {
        f"127.0.0.1:{two_sources.port('source')}", f"127.0.0.1:{two_sources.port('source2')}"}
    with MembersServed(two_sources, "source") as first, \
            MembersServed(two_sources, "source2") as second:
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
    # per_source_concurrency 1: on each source, no two runs overlapped, and the server
    # served one member's backup (preflight to dump) after the other
    for source, intervals in spans.items():
        intervals.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(intervals)), (source, intervals)
    for served in (first.spans, second.spans):
        assert sorted(span.database for span in served) == sorted(FLEET_DATABASES), served
        assert all(a.last < b.first for a, b in pairwise(served)), served
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
