"""What a person at a terminal sees of long work: the progress line's columns and units."""

from __future__ import annotations

import io
import re

from drkit.console import Environment


def _rendered(total: int | None) -> str:
    stderr = io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=stderr, stderr_isatty=True)
    with env.progress("restore b", total) as progress:
        progress.update(3 * 2**20)
        progress._last = 0.0  # the next update is not rate-limited away
        progress.update(5 * 2**20)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr.getvalue())


def test_a_known_total_shows_bar_percent_and_sizes_in_drkits_units():
    text = _rendered(10 * 2**20)
    assert "5.0M/10M" in text and "50%" in text and "━" in text


def test_an_unknown_total_shows_bytes_without_a_made_up_bar_or_percent():
    text = _rendered(None)
    assert "5.0M" in text
    assert "%" not in text and "━" not in text and "/" not in text.split("5.0M")[1][:2]


def test_not_at_a_terminal_nothing_is_drawn():
    stderr = io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=stderr, stderr_isatty=False)
    with env.progress("restore b", 100) as progress:
        progress.update(50)
    with env.status("run") as show:
        show("1. Assess")
    assert stderr.getvalue() == ""


def _screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: carriage returns, newlines, erase-line and
    cursor-up followed; colours and cursor visibility dropped."""
    lines, row, column = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", raw):
        if token == "\r":
            column = 0
        elif token == "\n":
            row, column = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token == "\x1b[2K":
            lines[row] = ""
        elif re.fullmatch(r"\x1b\[\d*A", token):
            row -= int(token[2:-1] or 1)
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(column)
            lines[row] = line[:column] + token + line[column + len(token):]
            column += len(token)
    return [line.rstrip() for line in lines if line.strip()]


def test_a_message_logged_under_a_live_bar_gets_its_own_line_and_the_bar_goes():
    """The replay logged its summary while its bar was drawn: the message landed after the
    bar, on its line, and the bar stayed on the screen at 0 %."""
    from drkit.console import log_event

    for live in ("progress", "status"):
        stderr = io.StringIO()
        env = Environment(stdout=io.StringIO(), stderr=stderr, stderr_isatty=True)
        env.configure_logging(json_lines=False)
        with env.progress("replay binlog", 100) if live == "progress" else \
                env.status("run") as line:
            if live == "progress":
                line.update(0)
            log_event("restore.replayed", "Replayed 3 transactions")
        log_event("restore.done", "next")
        assert _screen(stderr.getvalue()) == ["Replayed 3 transactions", "next"], live
