"""The one object that knows where output goes and whether a person is watching.

Injected into the CLI and the long-running primitives (as httpie does), so that tests and
notebooks can hand in their own streams. At a terminal: readable text and live progress;
under cron: JSON lines on stderr, no progress, the result alone on stdout.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from drkit.redact import redact
from drkit.units import human_size

LOGGER_NAME = "drkit"


@dataclass
class Environment:
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    @property
    def interactive(self) -> bool:
        """A person is watching stderr: show progress and text rather than JSON."""
        return bool(self.stderr_isatty)

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Progress]:
        """Live bytes and rate on a terminal; nothing otherwise."""
        if not self.interactive:
            yield Progress()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=self.stderr, force_terminal=True)
        # A known total: a bar, percent and time left. Unknown (a dump as it streams):
        # bytes so far and the rate, and no bar that could only be made up. Sizes in the
        # units of drkit's own lines (human_size), so the bar and the summary agree.
        columns = [TextColumn("{task.description}"),
                   *([BarColumn(), TaskProgressColumn()] if total else []),
                   TextColumn("{task.fields[size]}"), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), *([TimeRemainingColumn()] if total else [])]
        of = f"/{human_size(total)}" if total else ""
        with RichProgress(*columns, console=console, transient=True) as bar, \
                self._logs_above(console):
            task = bar.add_task(description, total=total, size=f"0B{of}", rate="")

            def show(done: int) -> None:
                bar.update(task, completed=done, size=f"{human_size(done)}{of}")
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{human_size(speed)}/s" if speed else "")

            yield Progress(show)

    @contextmanager
    def status(self, description: str) -> Iterator[Callable[[str], None]]:
        """One live line (``description: what now``, time elapsed) on a terminal; the
        callable it yields sets "what now". Nothing otherwise."""
        if not self.interactive:
            yield lambda _text: None
            return
        from rich.console import Console
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=self.stderr, force_terminal=True)
        with RichProgress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=console, transient=True) as line, \
                self._logs_above(console):
            task = line.add_task(description)
            yield lambda text: line.update(task, description=redact(f"{description}: {text}"))

    @contextmanager
    def _logs_above(self, console) -> Iterator[None]:
        """While a live line is drawn, drkit's log lines go above it: written straight to
        stderr they would land after the bar on its line, which then stays behind."""
        handlers = [h for h in logging.getLogger(LOGGER_NAME).handlers
                    if type(h) is logging.StreamHandler and h.stream is self.stderr]
        for handler in handlers:
            handler.setStream(_AboveTheLiveLine(console))
        try:
            yield
        finally:
            for handler in handlers:
                handler.setStream(self.stderr)

    def print(self, text: str) -> None:
        self.stdout.write(redact(text) + "\n")
        self.stdout.flush()

    def print_json(self, value: Any) -> None:
        self.print(json.dumps(value, default=str, ensure_ascii=False))

    def configure_logging(self, log_file: Path | None = None, verbose: bool = False,
                          json_lines: bool | None = None) -> None:
        """Text on a terminal's stderr, JSON lines otherwise; ``log_file`` gets the run log."""
        logger = logging.getLogger(LOGGER_NAME)
        logger.handlers.clear()
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.propagate = False
        console = logging.StreamHandler(self.stderr)
        if json_lines is None:
            json_lines = not self.interactive
        console.setFormatter(JsonFormatter() if json_lines else TextFormatter())
        logger.addHandler(console)
        if log_file is not None:
            log_file = Path(log_file).expanduser()
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setFormatter(TextFormatter(timestamps=True))
            logger.addHandler(handler)


class Progress:
    """Handed to long work; ``update(bytes_done)`` is cheap and safe to call often."""

    def __init__(self, sink=None) -> None:
        self._sink = sink
        self._last = 0.0

    def update(self, done: int) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._sink(done)


class _AboveTheLiveLine(io.TextIOBase):
    """A stream whose whole lines rich prints above its live line (progress or status)."""

    def __init__(self, console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        from rich.text import Text

        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            # As text (no markup read into it), and never wrapped by rich at its width.
            self._console.print(Text(line), soft_wrap=True)
        return len(text)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class TextFormatter(logging.Formatter):
    def __init__(self, timestamps: bool = False) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if self.timestamps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            text = f"{stamp} {record.levelname:<7} {text}"
        return redact(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, ``message`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": getattr(record, "event", record.name),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def log_event(event: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with a machine-readable event name and fields."""
    logging.getLogger(LOGGER_NAME).log(level, message, extra={"event": event, "fields": fields})
