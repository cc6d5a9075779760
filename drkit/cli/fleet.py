"""``drkit fleet``: many drkit configs as one fleet (``fleet.yaml``), run on Dagster."""

from __future__ import annotations

import click

from drkit.cli.context import Context, pass_context, print_table

_fleet_option = click.option("--fleet", "fleet_path", envvar="DRKIT_FLEET",
                             type=click.Path(dir_okay=False),
                             help="The fleet description (default: $DRKIT_FLEET).")


@click.group()
def fleet() -> None:
    """Every database of every source: state against objectives, jobs on Dagster."""


@fleet.command("show")
@_fleet_option
@click.option("--offline", is_flag=True,
              help="Members and objectives from fleet.yaml alone; read no config or storage.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def fleet_show(context: Context, fleet_path: str | None, offline: bool, as_json: bool) -> None:
    """Each member: newest backup, newest verified, archive lag, last drill, against its
    objectives; exit 44 when any member misses one, else the code of the error that kept a
    member from being read (3: its config). Needs no Dagster."""
    from drkit.exitstatus import ExitStatus
    from drkit.fleet.description import load_fleet
    from drkit.fleet.state import BREACHED, fleet_state

    states = fleet_state(load_fleet(fleet_path), read_storage=not offline)
    breached = [s.member for s in states if s.status == BREACHED]
    unread = [s for s in states if s.exit_code is not None]
    if as_json:
        context.env.print_json({"ok": not breached and not unread,
                                "members": [s.as_dict() for s in states]})
    else:
        print_table(context.env, ["member", "source", "newest backup", "verified age min",
                                  "RPO min", "archive lag s", "last drill", "status"],
                    [[s.member, s.source or "-", s.newest_backup or "-",
                      _minutes(s.newest_verified_age_seconds), _number(s.rpo_minutes),
                      _number(s.archive_lag_seconds),
                      f"{s.last_drill_status} {_days(s.last_drill_age_seconds)}"
                      if s.last_drill else "-",
                      s.status + (f": {'; '.join(s.problems)}" if s.problems else "")]
                     for s in states])
    if breached:
        raise click.exceptions.Exit(ExitStatus.OBJECTIVE_BREACHED)
    if unread:
        context.env.stderr.write(f"drkit: {len(unread)} of {len(states)} members could not be "
                                 f"read: {', '.join(s.member for s in unread)}.\n")
        raise click.exceptions.Exit(next(s.exit_code for s in unread))  # first, by name


@fleet.command("run")
@click.argument("kind", type=click.Choice(["backup", "verify", "drill"]))
@_fleet_option
@click.option("--member", "members", multiple=True, metavar="M",
              help="Only this member (repeatable; default: all of the side that runs KIND).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def fleet_run(context: Context, kind: str, fleet_path: str | None, members: tuple[str, ...],
              as_json: bool) -> None:
    """Run the fleet's KIND job in this process (Dagster's execute_in_process), a partition
    per member, with the per-source limit and the retries; exit 40 naming failed members."""
    from drkit.errors import ConfigError
    from drkit.exitstatus import ExitStatus
    from drkit.fleet.description import load_fleet
    from drkit.programs import require_extra

    require_extra("fleet", "drkit fleet run")
    from drkit.fleet.jobs import run_fleet_job

    fleet_description = load_fleet(fleet_path)
    for name in members:
        fleet_description.member(name)  # an unknown member fails before anything runs
    names = list(members) or fleet_description.members_running(kind)
    if not names:
        raise ConfigError(f"No member of the fleet {fleet_description.path} runs {kind}: "
                          "each is a config of the other side.",
                          f"Run it where the {kind} runs, with that side's fleet.")
    results = run_fleet_job(fleet_description, kind, names)
    failed = [r.member for r in results if not r.ok]
    if as_json:
        context.env.print_json({"ok": not failed, "kind": kind,
                                "partitions": [r.as_dict() for r in results]})
    else:
        for result in results:
            status = "ok" if result.ok else f"FAILED (exit {result.exit_code})"
            context.env.print(f"{result.member}: {status}"
                              f" ({result.attempts} attempt{'s' * (result.attempts != 1)})"
                              f" {result.message}".rstrip())
    if failed:
        context.env.stderr.write(f"drkit: fleet {kind} failed for {len(failed)} of "
                                 f"{len(results)} members: {', '.join(failed)}.\n")
        raise click.exceptions.Exit(ExitStatus.RUNBOOK_STEP_FAILED)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f}"


def _days(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 86400:.1f} d ago"
