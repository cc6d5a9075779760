#!/usr/bin/env python3
"""What reading the binlog archive's records costs, after 1 rotation and after 500.

    .venv/bin/python bench/binlog_status_bench.py [--rotations 500] [--repeat 7]

A fresh archive on the sandbox (bench/out/sandbox-binlog, as bench/binlog_bench.py), one
rotation (FLUSH BINARY LOGS as root) archived by ``drkit binlog stream --once``; then the
rest of the rotations, archived the same way. At each point, taking turns ``--repeat``
times (medians):

- ``drkit binlog status --json`` (the CLI, a process each time) and ``status()`` in-process
  (both read the archive's index);
- what a tool that lists every file pays: one listing of the archive's prefix with
  metadata (the SDK's ``list_blobs``; ``binlog verify`` and doctor list);
- the way before (issue 23): the listing, then one GET per file record.

The issue's target: status after 500 rotations within 1.2x of status after 1. Not a test:
the figures go to bench/out/binlog-status.json and the closing note.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from drkit.azure.blobstore import BackupStore
from drkit.config import load_settings
from drkit.ops.binlog_archive import status
from drkit.sandbox.estate import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT  # noqa: E402


def _drkit(*args: str) -> None:
    result = subprocess.run([DRKIT, *args], capture_output=True, text=True, env=os.environ)
    if result.returncode != 0:
        raise SystemExit(f"drkit {' '.join(args)}: {result.stdout[-400:]}{result.stderr[-400:]}")


def _rotate(box: Sandbox, times: int) -> None:
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        for _ in range(times):
            cursor.execute("INSERT INTO shop.bench_status (at) VALUES (NOW(6))")
            cursor.execute("FLUSH BINARY LOGS")


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _measure(settings, repeat: int) -> dict[str, float]:
    store = BackupStore.from_settings(settings, prefix=settings.binlog.prefix)

    def listing() -> list:
        return list(store.container.list_blobs(name_starts_with=store.prefix,
                                               include=["metadata"]))

    def one_get_per_record() -> None:
        for blob in listing():
            if blob.name.endswith(".json") and not blob.name.endswith("gaps.json"):
                json.loads(store.container.download_blob(blob.name).readall())

    def bare_listing() -> list:
        return list(store.container.list_blobs(name_starts_with=store.prefix))

    ways = {"binlog status (CLI)": lambda: _drkit("binlog", "status", "--json"),
            "drkit --version (CLI start alone)": lambda: _drkit("--version"),
            "status() in-process": lambda: status(settings),
            "one listing with metadata": listing,
            "listing without metadata": bare_listing,
            "listing + one GET per record (before)": one_get_per_record}
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):  # taking turns: the machine's load falls on all alike
        for name, action in ways.items():
            samples[name].append(_timed(action))
    return {name: round(statistics.median(values), 4) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rotations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    box = Sandbox(OUT / "sandbox-binlog")
    box.up()
    stamp = int(time.time())
    # Side by side, as the defaults have them (backups/, binlogs/): the catalog's listing
    # (status reads the point-in-time bases) does not walk the archive's blobs.
    os.environ.update(DRKIT_CONFIG=str(box.config_path),
                      DRKIT_STORAGE__PREFIX=f"bench/status-{stamp}/backups/",
                      DRKIT_BINLOG__PREFIX=f"bench/status-{stamp}/binlogs/",
                      DRKIT_BACKUP__STATE_DIR=str(OUT / "state-binlog-status"))
    settings = load_settings()
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS shop.bench_status (id INT "
                       "AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
        cursor.execute("FLUSH BINARY LOGS")
        cursor.execute("SHOW BINARY LOGS")
        cursor.execute(f"PURGE BINARY LOGS TO '{cursor.fetchall()[-1][0]}'")  # earlier runs'
    try:
        _drkit("binlog", "stream", "--once")  # no base: the archive starts at the current file
        _rotate(box, 1)
        _drkit("binlog", "stream", "--once")
        files_1 = status(settings)["files"]
        one = _measure(settings, args.repeat)
        _rotate(box, args.rotations - 1)
        _drkit("binlog", "stream", "--once")
        files_n = status(settings)["files"]
        many = _measure(settings, args.repeat)
    finally:
        _forget_archive(settings)
        box.down()
    rows = {name: {f"after 1 rotation ({files_1} files)": one[name],
                   f"after {args.rotations} rotations ({files_n} files)": many[name],
                   "ratio": round(many[name] / one[name], 2)} for name in one}
    rows["status in-process ÷ one listing, after many"] = {
        "ratio": round(many["status() in-process"]
                       / many["one listing with metadata"], 2)}
    print(json.dumps(rows, indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "binlog-status.json").write_text(json.dumps(rows, indent=1) + "\n")


def _forget_archive(settings) -> None:
    """The run's archive and the source's rotations go with it."""
    store = BackupStore.from_settings(settings, prefix=settings.binlog.prefix)
    for blob in store.container.list_blobs(name_starts_with=settings.binlog.prefix):
        store.delete(blob.name)


if __name__ == "__main__":
    main()
