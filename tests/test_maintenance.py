"""``drkit maintenance on|off|status``: the public page without the failover notebook."""

from __future__ import annotations

import json

from drkit.azure import maintenance
from drkit.config import load_settings
from drkit.secrets import resolver_for
from tests.helpers import point_cli_at, run_cli


def _page() -> str | None:
    store = maintenance._store(load_settings())
    blob = store.container.get_blob_client(load_settings().azure.website_page)
    return blob.download_blob().readall().decode() if blob.exists() else None


def test_the_page_goes_up_and_down_only_with_yes(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)  # this test's own page
    try:
        asked = run_cli("maintenance", "on", "--message", "Back soon: we moved to Azure.")
        assert asked.exit_code == 0 and "nothing was changed" in asked.stdout
        assert _page() is None
        assert run_cli("maintenance", "on", "--message", "Back soon: we moved to Azure.",
                       "--yes").exit_code == 0
        assert "Back soon: we moved to Azure." in _page()
        status = json.loads(run_cli("maintenance", "status", "--json").stdout)
        assert status["ok"] and status["up"] and status["url"].startswith("http")
        assert run_cli("maintenance", "off").exit_code == 0 and _page() is not None
        off = run_cli("maintenance", "off", "--yes")
        assert off.exit_code == 0 and off.stdout.strip() == "maintenance page taken down"
        assert _page() is None
        assert "was not up" in run_cli("maintenance", "off", "--yes").stdout
        assert run_cli("maintenance", "status").stdout.startswith("maintenance page: down")
    finally:
        maintenance.remove(load_settings())


def test_a_message_holding_a_secret_is_never_published(sandbox, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    key = resolver_for(settings).resolve(settings.storage.key).get_secret_value()
    try:
        result = run_cli("maintenance", "on", "--message", f"key {key}", "--yes")
        assert result.exit_code == 42 and key not in result.stdout + result.stderr
        assert _page() is None
    finally:
        maintenance.remove(load_settings())
