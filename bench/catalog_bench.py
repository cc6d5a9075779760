#!/usr/bin/env python3
"""Benchmark what reads the backup catalog against a bare listing of it, in one run.

    .venv/bin/python bench/catalog_bench.py [--backups 5000] [--repeat 3]

Uses a small sandbox (bench/out/sandbox-small) whose blob prefix ``bench-catalog-N/`` holds
N backups (tiny blobs, each with a copy of one real manifest), made once, concurrently.
Then times, interleaved and REPEAT times each (median reported):

- bare listing:  list_blobs(name_starts_with=prefix) with the SDK, nothing included
- prune plan:    drkit's prune dry run in-process (plan_prune: what it deletes and why)
- drkit list:    Catalog.entries() in-process (metadata and tags included)
- prune CLI:     drkit prune --older-than 30d --json (a process: Python's start included)

Not a test: figures go to the closing note and bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import load_settings
from drkit.ops.backup import run_backup
from drkit.ops.prune import plan_prune
from drkit.sandbox.estate import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT, run  # noqa: E402

BINLOGS = "bench-catalog-binlogs/"  # an archive of its own, empty: prune lists it once


def fill(store: BackupStore, settings, count: int) -> None:
    """``count`` backups a day apart, from 2010 on, each with a real manifest's text."""
    present = sum(1 for _ in store.container.list_blobs(name_starts_with=store.prefix))
    if present >= 2 * count:
        return
    real = run_backup(settings, databases=list(settings.source.databases))
    manifest = store.container.download_blob(real.manifest.sidecar_name).readall()
    start = datetime(2010, 1, 1, 3, tzinfo=UTC)
    names = [f"{store.prefix}backup-{start + timedelta(days=day):%Y%m%d-%H%M%S}.sql.gz"
             for day in range(count - 1)]

    def put(name: str) -> None:
        store.container.upload_blob(name, b"x", overwrite=True,
                                    metadata={"databases": "shop", "drkit_version": "bench"})
        store.container.upload_blob(name + ".manifest.json", manifest, overwrite=True)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backups", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    box = Sandbox(OUT / "sandbox-small")
    box.up()
    prefix = f"bench-catalog-{args.backups}/"
    os.environ.update(DRKIT_CONFIG=str(box.config_path), DRKIT_STORAGE__PREFIX=prefix,
                      DRKIT_BINLOG__PREFIX=BINLOGS, DRKIT_BACKUP__STATE_DIR=str(OUT / "state"))
    settings = load_settings()
    store = BackupStore.from_settings(settings)
    clock = time.perf_counter()
    fill(store, settings, args.backups)
    print(f"{prefix}: {args.backups} backups ready in {time.perf_counter() - clock:.0f} s",
          flush=True)

    def timed(work) -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    month = 30 * 86400
    cases = {
        "bare listing": lambda: timed(
            lambda: list(store.container.list_blobs(name_starts_with=prefix))),
        "prune plan": lambda: timed(lambda: plan_prune(store, month, BINLOGS)),
        "drkit list": lambda: timed(lambda: Catalog(store).entries()),
        "prune CLI": lambda: run([DRKIT, "prune", "--older-than", "30d", "--json"],
                                 os.environ)[0],
    }
    results: dict[str, list[float]] = {}
    for round_number in range(args.repeat):
        for name, case in cases.items():
            results.setdefault(name, []).append(case())
            print(f"  round {round_number + 1} {name:<13} {results[name][-1]:7.2f} s",
                  flush=True)
    median = {name: statistics.median(runs) for name, runs in results.items()}
    base = median["bare listing"]
    print(f"\n{args.backups} backups ({2 * args.backups} blobs); median of {args.repeat} runs\n")
    print(f"{'reader':<14}{'wall s':>8}{'x bare list':>13}")
    for name in results:
        print(f"{name:<14}{median[name]:8.2f}{median[name] / base:13.2f}")
    (OUT / f"catalog-{args.backups}.json").write_text(json.dumps(
        {"backups": args.backups, "median_seconds": median, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
