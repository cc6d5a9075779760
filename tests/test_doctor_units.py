"""Doctor checks that need no service."""

from __future__ import annotations

from drkit.checks import CRITICAL, OK, WARNING, Check, Perfdata, status_line, worst
from drkit.health.doctor import _dump_client_check
from drkit.mysql.dump import dump_client


def test_a_dump_client_of_another_flavour_than_the_server_is_critical():
    """This machine's client is MariaDB's; against MySQL 8 it breaks generated columns."""
    assert dump_client().flavour == "mariadb"
    check = _dump_client_check({"flavour": "mysql", "version": "8.0.36"})
    assert check.status == CRITICAL and "ERROR 3105" in check.detail
    assert "MySQL's own client" in check.fix
    assert _dump_client_check({"flavour": "mariadb", "version": "10.11"}).status == OK


def test_the_first_line_is_nagios_status_line_with_the_figures_after_a_bar():
    """Nagios shows the first line as the state and graphs what follows "|"."""
    checks = [Check("config", OK, "valid (prod)"),
              Check("cron entries", WARNING, "none for prod"),
              Check("newest backup", OK, "backup-1, 0.2 h old",
                    perfdata=Perfdata("newest_backup_age", 612.4, 90000, 176400)),
              Check("disk (state)", WARNING, "4% free"),
              Check("binlog archive", OK, "3 files", perfdata=Perfdata("binlog_archive_lag", 7,
                                                                       300))]
    assert status_line(checks) == ("DRKIT WARNING - 2 warnings: cron entries, disk (state) | "
                                   "newest_backup_age=612s;90000;176400 "
                                   "binlog_archive_lag=7s;300")
    checks.append(Check("source reachable", CRITICAL, "refused | ERROR 2003"))
    assert status_line(checks).startswith("DRKIT CRITICAL - 1 critical: source reachable; "
                                          "2 warnings: cron entries, disk (state) | ")
    assert status_line([Check("config", OK, "valid")]) == "DRKIT OK - 1 check OK"
    assert "perfdata" not in checks[0].as_dict()
    assert checks[2].as_dict()["perfdata"]["value_seconds"] == 612.4


def test_a_host_off_utc_is_warned_that_debians_cron_runs_the_utc_schedules_locally():
    from drkit.health.doctor import cron_time_zone

    assert cron_time_zone(0, "UTC").status == "OK"
    check = cron_time_zone(9 * 3600, "KST")
    assert check.status == "WARNING" and "UTC+9 h" in check.detail
    assert "timedatectl set-timezone UTC" in check.fix


def test_the_failover_check_with_the_backup_sides_config_says_so_once():
    """The backup host's config lacks the identity and the Azure side's credentials on
    purpose: one CRITICAL naming the config to use, not a failure per credential."""
    from drkit.config import Settings
    from drkit.health.doctor import Doctor

    settings = Settings(side="backup", source={"host": "db", "databases": ["shop"]},
                        storage={"account": "secret:azure_storage_account", "auth": "sas",
                                 "sas": "secret:azure_storage_sas"})
    [check] = Doctor(settings, "prod", "failover").run()
    assert (check.name, check.status) == ("config", CRITICAL)
    assert "backup side's config (side: backup)" in check.detail
    assert "Azure side's config" in check.fix
    assert worst([check]).exit_code == 2
