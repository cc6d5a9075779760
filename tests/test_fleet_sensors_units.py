"""The fleet's sensors without services: a failed run's verdict posted once to a webhook (a
local HTTP server) and counted in the member's metrics; the archive lag judged against its
objective."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drkit.errors import ConfigError
from drkit.exitstatus import ExitStatus
from drkit.fleet.description import load_fleet
from drkit.fleet.state import MemberState, judge
from tests.test_fleet_units import write_fleet


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local webhook: its URL, and the JSON bodies posted to it."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    thread.join()


def test_each_failed_run_posts_its_verdict_once_and_counts_it(tmp_path, monkeypatch, webhook):
    import dagster as dg

    from drkit.aws import metrics
    from drkit.fleet import definitions
    from drkit.fleet.execution import StepOutcome
    from drkit.fleet.sensors import FAILURE_SENSOR

    url, received = webhook
    monkeypatch.setenv("HOOK_URL", url)
    fleet = load_fleet(write_fleet(tmp_path, 2, extra={"fleet": {
        "failure_webhook": "env:HOOK_URL", "retry": {"max_retries": 0}}}))
    monkeypatch.setattr(definitions, "run_step", lambda _fleet, member, kind: StepOutcome(
        member, kind, ExitStatus.OK if member == "m000" else ExitStatus.CHECKSUM_MISMATCH,
        "backup x.sql.gz does not match its manifest's checksum"))
    counted = []
    monkeypatch.setattr(metrics, "publish", lambda settings, databases, values, timeout=None:
                        counted.append((settings.environment, databases, values)))
    defs = definitions.build_definitions(fleet)
    job = defs.resolve_job_def("verify_job")
    sensor = defs.resolve_sensor_def(FAILURE_SENSOR)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance,
                                          repository_def=defs.get_repository_def())
        sensor.evaluate_tick(context)  # the cursor starts now: earlier runs are not news
        for member in ("m000", "m001"):  # a good run, a failed one
            job.execute_in_process(partition_key=member, instance=instance,
                                   raise_on_error=False)
        for _tick in range(2):  # a second tick finds nothing new
            context.update_cursor(sensor.evaluate_tick(context).cursor)
    sentence = ("drkit fleet: verify failed for m001: m001: backup x.sql.gz does not match "
                f"its manifest's checksum (exit {int(ExitStatus.CHECKSUM_MISMATCH)})")
    assert [(body["text"], body["member"]) for body in received] == [(sentence, "m001")]
    assert counted == [("prod", ["db001"], {"FleetRunFailure": (1, "Count")})]


def test_an_unset_webhook_variable_is_named(tmp_path, monkeypatch):
    from drkit.fleet.sensors import webhook_url

    monkeypatch.delenv("HOOK_URL", raising=False)
    fleet = load_fleet(write_fleet(tmp_path, 1, extra={"fleet": {
        "failure_webhook": "env:HOOK_URL"}}))
    with pytest.raises(ConfigError, match="HOOK_URL, which is not set"):
        webhook_url(fleet)


@pytest.mark.parametrize(("lag", "problem"), [
    (12.0, None),
    (900.0, "binlog archive is 900 s behind (objective 300 s)"),
    (None, "its binlog archive is empty"),
])
def test_the_archive_lag_is_judged_against_its_objective(lag, problem):
    state = MemberState(member="m", config="m.yaml", archive_lag_seconds=lag,
                        lag_objective_seconds=300)
    judge(state)
    assert state.lag_problem == problem
    assert state.status == ("ok" if problem is None else "breached")


def test_the_lag_sensor_fails_the_check_for_a_member_behind(tmp_path, monkeypatch):
    import dagster as dg

    from drkit.fleet import sensors
    from drkit.fleet.definitions import build_definitions

    def state(name, member, _read, _now):
        lag = 900.0 if name == "m001" else 5.0
        read = MemberState(member=name, config=str(member.config), archive_lag_seconds=lag,
                           lag_objective_seconds=300)
        judge(read)
        return read

    monkeypatch.setattr(sensors, "member_state", state)
    defs = build_definitions(load_fleet(write_fleet(tmp_path, 2)))
    sensor = defs.resolve_sensor_def(sensors.LAG_SENSOR)
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    [evaluation] = result.asset_events
    assert (evaluation.check_name, evaluation.passed) == ("archive_lag", False)
    assert evaluation.metadata["behind"].value == {
        "m001": "binlog archive is 900 s behind (objective 300 s)"}
