"""``drkit standby init``, ``follow`` and ``status``: the DR target kept current from the
binlog archive, so that a failover only applies the last minutes."""

from __future__ import annotations

import click

from drkit.cli.backups import _names
from drkit.cli.context import Context, pass_context


@click.group()
def standby() -> None:
    """The DR target as a standby fed from the binlog archive."""


@standby.command("init")
@click.option("--database", "databases", metavar="DB", multiple=True, callback=_names,
              help="Only this database of the base (repeatable; required when the backups "
                   "hold several).")
@click.option("--as", "rename_to", metavar="NAME", callback=_names,
              help="Keep the standby under this database name (the one database).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def init_command(context: Context, databases: tuple[str, ...], rename_to: str | None,
                 as_json: bool) -> None:
    """Restore the newest point-in-time base into the target, proven, and record there the
    archive position it stands at (drkit_standby.position)."""
    from drkit.ops.standby import init_standby

    context.env.configure_logging(context.settings.backup.log_file)
    result = init_standby(context.settings, context.env, rename_to=rename_to,
                          databases=list(databases) or None)
    if as_json:
        context.env.print_json({"ok": True, **result})
    else:
        context.env.print(f"standby {', '.join(result['databases'].values())} on "
                          f"{result['target']} from {result['backup']}, at "
                          f"{result['file']}:{result['offset']}")


@standby.command("follow")
@click.option("--once", is_flag=True, help="Catch up with the archive and exit (cron).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def follow_command(context: Context, once: bool, as_json: bool) -> None:
    """Apply what the archive holds beyond the standby's position; without --once, keep
    following it (a systemd unit), every standby.poll_seconds once caught up. Each source
    transaction's position is committed with it: a kill at any instant loses nothing and
    applies nothing twice. A gap in the archive after the position is refused (exit 49)."""
    from drkit.ops.standby import follow
    from drkit.units import duration

    context.env.configure_logging(context.settings.backup.log_file)
    done = follow(context.settings, once=once)
    if as_json:
        context.env.print_json({"ok": True, **done.as_dict()})
    else:
        context.env.print(f"applied {done.transactions} transactions ({done.rows} rows) in "
                          f"{duration(done.catch_up_seconds)}; at {done.file}:{done.offset}")


@standby.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def status_command(context: Context, as_json: bool) -> None:
    """The standby's position, its lag behind the archive (source seconds, bytes), its base
    and its last catch-up; exit 50 when the target has no standby."""
    from drkit.ops.standby import standby_status

    report = standby_status(context.settings)
    if as_json:
        context.env.print_json({"ok": True, **report})
        return
    lag = report["lag_seconds"]
    context.env.print(
        f"standby {', '.join(report['databases'].values())} from {report['base_backup']}: "
        f"at {report['file']}:{report['offset']}, source time "
        f"{report['last_event_at'] or '- (not caught up yet)'}; behind the archive "
        f"{'-' if lag is None else f'{lag:.0f} s'} ({report['lag_bytes']} bytes); last "
        f"catch-up {report['caught_up_at'] or 'never'}")
    if report["position_from"] != "target":
        context.env.print("the server does not answer (the pilot light stops it between "
                          "catch-ups): the position is where its last catch-up left it")
    if light := report["pilot_light"]:
        context.env.print(
            f"pilot light: the last catch-up used {light['last_compute_seconds'] / 60:.1f} "
            f"min of compute; {light['compute_seconds'] / 60:.1f} min over "
            f"{light['catch_ups']} catch-ups since {light['since']}")
    if report["promoted"]:
        context.env.print(f"promoted by {report['promoted']}: it is the primary now, never "
                          "followed again")


@standby.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def check_command(context: Context, as_json: bool) -> None:
    """Prove the standby still equals the source: the source's databases read in one snapshot
    at exact binlog coordinates, the standby caught up to exactly there, every table's rows
    and digest compared (no trigger on the source). A difference names the table, is
    recorded on the standby (never followed again) and exits 50; refused while a follower
    runs (23)."""
    from drkit.ops.standbycheck import check_standby
    from drkit.units import duration

    context.env.configure_logging(context.settings.backup.log_file)
    checked = check_standby(context.settings, context.env)
    if as_json:
        context.env.print_json(checked.as_dict())
        return
    context.env.print(
        f"standby {', '.join(checked.databases.values())} equals the source at "
        f"{checked.file}:{checked.offset}: {checked.tables_checked} tables, "
        f"{checked.rows_checked} rows, {checked.objects_checked} objects (catch-up "
        f"{checked.transactions} transactions in {duration(checked.catch_up_seconds)})")
