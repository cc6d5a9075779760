"""``drkit sandbox``: local stand-ins for RDS, Secrets Manager, Blob Storage, Flexible Server."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from drkit.cli.context import Context, pass_context, print_table
from drkit.console import Environment
from drkit.errors import SandboxError
from drkit.exitstatus import ExitStatus
from drkit.units import parse_size


@click.group()
def sandbox() -> None:
    """A local stand-in for RDS, Secrets Manager, Blob Storage and Flexible Server."""


_dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                           default=Path(".drkit-sandbox"), show_default=True,
                           help="Where the sandbox keeps all its state.")


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@sandbox.command("up")
@_dir_option
@click.option("--size", default="4MiB", show_default=True, callback=_size,
              help="Size of the demo database's dump, e.g. 1GiB for benchmarks.")
@click.option("--sources", type=click.IntRange(1, 2), default=1, show_default=True,
              help="Source servers: 2 adds a second one and a fleet of 2 sources x 3 "
                   "databases (DIR/fleet.yaml).")
@pass_context
def sandbox_up(context: Context, directory: Path, size: int, sources: int) -> None:
    """Start (or keep) every sandbox service and write DIR/drkit.yaml and DIR/fleet.yaml."""
    from drkit.sandbox.estate import Sandbox

    box = Sandbox(directory, demo_size=size, sources=sources)
    statuses = box.up()
    _print_status(context.env, statuses, as_json=False)
    context.env.print(f"config: {box.config_path}  (export DRKIT_CONFIG={box.config_path})")
    context.env.print(f"fleet: {box.directory / 'fleet.yaml'}  "
                      f"(export DRKIT_FLEET={box.directory / 'fleet.yaml'})")


@sandbox.command("status")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def sandbox_status(context: Context, directory: Path, as_json: bool) -> None:
    """Show each service's port, pid and health; exit 1 unless all are healthy."""
    from drkit.sandbox.estate import Sandbox

    box = Sandbox(directory)
    _require_sandbox(box)
    statuses = box.status()
    _print_status(context.env, statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise click.exceptions.Exit(ExitStatus.SANDBOX_UNHEALTHY)


@sandbox.command("down")
@_dir_option
@pass_context
def sandbox_down(context: Context, directory: Path) -> None:
    """Stop every process the sandbox started; data stays under DIR."""
    from drkit.sandbox.estate import Sandbox

    stopped = Sandbox(directory).down()
    context.env.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@sandbox.command("stop")
@_dir_option
@click.argument("service")
@pass_context
def sandbox_stop(context: Context, directory: Path, service: str) -> None:
    """Stop one SERVICE, to rehearse its failure (moto: AWS gone); up starts it again."""
    from drkit.sandbox.estate import Sandbox

    box = Sandbox(directory)
    if service not in box.services:
        raise click.BadParameter(f"{service!r} is not a sandbox service; one of: "
                                 f"{', '.join(box.services)}.", param_hint="SERVICE")
    _require_sandbox(box)
    if not box.stop_service(service):
        raise SandboxError(f"The sandbox's {service} in {box.directory} is not running; "
                           "nothing was stopped.", "drkit sandbox status shows what runs.")
    context.env.print(f"stopped: {service} (drkit sandbox up starts it again)")


def _require_sandbox(box) -> None:
    if not box.config_path.exists():  # written by up, kept by down
        raise SandboxError(f"There is no sandbox in {box.directory}.",
                           "Pass --dir DIR (the one drkit sandbox up used), or start one "
                           "with drkit sandbox up.")


def _print_status(env: Environment, statuses, as_json: bool) -> None:
    if as_json:
        env.print_json({"ok": all(s.healthy for s in statuses),
                        "services": [asdict(s) for s in statuses]})
        return
    print_table(env, ["service", "stands in for", "port", "pid", "health", "detail"],
           [[s.name, s.role, str(s.port or "-"), str(s.pid or "-"),
             "healthy" if s.healthy else ("unhealthy" if s.running else "stopped"), s.detail]
            for s in statuses])
