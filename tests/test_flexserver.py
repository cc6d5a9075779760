"""Flexible Server control: the real azure-identity and azure-mgmt-rdbms against the stand-in."""

from __future__ import annotations

import pytest

from drkit.azure.flexserver import FlexibleServer
from drkit.config import load_settings
from drkit.errors import AzureControlError


@pytest.fixture
def server(arm, sandbox, monkeypatch) -> FlexibleServer:
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    settings = load_settings()
    return FlexibleServer(settings)


def test_start_waits_for_ready_and_is_idempotent(server, arm):
    assert server.state() == "Stopped"
    assert server.start() is True
    assert arm.servers["drkit-dr"]["state"] == "Ready"
    polls = [p for m, p in arm.requests if p.startswith("/operations/")]
    assert len(polls) >= 2  # the long-running operation was polled until it finished
    assert server.start() is False  # already Ready: nothing sent
    assert sum(1 for m, p in arm.requests if p.endswith("/start")) == 1
    # The token came from the stand-in's token endpoint, via the real credential.
    assert any(p.endswith("/oauth2/v2.0/token") for _, p in arm.requests)


def test_scale_firewall_database_and_stop(server, arm, monkeypatch):
    server.start()
    server.azure.restore_sku = "Standard_D4ds_v4"
    server.azure.restore_storage_gb = 128
    assert server.scale_for_restore() is True
    assert arm.servers["drkit-dr"]["sku"] == "Standard_D4ds_v4"
    assert arm.servers["drkit-dr"]["storage_gb"] == 128
    assert server.scale_for_restore() is False
    server.allow_ip("drkit-restore-host", "203.0.113.7")
    assert arm.firewall_rules["drkit-restore-host"] == {"startIpAddress": "203.0.113.7",
                                                       "endIpAddress": "203.0.113.7"}
    server.create_database("shop")
    assert arm.databases["shop"]["charset"] == "utf8mb4"
    assert server.stop() is True and arm.servers["drkit-dr"]["state"] == "Stopped"


@pytest.mark.parametrize("status,code,expected", [
    (403, "AuthorizationFailed", "drkit-flexible-server-operator role"),
    (409, "ServerIsBusy", "try again when it is idle"),
])
def test_arm_errors_become_one_sentence_with_the_fix(server, arm, status, code, expected):
    arm.fail_next["start"] = (status, code, "refused by the stand-in")
    with pytest.raises(AzureControlError) as caught:
        server.start()
    assert f"({status} {code})" in str(caught.value) and expected in str(caught.value)
    assert caught.value.exit_code == 46


def test_unknown_server_is_named(server, arm):
    server.name = "no-such-server"
    with pytest.raises(AzureControlError, match="Flexible Server no-such-server in resource "
                                                "group dr-rg was not found"):
        server.state()


def test_a_login_endpoint_that_does_not_answer_is_named_with_the_cause(arm, sandbox,
                                                                       monkeypatch):
    """Entra ID gone (as in a region failure) is not a refusal of the credentials: the
    sentence names the endpoint and what the network said."""
    from drkit.sandbox.services import free_port

    authority = f"https://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    monkeypatch.setenv("DRKIT_AZURE__AUTHORITY", authority)
    with pytest.raises(AzureControlError) as caught:
        FlexibleServer(load_settings()).state()
    assert str(caught.value).startswith(
        f"Cannot reach the Azure login endpoint ({authority}) to ")
    assert "Connection refused" in str(caught.value)
