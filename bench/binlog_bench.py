#!/usr/bin/env python3
"""Benchmark the binlog archive and the point-in-time replay, in one run.

    .venv/bin/python bench/binlog_bench.py [--rate-mb 20] [--seconds 60]
    .venv/bin/python bench/binlog_bench.py --workload big-insert --seconds 20

1. Streaming: a writer produces about RATE MB/s of binary log on the sandbox's source (with
   ``--workload mixed``, the default, it also updates and deletes some of its rows) while
   ``drkit binlog stream`` follows it (heartbeat on, flush every 5 s). Every two seconds the
   archive's lag is sampled (now minus its newest archived event); at the end the streamer
   is stopped with SIGTERM and its peak RSS read (wait4). Also: whether the archive equals the
   source's files. ``--workload big-insert`` (``big-update``) writes instead one transaction
   of 100,000 rows: an INSERT (an UPDATE of every row, which the base then holds).
2. Replay: from a full backup taken before the writes, ``drkit restore --until latest``
   (its replay seconds, from its own report) against ``mysqlbinlog FILES | mysql`` of the same
   events (from the backup's snapshot position, as a user with SUPER: what the standard tools
   need), each into a copy of the base; the two take turns ``--repeat`` times and the ratio
   is of their medians. Also the target server's CPU seconds for each (drkit's replay: its
   restore --until less the restore of the base alone), which a shared machine's load
   changes far less than the wall clock. With ``--encrypt`` instead: the same events archived
   a second time without encryption (the sandbox encrypts the archive to its age recipients),
   and ``drkit restore --until latest`` from each archive taking turns: what age adds to the
   replay (the ratio of their medians; the target is at most 1.10).

Not a test: the figures go to the closing note and bench/out/binlog-WORKLOAD.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from drkit.config import load_settings
from drkit.mysql.connection import option_file
from drkit.ops.binlog_archive import status
from drkit.programs import find_program
from drkit.sandbox.estate import Sandbox
from drkit.sandbox.services import stat_fields

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT, SHELL, run  # noqa: E402
from restore_bench import super_user  # noqa: E402

ROW = 1000  # bytes of payload per row
WORKLOADS = ("insert", "mixed", "big-insert", "big-update")
BIG_ROWS, BIG_ROW = 100_000, 200  # the big workloads' one transaction: rows, payload bytes
TABLE = ("CREATE TABLE IF NOT EXISTS bench_binlog (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
         "payload VARBINARY(2000), at DATETIME(6))")


def drkit(*args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run([DRKIT, *args, "--json"], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"drkit {' '.join(args)}: {result.stdout[-400:]}{result.stderr[-400:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def writer(box: Sandbox, rate_mb: float, stop: threading.Event, written: list[int],
           workload: str) -> None:
    """About ``rate_mb`` MB/s of row events: 1 KB rows in batches, paced per second; with
    ``mixed``, also updates and deletes of some of them. The big workloads write one
    transaction of BIG_ROWS rows instead: an INSERT, or an UPDATE of the rows the base has."""
    connection = box.services["source"].root_connection()
    rows = int(rate_mb * 1e6 / (ROW + 60) / 10)  # ten batches a second
    with connection.cursor() as cursor:
        # Unqualified names in shop: mysqlbinlog --rewrite-db renames only the current
        # database, so the baseline could not follow "shop.bench_binlog".
        cursor.execute("USE shop")
        cursor.execute(TABLE)
        if workload == "big-insert":
            written[0] += cursor.execute(f"INSERT INTO bench_binlog (payload, at) SELECT "
                                         f"REPEAT('x', {BIG_ROW}), NOW(6) FROM "
                                         f"seq_1_to_{BIG_ROWS}") * BIG_ROW
        elif workload == "big-update":
            written[0] += cursor.execute("UPDATE bench_binlog SET at = NOW(6), payload = "
                                         "REPEAT('y', LENGTH(payload))") * 2 * BIG_ROW
        while not stop.is_set() and workload in ("insert", "mixed"):
            start = time.monotonic()
            cursor.execute(f"INSERT INTO bench_binlog (payload, at) SELECT "
                           f"REPEAT('x', {ROW}), NOW(6) FROM seq_1_to_{rows}")
            written[0] += rows * ROW
            if workload == "mixed":  # a quarter of the batch changed again, a tenth deleted
                cursor.execute("SELECT LAST_INSERT_ID()")
                first = cursor.fetchone()[0]
                written[0] += cursor.execute(
                    "UPDATE bench_binlog SET at = NOW(6) WHERE id >= %s AND MOD(id, 4) = 0",
                    (first,)) * 2 * ROW
                written[0] += cursor.execute(
                    "DELETE FROM bench_binlog WHERE id >= %s AND MOD(id, 10) = 1",
                    (first,)) * ROW
            time.sleep(max(0.0, 0.1 - (time.monotonic() - start)))
    connection.commit()
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate-mb", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workload", choices=WORKLOADS, default="mixed",
                        help="mixed: a quarter of the rows updated and a tenth deleted too; "
                        f"big-insert, big-update: one transaction of {BIG_ROWS:,} rows")
    parser.add_argument("--encrypt", action="store_true",
                        help="replay from an encrypted and a plain archive of the same events "
                        "instead of against mysqlbinlog")
    args = parser.parse_args()
    box = Sandbox(OUT / "sandbox-binlog")
    box.up()
    os.environ.update(DRKIT_CONFIG=str(box.config_path), DRKIT_STORAGE__PREFIX="bench/",
                      DRKIT_BINLOG__PREFIX=f"bench/binlogs-{int(time.time())}/",
                      DRKIT_BINLOG__HEARTBEAT="true", DRKIT_BINLOG__FLUSH_SECONDS="5",
                      DRKIT_BACKUP__STATE_DIR=str(OUT / "state-binlog"))
    settings = load_settings()
    _fresh_source(box, args.workload)
    _drop(box, "bench_pit", "bench_mysqlbinlog")  # what an interrupted earlier run left
    base = drkit("backup")["backup"]
    drkit("verify", base)
    drkit("binlog", "stream", "--once")  # the archive starts before the writes

    stream = _stream_under_load(box, settings, args)
    print(f"streaming: {stream}", flush=True)
    drkit("binlog", "stream", "--once")
    stream["ranges_mib"] = _archived_ranges(settings)
    replay = _replay_encrypted(box, settings, args) if args.encrypt else \
        _replay(box, settings, base, args)
    print(f"replay: {replay}", flush=True)
    (OUT / f"binlog-{args.workload}{'-encrypt' * args.encrypt}.json").write_text(json.dumps(
        {"stream": stream, "replay": replay, "lags": stream.pop("lags")}, indent=2))
    _forget_archive(settings)
    box.down()


def _fresh_source(box: Sandbox, workload: str) -> None:
    """No bench table and no binary log of earlier runs; for big-update, the rows it
    changes (in the base)."""
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS shop.bench_binlog")
        if workload == "big-update":
            cursor.execute("USE shop")
            cursor.execute(TABLE)
            cursor.execute(f"INSERT INTO bench_binlog (payload, at) SELECT "
                           f"REPEAT('x', {BIG_ROW}), NOW(6) FROM seq_1_to_{BIG_ROWS}")
            root.commit()
        cursor.execute("FLUSH BINARY LOGS")
        cursor.execute("SHOW BINARY LOGS")
        cursor.execute(f"PURGE BINARY LOGS TO '{cursor.fetchall()[-1][0]}'")  # earlier runs'


def _stream_under_load(box: Sandbox, settings, args: argparse.Namespace) -> dict:
    """1. The workload's writes while ``drkit binlog stream`` follows them."""
    stop, written = threading.Event(), [0]
    load = threading.Thread(target=writer, args=(box, args.rate_mb, stop, written,
                                                 args.workload))
    streamer = subprocess.Popen([DRKIT, "binlog", "stream"], env=os.environ,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    began = time.monotonic()
    load.start()
    lags = []
    while time.monotonic() - began < args.seconds:
        time.sleep(2)
        newest = status(settings)["newest_event_at"]
        if newest:
            lags.append((time.monotonic() - began,
                         (datetime.now(UTC) - datetime.fromisoformat(newest)).total_seconds()))
    stop.set()
    load.join()
    written_mb = written[0] / 1e6
    streamer.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(streamer.pid, 0)
    steady = [lag for at, lag in lags if at > 15]  # after the first flushes
    report = status(settings)
    return {"rate_mb_s": round(written_mb / args.seconds, 1),
            "archived_mb": round(report["archived_bytes"] / 1e6, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "lag_seconds_median": round(statistics.median(steady), 1) if steady else None,
            "lag_seconds_max": round(max(steady), 1) if steady else None,
            "flush_seconds": 5, "source_ahead_bytes_after_stop": report["source_ahead_bytes"],
            "lags": lags}


def _replay(box: Sandbox, settings, base: str, args: argparse.Namespace) -> dict:
    """2. drkit against mysqlbinlog | mysql, from the same base, taking turns (the disk's
    speed varies from minute to minute: each tool's median of --repeat runs)."""
    snapshot = _snapshot(settings, base)
    server = super_user(box, settings)
    logs = sorted(p for p in (box.directory / "source" / "data").glob("binlog.[0-9]*")
                  if p.name >= snapshot["file"])
    mysqlbinlog = shutil.which("mysqlbinlog") or shutil.which("mariadb-binlog")
    mysql = find_program("mysql")
    drkit_runs, baseline_runs, sums = [], [], []
    server_cpu: dict[str, list[float]] = {"drkit": [], "mysqlbinlog | mysql": []}
    for _ in range(args.repeat):
        _drop(box, "bench_pit", "bench_mysqlbinlog")
        clock, cpu = time.perf_counter(), _target_cpu(box)
        replay = drkit("restore", "--until", "latest", "--as", "bench_pit")["replay"]
        drkit_total = time.perf_counter() - clock
        until_cpu, cpu = _target_cpu(box) - cpu, _target_cpu(box)
        drkit_runs.append(replay["replay_seconds"])
        drkit("restore", base, "--as", "bench_mysqlbinlog")  # the same base for the baseline
        server_cpu["drkit"].append(round(until_cpu - (_target_cpu(box) - cpu), 2))
        cpu = _target_cpu(box)
        with option_file(server) as options:
            seconds, _ = run([*SHELL, f"{mysqlbinlog} --start-position={snapshot['position']} "
                              f"--rewrite-db='shop->bench_mysqlbinlog' --database=shop "
                              f"{' '.join(str(p) for p in logs)} | "
                              f"{mysql} --defaults-file={options}"], pass_fds=(options.fd,))
        baseline_runs.append(round(seconds, 2))
        server_cpu["mysqlbinlog | mysql"].append(round(_target_cpu(box) - cpu, 2))
        with contextlib.closing(box.services["target"].root_connection()) as root, \
                root.cursor() as cursor:
            cursor.execute("CHECKSUM TABLE bench_pit.bench_binlog, "
                           "bench_mysqlbinlog.bench_binlog")
            sums.append({row[1] for row in cursor.fetchall()})
        print(f"replay: drkit {drkit_runs[-1]} s, mysqlbinlog | mysql {seconds:.2f} s",
              flush=True)
    _drop(box, "bench_pit", "bench_mysqlbinlog")
    return {"workload": args.workload, "events": replay["events"], "rows": replay["rows"],
            "loaded_rows": replay.get("loaded_rows"),
            "drkit_replay_seconds": drkit_runs, "mysqlbinlog_mysql_seconds": baseline_runs,
            "drkit_restore_until_seconds_last": round(drkit_total, 1),
            "ratio": round(statistics.median(drkit_runs) / statistics.median(baseline_runs), 2),
            "target_cpu_seconds": server_cpu,
            "same_result": all(len(pair) == 1 for pair in sums)}


def _replay_encrypted(box: Sandbox, settings, args: argparse.Namespace) -> dict:
    """2. (--encrypt) The archive the run wrote (age, to the sandbox's recipients) against
    the same events archived as read, each replayed onto the same base, taking turns."""
    plain = {"DRKIT_BINLOG__PREFIX": settings.binlog.prefix.rstrip("/") + "-plain/",
             "DRKIT_ENCRYPTION__RECIPIENTS": "[]"}
    drkit("binlog", "stream", "--once", env=plain)  # from the same base's snapshot file on
    runs: dict[str, list[float]] = {"age": [], "plain": []}
    for _ in range(args.repeat):
        for name, env in (("plain", plain), ("age", {})):
            _drop(box, "bench_pit")
            replay = drkit("restore", "--until", "latest", "--as", "bench_pit", env=env)[
                "replay"]
            runs[name].append(replay["replay_seconds"])
            print(f"replay from the {name} archive: {runs[name][-1]} s", flush=True)
    _drop(box, "bench_pit")
    _forget_archive(settings, plain["DRKIT_BINLOG__PREFIX"])
    return {"workload": args.workload, "events": replay["events"], "rows": replay["rows"],
            "replay_seconds": runs,
            "age_ratio": round(statistics.median(runs["age"]) /
                               statistics.median(runs["plain"]), 3)}


def _archived_ranges(settings) -> dict[str, list[float]]:
    """Each archived file's committed ranges, in MiB as stored: what the replay reads (and
    checks) a range at a time."""
    from drkit.azure.blobstore import BackupStore
    from drkit.binlog.records import Archive, stored_span

    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    return {archived.file: [round((stored_span(r)[1] - stored_span(r)[0]) / 2**20, 2)
                            for r in archive.full(archived).ranges]
            for archived in archive.files()}


def _target_cpu(box: Sandbox) -> float:
    """The target server's CPU seconds so far (user and system)."""
    pid = int((box.directory / "target" / "mariadbd.pid").read_text())
    fields = stat_fields(pid) or []
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drop(box: Sandbox, *databases: str) -> None:
    with contextlib.closing(box.services["target"].root_connection()) as root, \
            root.cursor() as cursor:
        for database in databases:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")


def _forget_archive(settings, prefix: str | None = None) -> None:
    """This run's binlog archive (gigabytes in Azurite) goes with it: the next run archives
    under a prefix of its own, and the sandbox's disk would fill run by run."""
    from drkit.azure.blobstore import BackupStore

    prefix = prefix or settings.binlog.prefix
    store = BackupStore.from_settings(settings, prefix=prefix)
    for blob in store.container.list_blobs(name_starts_with=prefix):
        store.delete(blob.name)


def _snapshot(settings, name: str) -> dict:
    from drkit.azure.blobstore import BackupStore
    from drkit.azure.catalog import load_manifest

    return load_manifest(BackupStore.from_settings(settings), name).consistency[
        "binlog_snapshot"]


if __name__ == "__main__":
    main()
