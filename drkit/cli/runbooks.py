"""``drkit run``, ``audit``, ``schedule``: runbooks, their audit records and their cron entries."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from drkit.cli.context import Context, pass_context, print_table
from drkit.exitstatus import ExitStatus


def _parameter(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict:
    """``-p key=value`` as text; the runner converts each to its notebook's type."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: write key=value")
        parsed[key] = value
    return parsed


@click.command("run")
@click.argument("runbook")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("-p", "--parameter", "overrides", multiple=True, callback=_parameter,
              metavar="KEY=VALUE", help="Override a notebook parameter (typed by the notebook).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_context
def run_command(context: Context, runbook: str, environment: str | None, overrides: dict,
                as_json: bool) -> None:
    """Execute RUNBOOK's notebook with papermill and publish its audit record."""
    from drkit.errors import ConfigError
    from drkit.runbooks.runbook import load_runbook, runbook_dirs
    from drkit.runbooks.runner import RunRequest, run_runbook

    if not context.config_path:
        raise ConfigError("No configuration: pass --config FILE or set DRKIT_CONFIG "
                          "(drkit sandbox up writes one).")
    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    _close_interrupted(context)
    outcome = run_runbook(settings, Path(context.config_path),
                          RunRequest(load_runbook(runbook, runbook_dirs(settings)), environment,
                                     overrides),
                          context.env)
    if as_json:
        context.env.print_json(outcome.as_dict())
    else:
        for line in outcome.summary:
            context.env.print(line)
        context.env.print(f"record: {outcome.record}")
        if outcome.record_url:
            context.env.print(f"published: {outcome.record_url}")
    if outcome.exit_code:
        raise click.exceptions.Exit(outcome.exit_code)


def _close_interrupted(context: Context) -> None:
    """Records that runs killed with -9 left saying running: closed as interrupted and
    published (each logged as run.finished)."""
    from drkit.runbooks.runner import close_interrupted

    close_interrupted(context.settings)


@click.group()
def failover() -> None:
    """The failover notebook for a person during an incident."""


@failover.command("open")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--port", default=8888, show_default=True, type=click.IntRange(1, 65535),
              help="JupyterLab's port (127.0.0.1).")
@pass_context
def failover_open(context: Context, environment: str | None, port: int) -> None:
    """Copy the failover notebook into a new incident folder and open it in JupyterLab.

    The copy is what you run and what `drkit audit publish` takes afterwards; the
    notebook drkit ships is never modified."""
    from drkit.errors import ConfigError
    from drkit.runbooks.incident import new_incident, new_token, run_lab
    from drkit.runbooks.runbook import load_runbook, runbook_dirs

    if not context.config_path:
        raise ConfigError("No configuration: pass --config FILE or set DRKIT_CONFIG "
                          "(drkit sandbox up writes one).")
    settings = context.settings
    incident = new_incident(settings, Path(context.config_path),
                            load_runbook("failover", runbook_dirs(settings)),
                            environment or settings.environment)
    code = run_lab(incident, port, new_token(), context.env.print)
    if code:
        raise click.exceptions.Exit(code)


@click.group()
def audit() -> None:
    """Audit records of runbook runs (executed notebooks, run.json)."""


_audit_container = click.option("--container", default="dr-audit", show_default=True,
                                 help="Audit container.")


@audit.command("publish")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--runbook", "runbook_name", default="failover", show_default=True)
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--by", "by", metavar="NAME", help="Who ran it (recorded beside the OS user).")
@pass_context
def audit_publish(context: Context, notebook: Path, runbook_name: str,
                  environment: str | None, by: str | None) -> None:
    """Keep a notebook run by hand (e.g. the failover in JupyterLab) as an audit record.

    Refused if it was never executed or was published before; a cell that failed or never
    ran makes the record say failed."""
    from drkit.runbooks.runbook import load_runbook, runbook_dirs
    from drkit.runbooks.runner import record_notebook

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    outcome = record_notebook(settings, load_runbook(runbook_name, runbook_dirs(settings)),
                              notebook, environment, by)
    context.env.print(f"{outcome.run_id}: {outcome.status} - {outcome.message}")
    if not outcome.published:  # what kept it back, not how the notebook's run ended
        raise click.exceptions.Exit(outcome.publish_failure or ExitStatus.AUDIT_REFUSED)


@audit.command("list")
@_audit_container
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def audit_list(context: Context, container: str, limit: int, as_json: bool) -> None:
    """Recent runs: runbook, environment, status, duration, RPO, RTO."""
    from drkit.runbooks.audit import list_runs

    store = context.store(container)
    _close_interrupted(context)
    runs = list_runs(store, limit)
    if as_json:
        context.env.print_json({"ok": True, "runs": runs})
        return
    print_table(context.env, ["run", "runbook", "env", "status", "duration s", "RPO s", "RTO s"],
           [[r["run_id"], r["runbook"], r["environment"], r["status"],
             _number(r["duration_seconds"]), _number(r["results"].get("rpo_seconds")),
             _number(r["results"].get("rto_seconds"))] for r in runs])


def _number(value) -> str:
    return "-" if value is None else f"{value:.0f}"


@audit.command("show")
@click.argument("run_id")
@_audit_container
@pass_context
def audit_show(context: Context, run_id: str, container: str) -> None:
    """Print a run's run.json."""
    from drkit.runbooks.audit import RUN, find_run

    store = context.store(container)
    context.env.print(store.read(find_run(store, run_id) + RUN).decode())


@audit.command("verify")
@click.argument("run_id")
@_audit_container
@pass_context
def audit_verify(context: Context, run_id: str, container: str) -> None:
    """Check a published record's files against the hashes in its run.json."""
    from drkit.runbooks.audit import verify_run

    run = verify_run(context.store(container), run_id)
    context.env.print(f"{run_id}: ok ({', '.join(run['files']) or 'run.json only'} match)")


@audit.command("report")
@_audit_container
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("drkit-audit-report.html"), show_default=True)
@click.option("--format", "report_format", type=click.Choice(["html", "json"]), default="html",
              show_default=True, help="json: the same content, to standard output.")
@click.option("--limit", default=200, show_default=True)
@pass_context
def audit_report(context: Context, container: str, output: Path, report_format: str,
                 limit: int) -> None:
    """The verdict of every run, the drills' RPO and RTO against their objectives, each
    run linked to its record."""
    from drkit.runbooks.audit import HTML, list_runs
    from drkit.runbooks.report import render_html, report_model

    store = context.store(container)
    runs = list_runs(store, limit)
    links = {run["run_id"]: store.url(run["audit"]["prefix"] + HTML)
             for run in runs if (run.get("audit") or {}).get("prefix")}
    model = report_model(runs, links)
    if report_format == "json":
        context.env.print_json({"ok": True, **model})
        return
    output.write_text(render_html(model), encoding="utf-8")
    context.env.print(str(output))


@click.command("schedule")
@click.argument("action", type=click.Choice(["show", "install", "remove", "unit"]))
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--for", "follows", type=click.Choice(["binlog", "standby"]), default="binlog",
              show_default=True, help="unit: the binary log into the archive (binlog stream), "
                                      "or the archive into the standby (standby follow).")
@pass_context
def schedule_command(context: Context, action: str, environment: str | None,
                     follows: Literal["binlog", "standby"]) -> None:
    """Show, install or remove the crontab entries of an environment's runbooks (and of the
    binlog archive); unit: print the systemd unit that follows the binary log (--for
    standby: the one that keeps the standby current)."""
    from drkit.errors import ConfigError
    from drkit.runbooks.runbook import all_runbooks, runbook_dirs
    from drkit.runbooks.schedule import (
        Crontab,
        check_environment,
        cron_block,
        install,
        remove,
        systemd_unit,
    )

    if follows != "binlog" and action != "unit":
        raise click.UsageError("--for chooses the systemd unit drkit schedule unit prints; "
                               "the crontab holds no standby entry.")
    if not context.config_path:
        raise ConfigError("drkit schedule needs a config.",
                          "Pass --config FILE or set DRKIT_CONFIG.")
    settings = context.settings
    # A plain name, and for show/install one a runbook has: it goes into cron lines.
    environment = check_environment(settings.environment if environment is None
                                    else environment)
    if action == "unit":
        context.env.print(systemd_unit(settings, Path(context.config_path), environment,
                                       follows))
        return
    if action == "remove":  # an environment no runbook has any more may still have a block
        remove(Crontab(), environment, Path(context.config_path))
        context.env.print(f"removed the crontab entries for {environment}")
        return
    block = cron_block(settings, Path(context.config_path), environment,
                       all_runbooks(runbook_dirs(settings)))
    if action == "show":
        context.env.print("\n".join(block))
    else:
        install(Crontab(), block, environment, Path(context.config_path))
        context.env.print(f"installed {len(block) - 3} crontab entries for {environment}")
