"""``drkit binlog stream``, ``status`` and ``verify``: the binlog archive for point-in-time
recovery."""

from __future__ import annotations

import click

from drkit.cli.context import Context, pass_context
from drkit.exitstatus import ExitStatus


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
        context.env.print(f"{result.summary}; newest event {result.newest_event_at or '-'}")
    if result.gaps:
        raise click.exceptions.Exit(ExitStatus.BINLOG_GAP)


DEEP = click.option("--deep", is_flag=True,
                    help="Read every archived byte again and check its sha256 (downloads all).")


@binlog.command("verify")
@DEEP
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def verify_command(context: Context, deep: bool, as_json: bool) -> None:
    """Whether the archive can serve a point-in-time restore, from the oldest base's snapshot
    to the newest event, and to which times; exit 49 when a file is missing, 48 when one is
    damaged (a break a later verified backup supersedes counts for neither)."""
    from drkit.errors import BinlogArchiveError
    from drkit.ops.binlog_verify import verify

    result = verify(context.settings, deep)
    if not result.files:
        raise BinlogArchiveError("The binlog archive is empty: there is no point in time to "
                                 "restore to beyond a full backup.",
                                 "Run drkit binlog stream (drkit schedule prints its unit).")
    report = result.as_dict()
    if as_json:
        context.env.print_json(report)
    else:
        _print_verification(context, report)
    if not report["ok"]:
        raise click.exceptions.Exit(report["exit_code"])


def _print_verification(context: Context, report: dict) -> None:
    context.env.print(f"binlog archive {'OK' if report['ok'] else 'CRITICAL'}"
                      f" ({'deep: every byte read' if report['deep'] else 'records and sizes'}"
                      f"): {report['checked_files']} files from {report['from_file'] or '-'}")
    for window in report["windows"]:
        context.env.print(
            f"base {window['backup']}: "
            + (f"restorable from {window['from']} to {window['until']}" if window["until"]
               else "nothing after its finish can be restored")
            + (f" (cut by {window['cut_by']})" if window["cut_by"] else ""))
    if not report["windows"]:
        context.env.print("no full backup with exact binlog coordinates: nothing to restore "
                          "to (drkit backup, then drkit verify)")
    for found in report["breaks"]:
        context.env.print(f"{'BREAK' if not found['superseded_by'] else 'superseded'}: "
                          f"{found['detail']}")
    _print_index_problems(context, report["index_problems"])


def _print_index_problems(context: Context, problems: list[str]) -> None:
    for problem in problems:
        context.env.print(f"index: {problem}")
    if problems:
        context.env.print("index: binlog status reads the index (the listing, where it "
                          "cannot read it); the next binlog stream run writes it anew")


@binlog.command("status")
@DEEP
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def status_command(context: Context, deep: bool, as_json: bool) -> None:
    """The newest archived event (the recovery point), lag, files, gaps and size, read from
    the archive's index, and the archive verified from it (its oldest base's first file and
    its newest checked against their blobs; binlog verify checks every file, --deep every
    byte); exit 49 when a gap or missing file is not yet superseded by a verified full
    backup after it, 48 when a file is damaged."""
    from drkit.ops.binlog_archive import status
    from drkit.units import duration, human_size

    report = status(context.settings, "deep" if deep else "index")
    if as_json:
        context.env.print_json(report)
    else:
        context.env.print(
            f"binlog archive: {report['files']} files ({report['oldest_file'] or '-'} .. "
            f"{report['newest_file'] or '-'}), {human_size(report['archived_bytes'])}; "
            f"newest event {report['newest_event_at'] or '-'} "
            f"({'-' if report['lag_seconds'] is None else duration(report['lag_seconds'])} ago)"
            + (f"; source {report['source_ahead_bytes']} bytes ahead"
               if report["source_ahead_bytes"] else ""))
        for gap in report["gaps"]:
            context.env.print(
                f"GAP after {gap['after_file']} at {gap['after_position']} "
                f"({gap['after_event_at']}): {gap['missing']}; detected {gap['detected_at']}; "
                + (f"superseded by backup {gap['superseded_by']}" if gap["superseded_by"] else
                   "no point in time after it can be reached until a full backup is taken "
                   "(drkit backup, then drkit verify)"))
        for found in report["verify"]["breaks"]:
            if not found["superseded_by"]:
                context.env.print(f"BREAK: {found['detail']}")
        _print_index_problems(context, report["verify"]["index_problems"])  # read_from listing
    if not report["ok"]:
        raise click.exceptions.Exit(report["verify"]["exit_code"] or ExitStatus.BINLOG_GAP)
