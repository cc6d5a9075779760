"""``drkit doctor`` and ``drkit monitor``: checks with fixes, metrics and alarms."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click

from drkit.cli.context import Context, pass_context
from drkit.redact import redact


@click.command("doctor")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--for", "purpose", type=click.Choice(["all", "failover"]), default="all",
              show_default=True,
              help="failover: what the failover needs, checked as if AWS were down.")
@click.option("--print-policy", is_flag=True,
              help="Print the least-privilege AWS IAM policy, MySQL grants and Azure roles "
                   "(with --json: one object, each document as its cloud takes it), and exit.")
@pass_context
def doctor_command(context: Context, environment: str | None, as_json: bool, purpose: str,
                   print_policy: bool) -> None:
    """Check every dependency; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios plug-in).

    UNKNOWN means the doctor itself failed (a drkit bug), never a finding about the estate.
    """
    from drkit.checks import CRITICAL, UNKNOWN, Check, status_line, worst
    from drkit.errors import DrkitError
    from drkit.health.doctor import Doctor
    from drkit.health.policy import policy, policy_text

    try:
        settings = context.settings
    except DrkitError as error:  # an invalid config is a check result too
        checks = [Check("config", CRITICAL, error.message, error.fix or "")]
    else:
        if print_policy:
            documents = policy(settings)
            if as_json:
                context.env.print_json({"ok": True, **documents})
            else:
                context.env.print(policy_text(documents))
            return
        try:
            checks = Doctor(settings, environment or settings.environment, purpose,
                            Path(context.config_path) if context.config_path else None).run()
        except Exception as exc:  # Nagios: a plug-in that cannot check exits 3, not 1
            checks = [Check("doctor", UNKNOWN, redact(f"internal error: {type(exc).__name__}: "
                                                      f"{exc}"),
                            "This is a drkit bug; rerun with DRKIT_DEBUG=1 and report it.")]
    status = worst(checks)
    if as_json:
        context.env.print_json({"ok": status == "OK", "status": status,
                                "exit_code": status.exit_code,
                                "checks": [c.as_dict() for c in checks]})
    else:
        # Nagios shows the first line as the state and reads what follows "|" as figures;
        # the lines after it are the details.
        context.env.print(status_line(checks))
        for check in checks:
            context.env.print(f"{check.status:<8} {check.name}: {check.detail}"
                              + (f"\n         fix: {check.fix}" if check.fix else ""))
    raise click.exceptions.Exit(status.exit_code)


@click.group()
def monitor() -> None:
    """CloudWatch metrics and alarms on backup age."""


@monitor.command("publish")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def monitor_publish(context: Context, as_json: bool) -> None:
    """Publish the age of the newest backup and the newest verified backup."""
    from drkit.ops.monitor import publish_ages
    from drkit.units import duration

    ages = publish_ages(context.settings)
    if as_json:
        # CloudWatch's metric names, in drkit's JSON vocabulary (snake case, *_seconds)
        context.env.print_json({"ok": True, **{re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower():
                                              value for name, value in ages.items()}})
        return
    for name, what in (("NewestBackupAgeSeconds", "newest backup"),
                       ("NewestVerifiedBackupAgeSeconds", "newest verified backup")):
        age = ages.get(name)
        context.env.print(f"{what}: none" if age is None else
                          f"{what}: {duration(age)} old (published as {name})")


@monitor.command("install-alarms")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--sns-topic", help="SNS topic ARN to notify.")
@pass_context
def monitor_install_alarms(context: Context, environment: str | None,
                           sns_topic: str | None) -> None:
    """Create CloudWatch alarms for backup failure and RPO breach."""
    from drkit.aws.alarms import install_alarms
    from drkit.runbooks.runbook import rpo_objective, runbook_dirs, schedule_interval

    settings = context.settings
    environment = environment or settings.environment
    runbooks = runbook_dirs(settings)
    interval = schedule_interval("nightly-backup", environment, runbooks) or timedelta(days=1)
    for name in install_alarms(settings, environment, interval,
                               rpo_objective(environment, runbooks), sns_topic):
        context.env.print(name)
