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
