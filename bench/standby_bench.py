#!/usr/bin/env python3
"""Benchmark the standby: how far it follows behind the archive under the binlog bench's
write rate, and the RTO of a failover to it for a small and a large database.

    .venv/bin/python bench/standby_bench.py [--rate-mb 20] [--seconds 60]
    .venv/bin/python bench/standby_bench.py --sizes-mb 100,2000 --writes-seconds 300

1. Follow lag: a standby of the sandbox's shop; ``drkit binlog stream`` (flush every 5 s,
   heartbeat on) and ``drkit standby follow`` (poll every second) follow while the binlog
   bench's writer produces about RATE MB/s of binary log (its ``mixed`` workload). Every two
   seconds: the archive-to-standby lag (``standby status``'s ``lag_seconds``: source seconds
   between the archive's newest event and the standby's last transaction) and the
   end-to-end lag (now minus the standby's last transaction). Steady state: after 15 s.
   From the follower's log: the MB/s its catch-ups applied while they ran, and the share of
   the time they ran (the rest it waited for the archive to grow).
2. RTO: for each size, shop with a table of about that many MB more (``bench_bulk``, 1 KB
   rows), a base, a standby from it; then WRITES seconds of writes (the binlog bench's
   ``mixed`` at WRITES_RATE MB/s, and updates of random ``bench_bulk`` rows) while the
   standby does not follow; then ``binlog stream --once`` and what a failover to the
   standby does (:func:`drkit.ops.failover_standby.catch_up_and_prove`: the catch-up to the
   archive's newest event and the heartbeat's proof of the time reached), timed: the RTO;
   its parts (the catch-up, and the rest: the follower's lock, the archive's listing, the
   proof), drkit's CPU seconds, and what the target did meanwhile (pages it read from disk,
   waits for a free page, its CPU seconds), which say whether the time went to drkit or
   to a server reading the rows the writes touched.

Not a test: the figures go to the closing note and bench/out/standby.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from drkit.config import load_settings
from drkit.ops.standby import standby_status
from drkit.sandbox.estate import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT  # noqa: E402
from binlog_bench import _forget_archive, drkit, writer  # noqa: E402

BULK_ROW = 1000  # bytes of payload per bench_bulk row
STEADY_AFTER = 15  # seconds: the first flushes and catch-ups are not steady state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate-mb", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sizes-mb", default="100,2000", help="none: no RTO part")
    parser.add_argument("--writes-seconds", type=float, default=300)
    parser.add_argument("--writes-rate-mb", type=float, default=1)
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args()
    box = Sandbox(OUT / "sandbox-standby")
    box.up()
    os.environ.update(DRKIT_CONFIG=str(box.config_path), DRKIT_BINLOG__HEARTBEAT="true",
                      DRKIT_BINLOG__FLUSH_SECONDS="5", DRKIT_STANDBY__POLL_SECONDS="1",
                      DRKIT_BACKUP__STATE_DIR=str(OUT / "state-standby"))
    report: dict = {}
    if not args.skip_lag:
        report["follow"] = _follow_lag(box, args)
        print(f"follow: { {k: v for k, v in report['follow'].items() if k != 'lags'} }",
              flush=True)
    report["rto"] = []
    for size in (int(s) for s in args.sizes_mb.split(",") if s.isdigit()):
        report["rto"].append(_rto(box, size, args))
        print(f"rto: {report['rto'][-1]}", flush=True)
    (OUT / f"standby-{int(time.time())}.json").write_text(json.dumps(report, indent=2))
    box.down()


def _fresh(box: Sandbox, run: str) -> None:
    """No standby, no bench tables, no binary log of earlier runs; prefixes of this run's."""
    with contextlib.closing(box.services["target"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS sb")
        cursor.execute("DROP DATABASE IF EXISTS drkit_standby")
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS shop.bench_binlog")
        cursor.execute("DROP TABLE IF EXISTS shop.bench_bulk")
        cursor.execute("FLUSH BINARY LOGS")
        cursor.execute("SHOW BINARY LOGS")
        cursor.execute(f"PURGE BINARY LOGS TO '{cursor.fetchall()[-1][0]}'")
    os.environ.update(DRKIT_STORAGE__PREFIX=f"bench-{run}/",
                      DRKIT_BINLOG__PREFIX=f"bench-{run}/binlogs/")


def _standby() -> float:
    """A base of shop as it is, verified, the archive from it, and a standby: its seconds."""
    base = drkit("backup")["backup"]
    drkit("verify", base)
    drkit("binlog", "stream", "--once")
    clock = time.monotonic()
    drkit("standby", "init", "--database", "shop", "--as", "sb")
    return round(time.monotonic() - clock, 1)


def _follow_lag(box: Sandbox, args: argparse.Namespace) -> dict:
    """1. The standby following the archive that follows the writes."""
    _fresh(box, f"lag-{int(time.time())}")
    _standby()
    settings = load_settings()
    start = standby_status(settings)
    streamer = subprocess.Popen([DRKIT, "binlog", "stream"], env=os.environ,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower_log = (OUT / "standby-follower.log").open("w")  # its end says why it stopped
    follower = subprocess.Popen([DRKIT, "standby", "follow"], env=os.environ,
                                stdout=subprocess.DEVNULL, stderr=follower_log)
    stop, written = threading.Event(), [0]
    load = threading.Thread(target=writer, args=(box, args.rate_mb, stop, written, "mixed"))
    began = time.monotonic()
    load.start()
    lags = []  # (at, archive-to-standby, end-to-end)
    while time.monotonic() - began < args.seconds:
        time.sleep(2)
        status = standby_status(settings)
        if status["last_event_at"]:
            lags.append((round(time.monotonic() - began, 1), status["lag_seconds"], round((
                datetime.now(UTC) - datetime.fromisoformat(status["last_event_at"]))
                .total_seconds(), 1)))
    stop.set()
    load.join()
    clock = time.monotonic()
    while standby_status(settings)["lag_bytes"] and time.monotonic() - clock < 600 and \
            follower.poll() is None:
        time.sleep(1)
    drained = round(time.monotonic() - clock, 1)
    died = follower.poll()  # None: it was following to the end
    for process in (follower, streamer):
        process.send_signal(signal.SIGTERM)
        process.wait()
    steady = [lag for at, lag, _ in lags if at > STEADY_AFTER and lag is not None]
    ends = [end for at, _, end in lags if at > STEADY_AFTER]
    rates = _follower_rates(settings, (start["file"], start["offset"]),
                            OUT / "standby-follower.log")
    _forget_archive(settings)
    return {"rate_mb_s": round(written[0] / 1e6 / args.seconds, 1), "flush_seconds": 5,
            "poll_seconds": 1,
            "archive_to_standby_lag_seconds_median": _median(steady),
            "archive_to_standby_lag_seconds_max": max(steady, default=None),
            "end_to_end_lag_seconds_median": _median(ends),
            "end_to_end_lag_seconds_max": max(ends, default=None),
            "drained_after_writes_seconds": drained, "follower_exit_code": died,
            **rates, "lags": lags}


def _follower_rates(settings, start: tuple[str, int], log: Path) -> dict:
    """From the follower's log: MB/s while its catch-ups ran, and the share of the time
    they ran."""
    from drkit.binlog.records import file_order
    from drkit.ops.standby import archive_of

    sizes = {f.file: f.size for f in archive_of(settings).files()}
    def offset(at: tuple[str, int]) -> int:  # bytes from the start of the standby's file
        return sum(size for file, size in sizes.items()
                   if file_order(start[0]) <= file_order(file) < file_order(at[0])) + at[1]
    caught_up = [event for line in log.read_text().splitlines() if line.startswith("{")
                 and (event := json.loads(line))["event"] == "standby.caught_up"]
    applied = offset((caught_up[-1]["file"], caught_up[-1]["offset"])) - start[1] \
        if caught_up else 0
    running = sum(event["catch_up_seconds"] for event in caught_up)
    began = datetime.fromisoformat(caught_up[0]["started_at"]) if caught_up else None
    ended = datetime.fromisoformat(caught_up[-1]["ts"].replace("Z", "+00:00")) \
        if caught_up else None
    return {"follower_mb_s_while_applying": round(applied / 1e6 / max(running, 1e-3), 1),
            "follower_busy_share": round(running / max((ended - began).total_seconds(), 1e-3), 2)
            if began else None}


def _rto(box: Sandbox, size_mb: int, args: argparse.Namespace) -> dict:
    """2. A failover's catch-up after the same writes, for a database of ``size_mb``."""
    from drkit.mysql.connection import target_server
    from drkit.ops.failover_standby import catch_up_and_prove

    _fresh(box, f"rto{size_mb}-{int(time.time())}")
    rows = _fill(box, size_mb)
    init_seconds = _standby()
    stop, written = threading.Event(), [0]
    load = threading.Thread(target=writer, args=(box, args.writes_rate_mb, stop, written,
                                                 "mixed"))
    bulk = threading.Thread(target=_touch_bulk, args=(box, rows, stop))
    load.start()
    bulk.start()
    time.sleep(args.writes_seconds)  # the writes since the last catch-up: a length of time
    stop.set()
    load.join()
    bulk.join()
    drkit("binlog", "stream", "--once")  # the archive holds them, and a beat after them
    settings = load_settings()
    behind = standby_status(settings)["lag_bytes"]
    before, drkit_cpu = _innodb(box), time.process_time()
    clock = time.monotonic()
    promotion = catch_up_and_prove(settings, target_server(settings))
    rto = round(time.monotonic() - clock, 1)
    drkit_cpu = round(time.process_time() - drkit_cpu, 1)  # its threads: the replay's too
    server = {name: round(value - before[name], 1) for name, value in _innodb(box).items()}
    caught_up = promotion.caught_up
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA = 'shop'")
        database_mb = round(int(cursor.fetchone()[0]) / 1e6)
    _forget_archive(settings)
    return {"size_mb": size_mb, "database_mb": database_mb, "init_seconds": init_seconds,
            "writes_seconds": args.writes_seconds, "written_mb": round(written[0] / 1e6, 1),
            "archive_behind_mb": round(behind / 1e6, 1),
            "transactions": caught_up.transactions, "rows": caught_up.rows,
            "catch_up_seconds": caught_up.catch_up_seconds,
            "proof_seconds": round(rto - caught_up.catch_up_seconds, 1), "rto_seconds": rto,
            "reached": f"{promotion.reached.isoformat()} ({promotion.proven_by})",
            "drkit_cpu_seconds": drkit_cpu, "target_buffer_pool_mb": _buffer_pool_mb(box),
            "target_during_catch_up": server}


def _innodb(box: Sandbox) -> dict[str, float]:
    """The target's counters that tell where a catch-up's time goes: pages it read from disk
    (a row not in the buffer pool), waits for a free page (dirty pages flushed first), CPU
    seconds of its mariadbd."""
    with contextlib.closing(box.services["target"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_reads',"
                       " 'Innodb_buffer_pool_wait_free', 'Innodb_buffer_pool_pages_flushed')")
        counters = {name.lower(): int(value) for name, value in cursor.fetchall()}
    pid = int((box.services["target"].home / "mariadbd.pid").read_text())
    times = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    return {**counters, "cpu_seconds": sum(map(int, times)) / os.sysconf("SC_CLK_TCK")}


def _buffer_pool_mb(box: Sandbox) -> int:
    with contextlib.closing(box.services["target"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("SELECT @@innodb_buffer_pool_size")
        return int(cursor.fetchone()[0]) // 2**20


def _fill(box: Sandbox, size_mb: int) -> int:
    """shop.bench_bulk of about ``size_mb`` MB; its rows."""
    rows = size_mb * 1_000_000 // BULK_ROW
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("USE shop")  # where the sequence engine's seq_1_to_N are
        cursor.execute("CREATE TABLE bench_bulk (id BIGINT PRIMARY KEY, payload "
                       "VARBINARY(2000), at DATETIME(6))")
        for first in range(0, rows, 100_000):
            cursor.execute(f"INSERT INTO bench_bulk SELECT seq + {first}, "
                           f"REPEAT('b', {BULK_ROW}), NOW(6) FROM seq_1_to_"
                           f"{min(100_000, rows - first)}")
            root.commit()
    return rows


def _touch_bulk(box: Sandbox, rows: int, stop: threading.Event) -> None:
    """Updates of random bench_bulk rows (a large database's writes land anywhere in it),
    fifty a round, ten rounds a second."""
    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        while not stop.is_set():
            ids = ", ".join(str(random.randint(1, rows)) for _ in range(50))
            cursor.execute(f"UPDATE shop.bench_bulk SET at = NOW(6) WHERE id IN ({ids})")
            root.commit()
            time.sleep(0.1)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


if __name__ == "__main__":
    main()
