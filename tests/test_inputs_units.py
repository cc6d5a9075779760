"""Input validation that needs no service: cron values, --target, empty names, consent,
drkit.yaml's merge. Each refusal is one sentence and a documented exit code, before any
client runs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from drkit.errors import ParameterError
from drkit.runbooks.parameters import _boolean
from drkit.units import duration, parse_duration
from tests.helpers import run_cli

INJECTION = "x\n* * * * * touch pwned"


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    """A config no command here connects with: every refusal comes before a client."""
    path = tmp_path / "drkit.yaml"
    path.write_text(textwrap.dedent(f"""\
        environment: prod
        source:
          host: 127.0.0.1
          port: 9
          databases: [shop]
        storage:
          endpoint: http://127.0.0.1:9/acct
        target:
          host: 127.0.0.1
          port: 9
          user: admin
        backup:
          state_dir: {tmp_path / "state"}
        """))
    monkeypatch.setenv("DRKIT_CONFIG", str(path))
    return path


@pytest.fixture(autouse=True)
def _no_real_crontab(fake_crontab: Path) -> Path:
    """Every test here with the fake `crontab` (tests/conftest.py): never root's real one."""
    return fake_crontab


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text


@pytest.mark.parametrize("environment", [INJECTION, "prod; touch pwned", "$(touch pwned)",
                                         "prod`id`", "", "-x", "a b"])
@pytest.mark.parametrize("action", ["show", "install", "unit"])
def test_schedule_env_with_shell_or_newline_is_refused(config, fake_crontab, environment,
                                                      action):
    result = run_cli("schedule", action, "--env", environment)
    assert result.exit_code == 2, result
    # Nothing printed that could be pasted into a crontab, nothing installed.
    assert result.stdout == "" and not fake_crontab.exists()
    assert "is not a name" in result.stderr and result.stderr.count("\n") == 1
    _no_traceback(result.stderr)


def test_schedule_env_must_be_a_runbook_environment(config):
    result = run_cli("schedule", "show", "--env", "prdo")
    assert result.exit_code == 43
    assert result.stdout == ""
    assert "No runbook has an environment 'prdo'" in result.stderr
    assert "prod" in result.stderr  # the ones that exist are named


def test_schedule_refuses_a_config_path_with_a_newline(tmp_path, monkeypatch, config):
    odd = tmp_path / "evil\n* * * * * touch pwned"
    odd.mkdir()
    moved = odd / "drkit.yaml"
    moved.write_text(config.read_text())
    monkeypatch.setenv("DRKIT_CONFIG", str(moved))
    result = run_cli("schedule", "show", "--env", "prod")
    assert result.exit_code == 3 and result.stdout == ""
    assert "cannot be written into a crontab" in result.stderr


def test_schedule_show_of_a_known_environment_still_works(config):
    result = run_cli("schedule", "show", "--env", "prod")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    key = f"drkit prod {config.absolute()}"
    assert lines[0].startswith(f"# BEGIN {key} (") and lines[-1] == f"# END {key}"
    assert lines[1] == "CRON_TZ=UTC"  # the runbooks' schedules are UTC, whatever the host's
    assert all(line.split()[5].startswith("mkdir") for line in lines[2:-1])


def test_two_configs_with_one_environment_keep_their_own_cron_entries(
        config, fake_crontab, monkeypatch):
    other = config.parent / "other" / "drkit.yaml"
    other.parent.mkdir()
    other.write_text(config.read_text())
    for path in (config, other, config):  # installing one again leaves the other's alone
        monkeypatch.setenv("DRKIT_CONFIG", str(path))
        assert run_cli("schedule", "install", "--env", "prod").exit_code == 0
    table = fake_crontab.read_text()
    assert table.count("# BEGIN drkit prod ") == 2
    # each block: the nightly, its verify and the drill
    assert table.count(f"DRKIT_CONFIG={other}") == 3 == table.count(f"DRKIT_CONFIG={config}")
    monkeypatch.setenv("DRKIT_CONFIG", str(other))
    assert run_cli("schedule", "remove", "--env", "prod").exit_code == 0
    assert str(other) not in fake_crontab.read_text()
    assert fake_crontab.read_text().count(f"DRKIT_CONFIG={config}") == 3
    from drkit.runbooks.schedule import installed_for  # what doctor's cron check asks

    lines = fake_crontab.read_text().splitlines()
    assert installed_for(lines, "prod", config) and not installed_for(lines, "prod", other)


def test_a_block_written_before_blocks_were_keyed_by_config_is_replaced(
        config, fake_crontab, monkeypatch):
    shown = run_cli("schedule", "show", "--env", "prod").stdout.splitlines()
    unkeyed = ["# BEGIN drkit prod (written by drkit schedule install; change the runbooks, "
               "then install again)", *shown[2:-1], "# END drkit prod"]
    someone_elses = ["# BEGIN drkit prod (written by drkit schedule install; ...)",
                     "0 1 * * * DRKIT_CONFIG=/elsewhere/drkit.yaml drkit run x",
                     "# END drkit prod"]
    fake_crontab.write_text("\n".join(["MAILTO=ops", *unkeyed, *someone_elses]) + "\n")
    assert run_cli("schedule", "install", "--env", "prod").exit_code == 0
    table = fake_crontab.read_text().splitlines()
    assert table[0] == "MAILTO=ops" and table[1:4] == someone_elses
    assert table[4:] == shown and sum(f"DRKIT_CONFIG={config}" in x for x in table) == 3


@pytest.mark.parametrize("value", [":::", "127.0.0.1:99999", "127.0.0.1:0", "host:", ":3306",
                                   "host:33a", "ho st", "host:-1", "[::1]:3306", "a:1:2", ""])
def test_target_that_is_not_host_port_is_usage(config, value):
    result = run_cli("restore", "--target", value)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("drkit: --target ") and "HOST[:PORT]" in result.stderr
    assert result.stderr.count("\n") == 1
    _no_traceback(result.stderr)


def test_target_parses():
    from drkit.cli.backups import parse_target

    assert parse_target("db.example.com") == ("db.example.com", None)
    assert parse_target("127.0.0.1:3307") == ("127.0.0.1", 3307)
    assert parse_target("h:65535") == ("h", 65535)
    with pytest.raises(ValueError):
        parse_target("h:65536")


@pytest.mark.parametrize("args", [("backup", "--database", ""), ("backup", "-d", "  "),
                                  ("restore", "--database", ""), ("restore", "--as", ""),
                                  ("prove", "--database", ""), ("prove", "--as", " "),
                                  ("backup", "-d", "shop "), ("restore", "--as", "x" * 65),
                                  ("backup", "-d", "a\x00b"), ("restore", "--as", "a\nb"),
                                  ("restore", "--database", "a\tb"), ("prove", "--as", "\x1b[2J"),
                                  ("backup", "-d", "shop\r"), ("standby", "init", "--as", "a\nb"),
                                  ("standby", "init", "--database", "a\x7fb"),
                                  ("backup", "-d", "\uff53hop"), ("restore", "--as", "\uff53hop")])
def test_a_database_name_empty_or_holding_a_control_character_is_refused_first(config, args):
    result = run_cli(*args)
    # Exit 2, not 10 (the config's servers are a dead port) nor 20 (mysqldump ran).
    assert result.exit_code == 2, result
    assert "is not a database name" in result.stderr
    _no_traceback(result.stderr)


@pytest.mark.parametrize("value", [" true", "TRUE", "1 ", "Yes", "YES", "true\n", "ｔrue", "on"])
def test_consent_takes_only_the_documented_spellings(value):
    with pytest.raises(ValueError):
        _boolean(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("yes", True), ("1", True), ("True", True), (True, True), (1, True),
    ("false", False), ("no", False), ("0", False), ("False", False), (False, False)])
def test_consent_spellings(value, expected):
    assert _boolean(value) is expected


def test_a_padded_approve_is_exit_2_before_anything_runs(config):
    result = run_cli("run", "failover", "--env", "prod", "-p", "approve= true")
    assert result.exit_code == 2, result
    assert "Parameter approve takes true or false" in result.stderr


def test_failover_refuses_consent_that_is_not_a_boolean():
    from drkit.ops.failover import _consent

    assert _consent("approve", True) is True
    for value in ("true", " true", 1, None):
        with pytest.raises(ParameterError):
            _consent("approve", value)


def test_sandbox_config_merge_keeps_edits_and_sections():
    from drkit.sandbox.estate import merged

    written = {"source": {"port": 1, "databases": ["demo"]}, "backup": {"state_dir": "/s"}}
    current = {"source": {"port": 1, "databases": ["demo", "mine"]},
               "backup": {"state_dir": "/s"},
               "binlog": {"enabled": True}}
    new = {"source": {"port": 2, "databases": ["demo"]}, "backup": {"state_dir": "/s"},
           "target": {"port": 3}}
    assert merged(new, written, current) == {
        "source": {"port": 2, "databases": ["demo", "mine"]},  # new port, the user's list
        "backup": {"state_dir": "/s"},
        "target": {"port": 3},  # filled in
        "binlog": {"enabled": True}}  # never dropped
    # Up again: what the user set is not taken for up's own value the second time.
    assert merged(new, new, merged(new, written, current))["source"]["databases"] == [
        "demo", "mine"]
    # Not knowing what was written last: up's own keys take up's values, the rest stays.
    assert merged(new, None, current)["binlog"] == {"enabled": True}
    assert merged(new, None, current)["source"]["port"] == 2


def test_swap_journals_are_0600_whatever_the_umask(tmp_path):
    import stat

    from drkit.mysql.swapjournal import write_journal
    from tests.test_swap_units import journal

    previous = os.umask(0)  # the loosest a cron or service environment could hand us
    try:
        os.close(write_journal(tmp_path / "swaps" / "one.json", journal()))
    finally:
        os.umask(previous)
    path = tmp_path / "swaps" / "one.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["one.json"]  # no temporary left


def test_a_running_record_is_closed_only_once_nobody_holds_its_lock(tmp_path):
    import fcntl
    import json

    from drkit.runbooks.audit import AuditRecord, interrupted_records

    directory = tmp_path / "drill" / "2026" / "12" / "07" / "run1"
    directory.mkdir(parents=True)
    record = AuditRecord(directory, "drill/2026/12/07/run1/")
    lock = record.start({"run_id": "run1", "audit": {"prefix": record.blob_prefix}})
    assert json.loads((directory / "run.json").read_text())["status"] == "running"
    assert list(interrupted_records(tmp_path)) == []  # its drkit run (or papermill) is alive
    os.close(lock)  # what a kill -9 of both does
    [(found, run)] = list(interrupted_records(tmp_path))
    assert found.directory == directory and run["run_id"] == "run1"
    held = os.open(directory / "run.lock", os.O_RDWR)  # a closer is at it: the next waits
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert list(interrupted_records(tmp_path)) == []
    finally:
        os.close(held)


def test_paths_with_spaces_and_percent_stay_one_value_in_cron_and_the_unit(tmp_path,
                                                                          monkeypatch, config):
    import shlex

    odd = tmp_path / "my configs 100%"
    odd.mkdir()
    moved = odd / "drkit.yaml"
    moved.write_text(config.read_text() + "binlog:\n  enabled: true\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(moved))
    shown = run_cli("schedule", "show", "--env", "prod")
    assert shown.exit_code == 0, shown.stderr
    for line in shown.stdout.splitlines()[2:-1]:
        assert "%" not in line.replace("\\%", "")  # cron would cut the line at a bare %
        words = shlex.split(" ".join(line.split()[5:]).replace("\\%", "%"))  # as cron runs it
        assert f"DRKIT_CONFIG={moved}" in words
    assert any(" binlog stream --once " in line for line in shown.stdout.splitlines())
    unit = run_cli("schedule", "unit", "--env", "prod").stdout
    assert f'Environment="DRKIT_CONFIG={str(moved).replace("%", "%%")}"\n' in unit
    assert '\nExecStart="/' in unit


def test_a_damaged_running_record_never_stops_the_next_run(tmp_path):
    import json

    from drkit.config import Settings
    from drkit.runbooks.runner import close_interrupted

    directory = tmp_path / "state" / "audit" / "drill" / "2026" / "12" / "07" / "run1"
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps({"status": "running",
                                                    "audit": {"prefix": "p/"}}))
    (directory / "run.lock").touch()
    settings = Settings(source={"host": "db", "databases": ["shop"]},
                        backup={"state_dir": str(tmp_path / "state")})
    assert close_interrupted(settings) == []
    assert json.loads((directory / "run.json").read_text())["status"] == "running"


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 12 * 3600),
                                               ("90min", 5400), ("90s", 90), ("2w", 1209600)])
def test_older_than_takes_days_hours_minutes_and_seconds(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bare_m_is_refused_as_ambiguous_not_read_as_a_minute(config):
    """``--older-than 1m`` meant a minute: someone who meant a month lost a month of
    backups' worth of protection. A bare m is neither now."""
    result = run_cli("prune", "--older-than", "1m")
    assert result.exit_code == 2
    assert "'1m' is ambiguous (minutes or months?); write e.g. 1min, or days: 30d" in \
        result.stderr


@pytest.mark.parametrize(("seconds", "said"), [
    (0.42, "0.4 s"), (5, "5 s"), (42.4, "42 s"), (59.6, "1 min"), (1377.5, "23 min"),
    (3720, "1 h 2 min"), (3 * 3600 + 5, "3 h"), (50 * 3600, "2 d 2 h"), (72 * 3600, "3 d")])
def test_durations_read_in_one_style_seconds_only_under_a_minute(seconds, said):
    assert duration(seconds) == said


def test_failover_open_refuses_a_port_another_program_listens_on():
    """Else the printed URL, token and all, leads to that program while JupyterLab exits."""
    import socket

    from drkit.runbooks.incident import run_lab

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        said: list[str] = []
        with pytest.raises(ParameterError) as refused:
            run_lab(None, port, "token", said.append)  # type: ignore[arg-type]
    assert refused.value.exit_code == 2 and f"Port {port}" in refused.value.message
    assert said == []


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_failover_open_refuses_a_port_out_of_range(port):
    assert run_cli("failover", "open", "--port", port).exit_code == 2


def test_a_failover_that_restored_nothing_is_not_done(config):
    """Cells run on after a refused gate never make a failover 'failed over' with an RTO."""
    from drkit.config import load_settings
    from drkit.errors import NotApprovedError
    from drkit.ops.failover import Failover

    with pytest.raises(NotApprovedError, match="nothing was restored and proven"):
        Failover(load_settings()).finish()


def test_an_identity_without_recipients_never_makes_a_plaintext_backup(config, tmp_path):
    config.write_text(config.read_text() + f"encryption:\n  identity: file:{tmp_path}/key\n")
    result = run_cli("backup")
    assert result.exit_code == 3 and "would not be encrypted" in result.stderr
    _no_traceback(result.stderr)


def test_an_empty_maintenance_message_is_refused(config):
    result = run_cli("maintenance", "on", "--message", "  ", "--yes")
    assert result.exit_code == 2 and "--message is empty" in result.stderr
