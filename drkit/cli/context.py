"""What every command shares: the injected environment, the settings, output helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from drkit.config import Settings, load_settings
from drkit.console import Environment

if TYPE_CHECKING:
    from drkit.azure.blobstore import BackupStore


class Context:
    """One per invocation: the environment (terminal or cron) and the settings, loaded once."""

    def __init__(self, env: Environment, config_path: str | None) -> None:
        self.env = env
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def store(self, container: str | None = None) -> BackupStore:
        """The backup container (or another container of the same account, unprefixed)."""
        from drkit.azure.blobstore import BackupStore

        settings = self.settings
        self.env.configure_logging(settings.backup.log_file)
        return BackupStore.from_settings(settings, container=container,
                                         prefix=None if container is None else "")


pass_context = click.make_pass_decorator(Context)


def print_table(env: Environment, columns: list[str], rows: list[list[str]]) -> None:
    """A table at a terminal; tab-separated lines, never truncated, into a pipe or file."""
    if not env.stdout_isatty:
        for row in [columns, *rows]:
            env.print("\t".join(str(cell).replace("\t", " ").replace("\n", " ")
                                for cell in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    Console(file=env.stdout, width=max(120, Console(file=env.stdout).width)).print(table)


def with_options(options):
    """Apply a list of click options, in order, to a command."""
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate
