"""``drkit maintenance on|off|status``: the public page users see during an incident, put up
and taken down without the failover notebook (ending an incident is a step of its own)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from drkit.cli.context import Context, pass_context

DEFAULT_MESSAGE = ("We are restoring service after an outage at our cloud provider. "
                   "Thank you for your patience.")
_yes = click.option("--yes", is_flag=True,
                    help="Change the public page; without it, only say what would change.")


@click.group()
def maintenance() -> None:
    """The maintenance page ($web/index.html of the storage account's static website)."""


@maintenance.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def maintenance_status(context: Context, as_json: bool) -> None:
    """Whether the page is up, and where users see it."""
    from drkit.azure import maintenance as page

    settings = context.settings
    up, url = page.is_up(settings), page.page_url(settings)
    if as_json:
        context.env.print_json({"ok": True, "up": up, "url": url})
    else:
        context.env.print(f"maintenance page: {'up' if up else 'down'} ({url})")


@maintenance.command("on")
@click.option("--message", default=DEFAULT_MESSAGE, show_default=True,
              help="What users read (public: never a secret).")
@_yes
@pass_context
def maintenance_on(context: Context, message: str, yes: bool) -> None:
    """Put the page up (or replace its message)."""
    from drkit.azure import maintenance as page

    if not message.strip():
        raise click.UsageError("--message is empty: users would see a page that says nothing; "
                               "nothing was published.")
    settings = context.settings
    if not yes:
        context.env.print(f"would put up the maintenance page at {page.page_url(settings)}: "
                          f"{message!r}; nothing was changed (pass --yes to publish it)")
        return
    url = page.publish(settings, message, datetime.now(UTC))
    context.env.print(f"maintenance page up: {url}")


@maintenance.command("off")
@_yes
@pass_context
def maintenance_off(context: Context, yes: bool) -> None:
    """Take the page down, once applications work against the DR database."""
    from drkit.azure import maintenance as page

    settings = context.settings
    if not yes:
        state = "up" if page.is_up(settings) else "not up"
        context.env.print(f"would take the maintenance page down (it is {state}); nothing was "
                          "changed (pass --yes to take it down)")
        return
    removed = page.remove(settings)
    context.env.print("maintenance page taken down" if removed
                      else "maintenance page was not up; nothing to take down")
