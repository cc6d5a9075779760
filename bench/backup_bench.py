#!/usr/bin/env python3
"""Benchmark drkit's backup against the standard tools, in one run, as ratios.

    .venv/bin/python bench/backup_bench.py [--size 1GiB] [--repeat 3]
    .venv/bin/python bench/backup_bench.py --tables 5000 [--repeat 3]

Builds (once) a sandbox whose source holds about SIZE of dump SQL, then times, interleaved
and REPEAT times each (median reported):

- dump only:      mysqldump ... > /dev/null          (the database's read limit)
- seed pipeline:  mysqldump ... | gzip -6 > file, then upload of the file (azure-storage-blob)
- zstd pipe:      mysqldump ... | zstd -3 -T2 > file (reference)
- drkit gzip:     drkit backup --compression gzip    (dump, compress, upload at once)
- drkit gzip+age: the same, encrypted to the sandbox's two age recipients (its default)
- drkit zstd:     drkit backup --compression zstd

With ``--encryption``, only the two drkit gzip cases, alternating: what age adds to the
backup's wall time (the ratio of their medians; the target is at most 1.10).

With ``--tables N``, the cost that grows with the schema instead: a small sandbox whose
source also holds a database ``wide`` of N small tables, and ``drkit backup -d wide``
against ``mysqldump ... wide > /dev/null`` (dump only) and ``| gzip`` (seed pipeline).

All dumps use the same options (drkit's), so every row reads the same SQL. Peak RSS is the
largest single process of each pipeline (wait4's ru_maxrss). Not a test: figures go to the
closing note and bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drkit.config import load_settings
from drkit.mysql import dump
from drkit.mysql.connection import option_file
from drkit.sandbox.estate import Sandbox
from drkit.units import parse_size

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DRKIT = str(Path(sys.executable).parent / "drkit")

UPLOAD = """
import sys
from azure.storage.blob import BlobServiceClient
endpoint, account, key, container, name, path = sys.argv[1:7]
service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
with open(path, "rb") as data:
    service.get_blob_client(container, name).upload_blob(data, overwrite=True, max_concurrency=4)
"""


# A pipeline whose first command fails must fail the run, not look fast.
SHELL = ["bash", "-o", "pipefail", "-c"]


def run(command: list[str], env: dict[str, str] | None = None,
        stdout=subprocess.DEVNULL, pass_fds: tuple[int, ...] = ()) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, largest process) of one command."""
    # stderr to a file, not a pipe nobody reads while waiting: a chatty command would block.
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr,
                                   pass_fds=pass_fds)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{command[:3]} failed: {stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss


def wide_database(box: Sandbox, tables: int) -> None:
    """``wide``: ``tables`` small tables (two rows each), made once in one connection."""
    import contextlib

    with contextlib.closing(box.services["source"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA = 'wide'")
        if cursor.fetchone()[0] == tables:
            return
        cursor.execute("DROP DATABASE IF EXISTS wide")
        cursor.execute("CREATE DATABASE wide")
        for number in range(tables):
            cursor.execute(f"CREATE TABLE wide.t{number:05d} (id INT AUTO_INCREMENT PRIMARY "
                           "KEY, name VARCHAR(40) NOT NULL, at DATETIME, KEY (name))")
            cursor.execute(f"INSERT INTO wide.t{number:05d} (name, at) VALUES "
                           "('a', NOW()), ('b', NOW())")


def tables_bench(tables: int, repeat: int) -> None:
    box = Sandbox(OUT / "sandbox-small")
    print(f"sandbox: {box.directory}; database wide of {tables} tables", flush=True)
    box.up()
    wide_database(box, tables)
    settings = load_settings(box.config_path)
    files = OUT / "files"
    files.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DRKIT_CONFIG": str(box.config_path),
           "DRKIT_STORAGE__PREFIX": "bench-wide/", "DRKIT_BACKUP__STATE_DIR": str(OUT / "state")}
    from drkit.mysql.connection import source_server

    client = dump.dump_client()
    results: dict[str, list[float]] = {}
    with option_file(source_server(settings)) as options:
        dump_command = shlex.join(client.command(options, ["wide"]))
        fds = (options.fd,)
        cases = {
            "dump only": lambda: run([*SHELL, f"{dump_command} > /dev/null"], pass_fds=fds),
            "seed pipeline": lambda: run([*SHELL, f"{dump_command} | gzip -6 > "
                                                  f"{files / 'wide.sql.gz'}"], pass_fds=fds),
            "drkit gzip": lambda: run([DRKIT, "backup", "--json", "-d", "wide"], env,
                                      stdout=(files / "wide.json").open("w")),
        }
        for round_number in range(repeat):
            for name, case in cases.items():
                wall = case()[0]
                results.setdefault(name, []).append(wall)
                print(f"  round {round_number + 1} {name:<14} {wall:7.2f} s", flush=True)
                time.sleep(1.1)  # backup names have one-second resolution
    median = {name: statistics.median(runs) for name, runs in results.items()}
    print(f"\n{tables} tables; median of {repeat} runs\n")
    print(f"{'pipeline':<15}{'wall s':>8}{'x dump':>8}{'x seed':>8}")
    for name in results:
        print(f"{name:<15}{median[name]:8.2f}{median[name] / median['dump only']:8.2f}"
              f"{median[name] / median['seed pipeline']:8.2f}")
    # The bar is the ratio of the medians; each round's own ratio shows the machine's noise.
    rounds = [drkit / dumped for drkit, dumped in zip(results["drkit gzip"],
                                                      results["dump only"], strict=True)]
    print(f"\ndrkit / dump only, each round: {min(rounds):.2f}-{max(rounds):.2f} "
          f"(median {statistics.median(rounds):.2f})")
    (OUT / f"backup-tables-{tables}.json").write_text(json.dumps(
        {"tables": tables, "median_seconds": median, "runs": results,
         "round_ratios": rounds}, indent=2))


def plain_config(box: Sandbox) -> Path:
    """The sandbox's config without its encryption section (an identity without recipients
    is refused: it would make a plaintext backup by mistake)."""
    import yaml

    config = yaml.safe_load(box.config_path.read_text())
    config.pop("encryption", None)
    path = OUT / "plain.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def time_cases(cases: dict, repeat: int) -> dict[str, list[tuple[float, int]]]:
    """Each case's (wall seconds, peak RSS KiB) per round, the cases taking turns."""
    results: dict[str, list[tuple[float, int]]] = {}
    for round_number in range(repeat):
        for name, case in cases.items():
            steps = case()
            wall = sum(s[0] for s in steps)
            rss = max(s[1] for s in steps)
            results.setdefault(name, []).append((wall, rss))
            print(f"  round {round_number + 1} {name:<14} {wall:7.2f} s  "
                  f"{rss / 1024:6.0f} MiB", flush=True)
            time.sleep(1.1)  # backup names have one-second resolution
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tables", type=int, help="time a backup of N small tables instead")
    parser.add_argument("--encryption", action="store_true",
                        help="only drkit gzip with and without age, for their ratio")
    args = parser.parse_args()
    if args.tables:
        tables_bench(args.tables, args.repeat)
        return
    size = parse_size(args.size)

    box = Sandbox(OUT / f"sandbox-{args.size}", demo_size=size)
    print(f"sandbox: {box.directory} (building the source database if missing)", flush=True)
    box.up()
    settings = load_settings(box.config_path)
    secret = box.secret()
    client = dump.dump_client()
    files = OUT / "files"
    files.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DRKIT_CONFIG": str(box.config_path),
           "DRKIT_STORAGE__PREFIX": "bench/", "DRKIT_BACKUP__STATE_DIR": str(OUT / "state")}
    plain = {**env, "DRKIT_CONFIG": str(plain_config(box))}  # the sandbox encrypts; these not

    from drkit.mysql.connection import source_server

    server = source_server(settings)
    sizes: dict[str, int] = {}
    with option_file(server) as options:
        dump_command = shlex.join(client.command(options, settings.source.databases))
        fds = (options.fd,)
        seed_file = files / "seed.sql.gz"
        upload = [sys.executable, "-c", UPLOAD, settings.storage.endpoint,
                  secret["azure_storage_account"], secret["azure_storage_key"],
                  settings.storage.container, "bench/seed.sql.gz", str(seed_file)]
        cases = {
            "dump only": lambda: [run([*SHELL, f"{dump_command} > /dev/null"], pass_fds=fds)],
            "seed pipeline": lambda: [
                run([*SHELL, f"{dump_command} | gzip -6 > {seed_file}"], pass_fds=fds),
                run(upload)],
            "zstd pipe": lambda: [run([*SHELL, f"{dump_command} | zstd -q -3 -T2 > "
                                              f"{files / 'x.zst'}"], pass_fds=fds)],
            "drkit gzip": lambda: [run([DRKIT, "backup", "--json", "--compression", "gzip"],
                                       plain, stdout=(files / "gzip.json").open("w"))],
            "drkit gzip+age": lambda: [run([DRKIT, "backup", "--json", "--compression", "gzip"],
                                           env, stdout=(files / "gzip+age.json").open("w"))],
            "drkit zstd": lambda: [run([DRKIT, "backup", "--json", "--compression", "zstd"],
                                       plain, stdout=(files / "zstd.json").open("w"))],
        }
        if args.encryption:
            cases = {name: cases[name] for name in ("drkit gzip", "drkit gzip+age")}
        results = time_cases(cases, args.repeat)
    median = {name: statistics.median(w for w, _ in runs) for name, runs in results.items()}
    age_ratio = round(median["drkit gzip+age"] / median["drkit gzip"], 3)
    print(f"\nage encryption: gzip+age / gzip = {age_ratio} (medians of {args.repeat})")
    if args.encryption:
        (OUT / f"backup-encryption-{args.size}.json").write_text(json.dumps(
            {"size": args.size, "median_seconds": median, "age_ratio": age_ratio,
             "runs": results}, indent=2))
        return
    sizes["seed pipeline"] = seed_file.stat().st_size
    sizes["zstd pipe"] = (files / "x.zst").stat().st_size
    for codec in ("gzip", "gzip+age", "zstd"):
        summary = json.loads((files / f"{codec}.json").read_text())
        sizes[f"drkit {codec}"] = summary["compressed_bytes"]
        sizes["SQL"] = summary["sql_bytes"]

    peak = {name: max(r for _, r in runs) / 1024 for name, runs in results.items()}
    print(f"\nSQL per dump: {sizes['SQL'] / 2**30:.2f} GiB; median of {args.repeat} runs\n")
    print(f"{'pipeline':<15}{'wall s':>8}{'x seed':>8}{'x dump':>8}{'peak RSS MiB':>14}"
          f"{'output MB':>11}")
    for name in results:
        print(f"{name:<15}{median[name]:8.2f}{median[name] / median['seed pipeline']:8.2f}"
              f"{median[name] / median['dump only']:8.2f}{peak[name]:14.0f}"
              f"{sizes.get(name, 0) / 1e6:11.0f}")
    report = {"size": args.size, "sql_bytes": sizes["SQL"], "median_seconds": median,
              "age_ratio": age_ratio,
              "peak_rss_mib": peak, "output_bytes": sizes, "runs": results}
    (OUT / f"backup-{args.size}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
