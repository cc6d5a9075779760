"""drkit's block in a crontab, and the systemd unit, written and replaced without touching
anything else (drkit.runbooks.schedule); no crontab program is run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter

from drkit.config import Settings
from drkit.errors import ParameterError, RunbookNotFoundError
from drkit.runbooks.runbook import Runbook, all_runbooks
from drkit.runbooks.schedule import (
    _unit_word,
    block_key,
    check_environment,
    cron_block,
    install,
    remove,
    without_block,
)

OTHERS = ["MAILTO=ops@example.com", "0 3 * * * /usr/local/bin/rotate-logs"]
CONFIG = Path("/etc/drkit/drkit.yaml")


def _block(environment: str, command: str = "drkit run x") -> list[str]:
    key = block_key(environment, CONFIG)
    return [f"# BEGIN {key} (written by drkit schedule install; change the "
            "runbooks, then install again)", "CRON_TZ=UTC", f"*/5 * * * * {command}",
            f"# END {key}"]


class _Table:
    """A crontab held in memory: what Crontab reads and writes."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def read(self) -> list[str]:
        return list(self.lines)

    def write(self, lines: list[str]) -> None:
        self.lines = lines


def test_only_the_environments_own_block_is_taken_out():
    lines = [OTHERS[0], *_block("test"), OTHERS[1], *_block("prod")]
    assert without_block(lines, "test", CONFIG) == [OTHERS[0], OTHERS[1], *_block("prod")]
    assert without_block(lines, "prod", CONFIG) == [OTHERS[0], *_block("test"), OTHERS[1]]
    assert without_block(lines, "staging", CONFIG) == lines


def test_an_environment_whose_name_starts_anothers_keeps_the_other_block():
    lines = [*_block("prod"), *_block("prod2")]
    assert without_block(lines, "prod", CONFIG) == _block("prod2")


def test_install_replaces_the_block_and_remove_takes_it_away():
    table = _Table([OTHERS[0], *_block("test", "old"), OTHERS[1]])
    install(table, _block("test", "new"), "test", CONFIG)
    assert table.lines == [*OTHERS, *_block("test", "new")]
    install(table, _block("test", "newer"), "test", CONFIG)  # again: still one block
    assert table.lines == [*OTHERS, *_block("test", "newer")]
    remove(table, "test", CONFIG)
    assert table.lines == OTHERS
    remove(table, "test", CONFIG)  # nothing to remove: nothing changes
    assert table.lines == OTHERS


@pytest.mark.parametrize("environment", ["prod", "test-2", "eu_west.1"])
def test_plain_environment_names_pass(environment):
    assert check_environment(environment) == environment


@pytest.mark.parametrize("environment", ["", "prod\n* * * * * rm -rf ~", "a b", "$(id)", "-x",
                                         "x" * 65])
def test_an_environment_that_is_no_plain_name_is_refused(environment):
    with pytest.raises(ParameterError, match="is not a name"):
        check_environment(environment)


def test_an_environment_no_runbook_has_names_those_that_exist():
    runbook = Runbook(name="drill", notebook="drill.ipynb",
                      environments={"prod": {}, "test": {"schedule": "*/5 * * * *"}})
    assert check_environment("prod", [runbook]) == "prod"
    with pytest.raises(RunbookNotFoundError) as refused:
        check_environment("prdo", [runbook])
    assert refused.value.fix == "Use one of: prod, test."


@pytest.mark.parametrize(("value", "word"), [
    ("/opt/drkit/bin/drkit", '"/opt/drkit/bin/drkit"'),
    ("/srv/my dr/drkit.yaml", '"/srv/my dr/drkit.yaml"'),  # a space stays in the one word
    ('/a"b', '"/a\\"b"'), ("/a\\b", '"/a\\\\b"'),
    ("/x/100%/c", '"/x/100%%/c"')])  # % is a specifier in units
def test_a_unit_word_is_quoted_and_escaped_as_systemd_reads_it(value, word):
    assert _unit_word(value) == word


def _scheduled(side: str, tmp_path: Path) -> set[str]:
    """What ``schedule show --env prod`` lists for a config of ``side`` (binlog on, cron)."""
    settings = Settings(side=side, source={"host": "db", "databases": ["shop"]},
                        storage={"account": "acct"}, binlog={"enabled": True},
                        backup={"state_dir": str(tmp_path)})
    entries = [line for line in cron_block(settings, CONFIG, "prod", all_runbooks())
               if not line.startswith(("#", "CRON_TZ="))]
    return {line.split(" run ")[1].split()[0] if " run " in line else "binlog stream"
            for line in entries if " run " in line or " binlog stream " in line}


@pytest.mark.parametrize(("side", "scheduled"), [
    # The backup host: what reads the source and writes, without the identity.
    ("backup", {"nightly-backup", "binlog stream"}),
    # The Azure side: what reads backups back (the daily verify makes the nightly's backup
    # verified); the streamer cannot reach AWS in an incident.
    ("azure", {"verify-backup", "restore-drill"}),
    ("both", {"nightly-backup", "verify-backup", "restore-drill", "binlog stream"}),
])
def test_a_config_schedules_its_own_sides_runbooks(side, scheduled, tmp_path):
    assert _scheduled(side, tmp_path) == scheduled


@pytest.mark.parametrize(("runbook_side", "config_side", "runs"), [
    ("backup", "backup", True), ("backup", "azure", False), ("backup", "both", True),
    ("azure", "azure", True), ("azure", "backup", False), ("azure", "both", True),
    ("both", "backup", True), ("both", "azure", True),  # a runbook of one's own naming none
])
def test_a_runbook_runs_on_its_side_or_on_a_config_of_both(runbook_side, config_side, runs):
    runbook = Runbook(name="x", notebook="x.ipynb", side=runbook_side, environments={"p": {}})
    assert runbook.runs_on(config_side) is runs


@pytest.mark.parametrize("environment", ["sandbox", "test", "prod", "prod-kst"])
def test_the_azure_side_verifies_each_nightlys_backup_soon_after_it_starts(environment):
    """On split sides the backup host only checks ciphertext: the newest verified backup is
    as old as the Azure side's last verify, so it runs after every nightly, within the hour."""
    runbooks = {r.name: r for r in all_runbooks()}
    verify, nightly = runbooks["verify-backup"], runbooks["nightly-backup"]
    assert verify.runs_on("azure") and not verify.runs_on("backup")
    start = datetime(2026, 12, 7, tzinfo=UTC)
    backups = croniter(nightly.environments[environment].schedule, start)
    verifies = croniter(verify.environments[environment].schedule, start)
    for _ in range(3):
        backup_started = backups.get_next(datetime)
        while (verified := verifies.get_next(datetime)) <= backup_started:
            pass
        assert verified - backup_started <= timedelta(hours=1)
        # before the next nightly starts: each backup gets its own verify
        assert verified < croniter(nightly.environments[environment].schedule,
                                   backup_started).get_next(datetime)
