"""drkit's block in a crontab, and the systemd unit, written and replaced without touching
anything else (drkit.runbooks.schedule); no crontab program is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.errors import ParameterError, RunbookNotFoundError
from drkit.runbooks.runbook import Runbook
from drkit.runbooks.schedule import (
    _unit_word,
    block_key,
    check_environment,
    install,
    remove,
    without_block,
)

OTHERS = ["MAILTO=ops@example.com", "0 3 * * * /usr/local/bin/rotate-logs"]
CONFIG = Path("/etc/drkit/drkit.yaml")


def _block(environment: str, command: str = "drkit run x") -> list[str]:
    key = block_key(environment, CONFIG)
    return [f"# BEGIN {key} (written by drkit schedule install; change the "
            "runbooks, then install again)", "CRON_TZ=UTC", f"*/5 * * * * {command}",
            f"# END {key}"]


class _Table:
    """A crontab held in memory: what Crontab reads and writes."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def read(self) -> list[str]:
        return list(self.lines)

    def write(self, lines: list[str]) -> None:
        self.lines = lines


def test_only_the_environments_own_block_is_taken_out():
    lines = [OTHERS[0], *_block("test"), OTHERS[1], *_block("prod")]
    assert without_block(lines, "test", CONFIG) == [OTHERS[0], OTHERS[1], *_block("prod")]
    assert without_block(lines, "prod", CONFIG) == [OTHERS[0], *_block("test"), OTHERS[1]]
    assert without_block(lines, "staging", CONFIG) == lines


def test_an_environment_whose_name_starts_anothers_keeps_the_other_block():
    lines = [*_block("prod"), *_block("prod2")]
    assert without_block(lines, "prod", CONFIG) == _block("prod2")


def test_install_replaces_the_block_and_remove_takes_it_away():
    table = _Table([OTHERS[0], *_block("test", "old"), OTHERS[1]])
    install(table, _block("test", "new"), "test", CONFIG)
    assert table.lines == [*OTHERS, *_block("test", "new")]
    install(table, _block("test", "newer"), "test", CONFIG)  # again: still one block
    assert table.lines == [*OTHERS, *_block("test", "newer")]
    remove(table, "test", CONFIG)
    assert table.lines == OTHERS
    remove(table, "test", CONFIG)  # nothing to remove: nothing changes
    assert table.lines == OTHERS


@pytest.mark.parametrize("environment", ["prod", "test-2", "eu_west.1"])
def test_plain_environment_names_pass(environment):
    assert check_environment(environment) == environment


@pytest.mark.parametrize("environment", ["", "prod\n* * * * * rm -rf ~", "a b", "$(id)", "-x",
                                         "x" * 65])
def test_an_environment_that_is_no_plain_name_is_refused(environment):
    with pytest.raises(ParameterError, match="is not a name"):
        check_environment(environment)


def test_an_environment_no_runbook_has_names_those_that_exist():
    runbook = Runbook(name="drill", notebook="drill.ipynb",
                      environments={"prod": {}, "test": {"schedule": "*/5 * * * *"}})
    assert check_environment("prod", [runbook]) == "prod"
    with pytest.raises(RunbookNotFoundError) as refused:
        check_environment("prdo", [runbook])
    assert refused.value.fix == "Use one of: prod, test."


@pytest.mark.parametrize(("value", "word"), [
    ("/opt/drkit/bin/drkit", '"/opt/drkit/bin/drkit"'),
    ("/srv/my dr/drkit.yaml", '"/srv/my dr/drkit.yaml"'),  # a space stays in the one word
    ('/a"b', '"/a\\"b"'), ("/a\\b", '"/a\\\\b"'),
    ("/x/100%/c", '"/x/100%%/c"')])  # % is a specifier in units
def test_a_unit_word_is_quoted_and_escaped_as_systemd_reads_it(value, word):
    assert _unit_word(value) == word
