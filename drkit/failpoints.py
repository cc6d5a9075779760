"""Deterministic kill points: a real ``kill -9`` at an exact step, for tests.

``failpoint("swap")`` counts how often the point named ``swap`` was passed in this process.
With ``DRKIT_FAILPOINT=swap:N`` set, the N-th pass sends SIGKILL to this process (with
``swap:N:stop``, SIGSTOP: frozen there until a test signals it and sends SIGCONT): no
``finally``, no signal handler, no flush, as an operator's ``kill -9`` or an OOM kill would.
No sleeps, no timing: the same N stops the same statement every run. Unset (production),
a pass is two environment lookups. ``DRKIT_FAILPOINT_LOG=FILE`` appends ``name N label`` per
pass, so a test can list the points a whole run passes and choose where to stop one.
"""

from __future__ import annotations

import os
import signal

_VARIABLE = "DRKIT_FAILPOINT"
_LOG_VARIABLE = "DRKIT_FAILPOINT_LOG"
_passes: dict[str, int] = {}


def failpoint(name: str, label: str = "") -> None:
    """Pass the point ``name`` (``label`` says where, for the log)."""
    wanted, log = os.environ.get(_VARIABLE), os.environ.get(_LOG_VARIABLE)
    if wanted is None and log is None:
        return
    count = _passes[name] = _passes.get(name, 0) + 1
    if log:
        with open(log, "a", encoding="utf-8") as trace:
            trace.write(f"{name} {count} {label}\n")
    target, _, rest = (wanted or "").partition(":")
    number, _, action = rest.partition(":")
    if target == name and number.isdigit() and int(number) == count:
        # "stop" freezes the process there (SIGSTOP), for a test to signal it at that exact
        # instant and let it go on (SIGCONT); otherwise it dies as by kill -9.
        os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
