"""``drkit binlog stream`` and ``binlog status``: the binlog archive for point-in-time recovery."""

from __future__ import annotations

import click

from drkit.cli.context import Context, pass_context


@click.group()
def binlog() -> None:
    """The source's binary log, archived continuously in Azure Blob Storage."""


@binlog.command("stream")
@click.option("--once", is_flag=True,
              help="Catch up to the source's current end, make it durable, exit (cron).")
@click.option("--from", "start_from", metavar="FILE",
              help="A new archive's first binlog file (default: where the oldest "
                   "point-in-time base needs it, else the source's current file).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def stream_command(context: Context, once: bool, start_from: str | None,
                   as_json: bool) -> None:
    """Archive the binary log from where the archive ends; without --once, keep following
    it (for a systemd unit), durable in Azure every binlog.flush_seconds. One writer per
    archive: a second one, on any host, is refused (exit 23)."""
    from drkit.ops.binlog_archive import stream

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    result = stream(settings, context.env, once=once, start_from=start_from)
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        context.env.print(f"archived {result.events} events ({result.bytes} bytes) of "
                          f"{', '.join(result.files) or 'no new events'}; newest event "
                          f"{result.newest_event_at or '-'}")
    if result.gaps:
        raise click.exceptions.Exit(49)


@binlog.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def status_command(context: Context, as_json: bool) -> None:
    """The newest archived event (the recovery point), lag, files, gaps and size; exit 49
    when a gap is not yet superseded by a verified full backup taken after it."""
    from drkit.ops.binlog_archive import status
    from drkit.units import human_size

    report = status(context.settings)
    if as_json:
        context.env.print_json(report)
    else:
        context.env.print(
            f"binlog archive: {report['files']} files ({report['oldest_file'] or '-'} .. "
            f"{report['newest_file'] or '-'}), {human_size(report['archived_bytes'])}; "
            f"newest event {report['newest_event_at'] or '-'} "
            f"({report['lag_seconds'] if report['lag_seconds'] is not None else '-'} s ago)"
            + (f"; source {report['source_ahead_bytes']} bytes ahead"
               if report["source_ahead_bytes"] else ""))
        for gap in report["gaps"]:
            context.env.print(
                f"GAP after {gap['after_file']} at {gap['after_position']} "
                f"({gap['after_event_at']}): {gap['missing']}; detected {gap['detected_at']}; "
                + (f"superseded by backup {gap['superseded_by']}" if gap["superseded_by"] else
                   "no point in time after it can be reached until a full backup is taken "
                   "(drkit backup, then drkit verify)"))
    if not report["ok"]:
        raise click.exceptions.Exit(49)
