"""The restore drill keeps the pilot light as the failover would find it: a stopped
Flexible Server (the ARM stand-in) is started for the drill and stopped again."""

from __future__ import annotations

import pytest

from drkit.config import load_settings
from drkit.errors import AzureControlError, ChecksumMismatchError
from drkit.ops.backup import run_backup
from drkit.ops.drill import run_drill
from tests.helpers import point_cli_at


@pytest.fixture
def drill_settings(sandbox, arm, tmp_path, monkeypatch):
    point_cli_at(sandbox, tmp_path, monkeypatch)
    settings = load_settings()
    run_backup(settings)
    return settings


def _actions(arm) -> list[str]:
    return [path.rsplit("/", 1)[1] for method, path in arm.requests
            if method == "POST" and path.endswith(("/start", "/stop"))]


def test_the_drill_starts_a_stopped_server_and_stops_it_again(drill_settings, arm):
    result = run_drill(drill_settings)
    assert [c["change"] for c in result.server_changes] == ["Stopped -> Ready",
                                                            "Ready -> Stopped"]
    assert result.steps["start server"] == result.server_changes[0]["duration_seconds"]
    assert result.rto_seconds >= result.steps["start server"]  # the start is part of the RTO
    assert arm.servers["drkit-dr"]["state"] == "Stopped"
    assert _actions(arm) == ["start", "stop"]


def test_a_server_already_ready_is_left_running(drill_settings, arm):
    arm.servers["drkit-dr"]["state"] = "Ready"
    assert run_drill(drill_settings).server_changes == []
    assert arm.servers["drkit-dr"]["state"] == "Ready" and _actions(arm) == []


def test_a_stopping_server_is_waited_out_then_started(drill_settings, arm):
    arm.transition("drkit-dr", "Stopping", settles_to="Stopped")
    result = run_drill(drill_settings)
    assert result.server_changes[0]["change"] == "Stopping -> Ready"
    assert arm.servers["drkit-dr"]["state"] == "Stopped"
    assert _actions(arm) == ["start", "stop"]


@pytest.mark.parametrize("state", ["Disabled", "Dropping"])
def test_a_server_that_cannot_start_fails_at_once_naming_its_state(drill_settings, arm, state):
    arm.servers["drkit-dr"]["state"] = state
    with pytest.raises(AzureControlError, match=f"is {state}"):
        run_drill(drill_settings)
    assert _actions(arm) == []


def test_a_failed_drill_still_stops_the_server(drill_settings, arm, store):
    name = next(b.name for b in store.container.list_blobs(
        name_starts_with=drill_settings.storage.prefix) if b.name.endswith(".sql.gz"))
    data = bytearray(store.container.download_blob(name).readall())
    data[len(data) // 2] ^= 0xFF
    metadata = store.container.get_blob_client(name).get_blob_properties().metadata
    store.container.upload_blob(name, bytes(data), overwrite=True, metadata=metadata)
    with pytest.raises(ChecksumMismatchError):
        run_drill(drill_settings)
    assert arm.servers["drkit-dr"]["state"] == "Stopped"
    assert _actions(arm) == ["start", "stop"]
