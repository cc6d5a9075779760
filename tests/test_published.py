"""What drkit publishes is scrubbed and private: the maintenance page, the audit records."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from drkit.azure import maintenance
from drkit.azure.blobstore import BackupStore
from drkit.errors import AuditRefusedError, ContainerPublicError
from drkit.runbooks.audit import RUN, AuditRecord


def test_a_secret_shaped_message_never_reaches_the_public_page(settings):
    planted = base64.b64encode(b"k" * 64).decode()  # the shape of a storage account key
    settings.azure.website_page = f"t-{uuid.uuid4().hex[:8]}/index.html"  # this test's own
    with pytest.raises(AuditRefusedError, match="an Azure storage account key"):
        maintenance.publish(settings, f"Back soon. key={planted}", datetime.now(UTC))
    assert not maintenance.is_up(settings)
    maintenance.publish(settings, "Back soon.", datetime.now(UTC))  # the same page, clean
    store = BackupStore.from_settings(settings, container=maintenance.WEB_CONTAINER, prefix="")
    assert "Back soon." in store.container.download_blob(
        settings.azure.website_page).readall().decode()
    assert maintenance.remove(settings) and not maintenance.is_up(settings)


def test_audit_records_go_only_into_a_private_container(settings, tmp_path):
    name = f"pub-{uuid.uuid4().hex[:8]}"
    store = BackupStore.from_settings(settings, container=name, prefix="")
    store.container.create_container(public_access="blob")
    try:
        (tmp_path / RUN).write_text(json.dumps({"run_id": "x"}))
        with pytest.raises(ContainerPublicError, match="allows public read access"):
            AuditRecord(tmp_path, "r/").publish(store)
        assert list(store.container.list_blobs()) == []
    finally:
        store.container.delete_container()


def test_the_page_url_is_the_accounts_website_endpoint_from_resource_manager(
        sandbox, arm, tmp_path, monkeypatch, caplog):
    """Static websites live at ACCOUNT.zNN.web.core.windows.net: the zone is only known to
    Resource Manager. Unreadable there, the blob URL is shown with a warning saying what to
    set; a configured azure.website_url wins over both."""
    from drkit.config import load_settings
    from tests.helpers import point_cli_at

    folder = point_cli_at(sandbox, tmp_path, monkeypatch)  # this test's page: FOLDER/index.html
    monkeypatch.setenv("DRKIT_AZURE__RESOURCE_GROUP", "dr-rg")
    web = "https://bloberry01.z13.web.core.windows.net/"
    arm.storage_accounts["bloberry01"] = web
    assert maintenance.page_url(load_settings()) == web + folder
    assert ("GET", "/subscriptions/00000000-0000-4000-8000-000000000002/resourceGroups/dr-rg/"
            "providers/Microsoft.Storage/storageAccounts/bloberry01") in arm.requests

    del arm.storage_accounts["bloberry01"]
    url = maintenance.page_url(load_settings())
    assert url.endswith(f"/bloberry01/%24web/{folder}index.html")
    assert "Set azure.website_url" in caplog.text

    monkeypatch.setenv("DRKIT_AZURE__WEBSITE_URL", "https://status.example.com")
    assert maintenance.page_url(load_settings()) == f"https://status.example.com/{folder}"


@pytest.mark.parametrize(("page", "shown"), [
    ("index.html", "https://status.example.com/"),  # the site's root serves its index
    ("dr/index.html", "https://status.example.com/dr/"),
    ("dr/maintenance.html", "https://status.example.com/dr/maintenance.html"),
    ("dr-index.html", "https://status.example.com/dr-index.html")])
def test_the_page_url_shows_where_on_the_website_the_page_lives(page, shown):
    from drkit.config import Settings

    settings = Settings(source={"host": "db.internal", "databases": ["shop"]},
                        target={"host": "dr.mysql.database.azure.com", "user": "drkitadmin"},
                        azure={"website_url": "https://status.example.com", "website_page": page})
    assert maintenance.page_url(settings) == shown


@pytest.mark.parametrize("page", ["", "dr/", "/index.html", "index.htm"])
def test_a_page_that_is_no_html_blob_is_refused(page):
    from pydantic import ValidationError

    from drkit.config import AzureSettings

    with pytest.raises(ValidationError, match="website_page"):
        AzureSettings(website_page=page)
