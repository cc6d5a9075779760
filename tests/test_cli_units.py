"""The command line's conventions: -h, a close match for a mistyped command or option,
and shell completion as docs/install.md documents it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli

DRKIT = str(Path(sys.executable).parent / "drkit")


@pytest.mark.parametrize("args", [["-h"], ["backup", "-h"], ["binlog", "stream", "-h"],
                                  ["audit", "show", "-h"]])
def test_dash_h_is_help_at_every_level(args, capsys):
    result = run_cli(*args)
    assert result.exit_code == 0
    shown = capsys.readouterr().out  # click writes help to the process's stdout
    assert shown.startswith("Usage: ") and "-h, --help" in shown


@pytest.mark.parametrize(("args", "suggestion"), [
    (["bakup"], "No such command 'bakup'. Did you mean 'backup'?"),
    (["binlog", "stram"], "No such command 'stram'. Did you mean 'stream'?"),
    (["backup", "--jsn"], "No such option '--jsn'. Did you mean '--json'?"),
])
def test_a_mistyped_command_or_option_gets_the_close_match(args, suggestion):
    result = run_cli(*args)
    assert result.exit_code == 2 and suggestion in result.stderr


def test_a_command_nothing_is_close_to_gets_no_suggestion():
    result = run_cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'." in result.stderr and "Did you mean" not in \
        result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_shell_completion_as_the_docs_set_it_up(shell):
    """docs/install.md's line: eval "$(_DRKIT_COMPLETE=SHELL_source drkit)"."""
    script = subprocess.run([DRKIT], env={**os.environ, "_DRKIT_COMPLETE": f"{shell}_source"},
                            capture_output=True, text=True, check=True).stdout
    assert "_drkit_completion" in script
    readme = (Path(__file__).resolve().parent.parent / "docs" / "install.md").read_text()
    assert f'eval "$(_DRKIT_COMPLETE={shell}_source drkit)"' in readme
    completed = subprocess.run(
        [DRKIT], env={**os.environ, "_DRKIT_COMPLETE": "bash_complete",
                      "COMP_WORDS": "drkit bin", "COMP_CWORD": "1"},
        capture_output=True, text=True, check=True).stdout
    assert completed.split() == ["plain,binlog"]
