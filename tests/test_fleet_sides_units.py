"""The fleet and the two sides of the estate (``side: backup|azure|both``, issue 25): each
member's schedules are its side's runbooks, as ``drkit schedule`` writes them, and only a
backup the catalog holds verified counts as verified: not the backup side's
``ciphertext-ok``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from drkit.azure.catalog import CIPHERTEXT_OK, BackupEntry
from drkit.exitstatus import ExitStatus
from drkit.fleet.description import load_fleet
from drkit.fleet.state import MemberState, member_state

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def write_sided_fleet(folder: Path, sides: dict[str, str | None]) -> Path:
    """A fleet of prod members, each of the side given (None: the config names none)."""
    members = {}
    for name, side in sides.items():
        config = {"environment": "prod", "source": {"host": f"{name}.example",
                                                    "databases": [name]},
                  "storage": {"prefix": f"backups/{name}/"}}
        if side:
            config["side"] = side
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
        members[name] = {"config": f"{name}.yaml"}
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump({"members": members}))
    return path


def _scheduled(fleet) -> dict[tuple[str, str], list[str]]:
    """(job, cron) -> the members its schedule asks for (the fleet-wide rpo one left out)."""
    from drkit.fleet.definitions import build_definitions

    repository = build_definitions(fleet).get_repository_def()
    return {(s.job_name, s.cron_schedule): s.description.split(": ", 1)[1].split(", ")
            for s in repository.schedule_defs if s.job_name != "rpo_job"}


def test_each_member_schedules_its_own_sides_runbooks(tmp_path):
    fleet = load_fleet(write_sided_fleet(tmp_path, {"aws": "backup", "dr": "azure",
                                                    "one": "both", "seed": None}))
    # prod's seed crons: the nightly at 03:00 on the backup side's members, its read-back at
    # 03:30 and the drill on Mondays on the Azure side's; a config of both sides has all
    assert _scheduled(fleet) == {("backup_job", "0 3 * * *"): ["aws", "one", "seed"],
                                 ("verify_job", "30 3 * * *"): ["dr", "one", "seed"],
                                 ("drill_job", "0 5 * * 1"): ["dr", "one", "seed"]}
    # drkit fleet run's default members: those of the side that runs the job
    assert fleet.members_running("backup") == ["aws", "one", "seed"]
    assert fleet.members_running("verify") == fleet.members_running("drill") == \
        ["dr", "one", "seed"]


def test_a_members_own_cron_for_the_other_sides_runbook_is_not_scheduled(tmp_path):
    fleet = load_fleet(write_sided_fleet(tmp_path, {"aws": "backup", "dr": "azure"}))
    fleet.members["aws"].schedules = {"restore-drill": "0 1 * * *",
                                      "nightly-backup": "0 2 * * *"}
    fleet.members["dr"].schedules = {"nightly-backup": "0 4 * * *"}
    assert _scheduled(fleet) == {("backup_job", "0 2 * * *"): ["aws"],
                                 ("verify_job", "30 3 * * *"): ["dr"],
                                 ("drill_job", "0 5 * * 1"): ["dr"]}


def test_the_side_from_the_environment_wins_as_for_drkit_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("DRKIT_SIDE", "azure")
    fleet = load_fleet(write_sided_fleet(tmp_path, {"aws": "backup"}))
    assert _scheduled(fleet) == {("verify_job", "30 3 * * *"): ["aws"],
                                 ("drill_job", "0 5 * * 1"): ["aws"]}


def _check_evaluation(tmp_path, monkeypatch, kind: str, verified: str | None):
    """The ``verified`` check a ``kind`` partition's run reports when its step's backup is
    held ``verified`` by the catalog (the step itself replaced)."""
    import dagster as dg

    from drkit.fleet import definitions
    from drkit.fleet.execution import StepOutcome

    fleet = load_fleet(write_sided_fleet(tmp_path, {"aws": "backup"}))
    monkeypatch.setattr(definitions, "run_step", lambda _fleet, member, step_kind: StepOutcome(
        member, step_kind, ExitStatus.OK, "done", results={"verified": "ok"},
        verified=verified))
    job = definitions.build_definitions(fleet).resolve_job_def(f"{kind}_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key="aws", instance=instance)
    [evaluation] = [e.event_specific_data for e in result.all_events
                    if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    return evaluation


def test_a_backup_checked_as_ciphertext_is_not_verified_but_a_warning(tmp_path, monkeypatch):
    import dagster as dg

    # the run's own results say "ok": the check reads the catalog's outcome, not them
    evaluation = _check_evaluation(tmp_path, monkeypatch, "backup", CIPHERTEXT_OK)
    assert (evaluation.check_name, evaluation.passed, evaluation.severity) == (
        "verified", False, dg.AssetCheckSeverity.WARN)
    assert "not verified until the Azure side reads it back" in evaluation.description


def test_a_verified_backup_passes_and_one_the_catalog_cannot_say_does_not(
        tmp_path, monkeypatch):
    import dagster as dg

    assert _check_evaluation(tmp_path, monkeypatch, "verify", "ok").passed
    unread = _check_evaluation(tmp_path, monkeypatch, "backup", None)
    assert (unread.passed, unread.severity) == (False, dg.AssetCheckSeverity.ERROR)


def _entry(hours_ago: int, verified: str | None) -> BackupEntry:
    moment = NOW - timedelta(hours=hours_ago)
    return BackupEntry(name=f"backups/aws/backup-{moment:%Y%m%d-%H%M%S}.sql.gz.age",
                       taken_at=moment, size=1, compression="gzip", databases=["aws"],
                       has_manifest=True, verified=verified)


def test_the_recovery_point_is_the_newest_backup_the_catalog_holds_verified(
        tmp_path, monkeypatch):
    """fleet show and the rpo check: a newer backup checked only as ciphertext on the backup
    side does not make the recovery point newer."""
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import Catalog

    entries = [_entry(30, "ok"), _entry(6, CIPHERTEXT_OK), _entry(1, CIPHERTEXT_OK)]
    monkeypatch.setattr(BackupStore, "from_settings", lambda *_a, **_k: None)
    monkeypatch.setattr(Catalog, "entries", lambda _self: entries)
    fleet = load_fleet(write_sided_fleet(tmp_path, {"aws": "backup"}))
    fleet.members["aws"].objectives.rpo_minutes = 24 * 60
    state: MemberState = member_state("aws", fleet.members["aws"], True, NOW)
    assert (state.newest_backup_age_seconds, state.newest_verified_age_seconds) == (
        3600, 30 * 3600)
    assert state.rpo_problem == "newest verified backup is 1800 min old (RPO 1440 min)"


def test_fleet_run_of_a_job_no_members_side_runs_is_refused_before_anything_runs(tmp_path):
    from tests.helpers import run_cli

    path = write_sided_fleet(tmp_path, {"aws": "backup", "aws2": "backup"})
    result = run_cli("fleet", "run", "drill", "--fleet", str(path))
    assert result.exit_code == ExitStatus.CONFIG_INVALID, result
    assert f"No member of the fleet {path} runs drill" in result.stderr
