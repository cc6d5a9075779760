"""Where drkit's output goes: text for a person at a terminal, JSON lines under cron, the
result alone on stdout, and never a secret it read (drkit.console)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from pathlib import Path

import pytest

from drkit.console import LOGGER_NAME, Environment, log_event
from drkit.redact import MASK, register_secret


@pytest.fixture(autouse=True)
def _drkit_logger_as_it_was():
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _environment(terminal: bool) -> tuple[Environment, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Environment(out, err, stdout_isatty=terminal, stderr_isatty=terminal), out, err


def test_under_cron_each_log_line_is_one_json_object_with_its_fields():
    environment, out, err = _environment(terminal=False)
    assert not environment.interactive
    environment.configure_logging()
    log_event("backup.step", "[2/4] dump ... done", step=2, size=123)
    entry = json.loads(err.getvalue())
    assert entry["event"] == "backup.step" and entry["level"] == "info"
    assert entry["message"] == "[2/4] dump ... done" and (entry["step"], entry["size"]) == (2, 123)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert out.getvalue() == ""  # stdout holds the result alone


def test_at_a_terminal_a_person_reads_the_message_alone():
    environment, _, err = _environment(terminal=True)
    assert environment.interactive
    environment.configure_logging()
    log_event("backup.step", "[2/4] dump ... done", step=2)
    assert err.getvalue() == "[2/4] dump ... done\n"


def test_debug_lines_only_when_asked_for():
    environment, _, err = _environment(terminal=True)
    environment.configure_logging()
    log_event("x.detail", "detail", level=logging.DEBUG)
    assert err.getvalue() == ""
    environment.configure_logging(verbose=True)
    log_event("x.detail", "detail", level=logging.DEBUG)
    assert err.getvalue() == "detail\n"


def test_the_run_log_file_gets_timestamped_text(tmp_path):
    environment, _, _ = _environment(terminal=False)
    log = tmp_path / "logs" / "backup.log"  # its folder is made
    environment.configure_logging(log_file=log)
    log_event("backup.finished", "Backup finished", level=logging.WARNING)
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        handler.flush()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING Backup finished\n",
                        log.read_text())


def test_configuring_again_replaces_the_handlers_rather_than_doubling_lines():
    environment, _, err = _environment(terminal=True)
    environment.configure_logging()
    environment.configure_logging()
    log_event("x", "once")
    assert err.getvalue() == "once\n"


def test_no_secret_read_leaves_by_stdout_a_log_line_or_a_json_field():
    secret = f"pw-{uuid.uuid4().hex}"
    register_secret(secret)
    environment, out, err = _environment(terminal=False)
    environment.configure_logging()
    environment.print(f"connected with {secret}")
    environment.print_json({"password": secret})
    log_event("x", f"login {secret}", password=secret)
    assert secret not in out.getvalue() + err.getvalue()
    assert out.getvalue().splitlines() == [f"connected with {MASK}",
                                           json.dumps({"password": MASK})]
    assert json.loads(err.getvalue())["password"] == MASK


def test_json_output_keeps_non_ascii_and_writes_what_json_cannot_hold_as_text():
    environment, out, _ = _environment(terminal=False)
    environment.print_json({"database": "商店", "path": Path("/a b")})
    assert out.getvalue() == '{"database": "商店", "path": "/a b"}\n'


def test_not_at_a_terminal_progress_and_status_draw_nothing():
    environment, out, err = _environment(terminal=False)
    with environment.progress("upload", total=100) as progress:
        progress.update(50)
    with environment.status("restore") as say:
        say("loading")
    assert out.getvalue() == err.getvalue() == ""
