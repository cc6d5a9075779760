"""The DR maintenance page: ``azure.website_page`` (``index.html``, the site's root) in the
storage account's ``$web`` container.

The seed's storage account serves ``$web`` as a static website; during a failover it tells
users what is happening. In the sandbox, Azurite stores it (it does not serve websites).
"""

from __future__ import annotations

import logging
from datetime import datetime
from html import escape

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings

from drkit.azure.blobstore import BackupStore
from drkit.azure.flexserver import website_endpoint
from drkit.config import Settings
from drkit.console import log_event
from drkit.errors import AuditRefusedError
from drkit.redact import find_secrets, known_secrets

WEB_CONTAINER = "$web"
PAGE = "index.html"  # the static website's index document: a folder's URL serves it


def _store(settings: Settings) -> BackupStore:
    return BackupStore.from_settings(settings, container=WEB_CONTAINER, prefix="")


def page_url(settings: Settings, store: BackupStore | None = None) -> str:
    """Where users see the page: ``azure.website_url``, else the account's static-website
    endpoint read from Resource Manager, else (with a warning) the blob's own URL."""
    page = settings.azure.website_page
    on_site = page[:-len(PAGE)] if page == PAGE or page.endswith("/" + PAGE) else page
    if settings.azure.website_url:
        return settings.azure.website_url.rstrip("/") + "/" + on_site
    if endpoint := website_endpoint(settings):
        return endpoint.rstrip("/") + "/" + on_site
    log_event("maintenance.url_unknown", "The storage account's website endpoint could not be "
              "read from Azure Resource Manager; the page's blob URL is shown instead. Set "
              "azure.website_url to the static website's URL.", level=logging.WARNING)
    return (store or _store(settings)).url(settings.azure.website_page)  # no SAS in it


def render(message: str, since: datetime) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Service maintenance</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em}}</style>
</head><body><h1>We are restoring service</h1><p>{escape(message)}</p>
<p><small>Since {escape(since.strftime('%Y-%m-%d %H:%M UTC'))}.</small></p></body></html>
"""


def publish(settings: Settings, message: str, since: datetime) -> str:
    """Put the page up (replacing an earlier version of it); return its URL. The page is
    public: a message holding a secret, or anything shaped like one, is refused."""
    store = _store(settings)  # first: the storage key it resolves is one of the known secrets
    if found := find_secrets(message, known_secrets()):
        raise AuditRefusedError(
            f"The maintenance page was not published: its message contains {', '.join(found)}.",
            "Write the message again without it, and rotate that credential.")
    with store.translated_errors():
        store.container.upload_blob(settings.azure.website_page,
                                    render(message, since).encode(), overwrite=True,
                                    content_settings=ContentSettings(
                                        content_type="text/html; charset=utf-8",
                                        cache_control="no-cache"))
    return page_url(settings, store)


def is_up(settings: Settings) -> bool:
    store = _store(settings)
    with store.translated_errors():
        return store.container.get_blob_client(settings.azure.website_page).exists()


def remove(settings: Settings) -> bool:
    """Take the page down; False if it was not up."""
    store = _store(settings)
    with store.translated_errors():
        try:
            store.container.delete_blob(settings.azure.website_page)
        except ResourceNotFoundError:
            return False
    return True
