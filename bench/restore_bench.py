#!/usr/bin/env python3
"""Benchmark drkit's restore against the seed's ``gunzip -c file | mysql``, in one run.

    .venv/bin/python bench/restore_bench.py [--size 1GiB] [--repeat 2]

Uses the sandbox that bench/backup_bench.py built (making a backup if it holds none),
downloads the newest gzip backup once for the baseline, then alternates:

- baseline:  gunzip -c backup.sql.gz | mysql        (into a freshly dropped database, once
             the target's time-zone tables are loaded: CALL mysql.az_load_timezone())
- drkit:     drkit restore BACKUP --as NAME --no-prove   (download + load, empty target)
- drkit age: the same for a backup encrypted to the sandbox's age recipients (its default),
             opened with the identity from its Key Vault stand-in

and times drkit's proof once on its own. Peak RSS is the largest process of each pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.config import load_settings
from drkit.mysql.connection import Server, option_file, target_server
from drkit.ops.backup import run_backup
from drkit.ops.restorecheck import prove_backup
from drkit.programs import find_program
from drkit.sandbox.estate import Sandbox
from drkit.units import parse_size

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup_bench import DRKIT, OUT, SHELL, run  # noqa: E402


def super_user(box: Sandbox, settings) -> Server:
    """The target as a user with SUPER, over the same TCP and TLS as drkit: what the
    standard tools' loads need (the admin has no SUPER, as on Flexible Server)."""
    password = secrets.token_urlsafe(18)
    with contextlib.closing(box.services["target"].root_connection()) as root, \
            root.cursor() as cursor:
        cursor.execute("CREATE OR REPLACE USER 'bench'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'bench'@'%'")
    return dataclasses.replace(target_server(settings), user="bench",
                               password=SecretStr(password))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    box = Sandbox(OUT / f"sandbox-{args.size}", demo_size=parse_size(args.size))
    box.up()
    os.environ.update(DRKIT_CONFIG=str(box.config_path), DRKIT_STORAGE__PREFIX="bench/",
                      DRKIT_BACKUP__STATE_DIR=str(OUT / "state"))
    settings = load_settings()
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    sealed = [e.name for e in entries if e.compression == "gzip" and e.name.endswith(".age")]
    sealed_name = sealed[-1] if sealed else run_backup(settings).name
    gzip_backups = [e.name for e in entries if e.compression == "gzip" and e.name not in sealed]
    # The baseline's backup: gzip the seed's way (no identity either: with one alone, a
    # backup refuses, as it would be plaintext by mistake).
    plain = settings.model_copy(update={"encryption": type(settings.encryption)()})
    name = gzip_backups[-1] if gzip_backups else run_backup(plain).name
    archive = OUT / "files" / "restore.sql.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with archive.open("wb") as handle:
        store.container.download_blob(name).readinto(handle)
    print(f"backup {name}: {archive.stat().st_size / 1e6:.0f} MB gzip", flush=True)

    # The seed's `mysql` load keeps mysqldump's DEFINERs, which the target's admin (no SUPER,
    # as on Flexible Server) may not give: the baseline loads as a user with SUPER, over
    # the same TCP and TLS as drkit.
    server = super_user(box, settings)
    mysql = find_program("mysql")
    results: dict[str, list[tuple[float, int]]] = {"gunzip | mysql": [], "drkit restore": [],
                                                   "drkit restore age": []}
    with option_file(server) as options:
        def sql(statement: str) -> None:
            run([mysql, f"--defaults-file={options}", "-e", statement], pass_fds=(options.fd,))

        # The target's time-zone tables start empty, as on Flexible Server, and the demo's
        # event uses Asia/Seoul: the seed's load fails on it unless they are loaded first,
        # with the procedure Azure documents (drkit's restore calls it where needed).
        sql("CALL mysql.az_load_timezone()")
        for round_number in range(args.repeat):
            sql("DROP DATABASE IF EXISTS shop")
            results["gunzip | mysql"].append(run(
                [*SHELL, f"gunzip -c {archive} | {mysql} --defaults-file={options}"],
                pass_fds=(options.fd,)))
            sql("DROP DATABASE IF EXISTS shop_bench")  # both start from an empty target
            results["drkit restore"].append(run(
                [DRKIT, "restore", name, "--as", "shop_bench", "--no-prove"], os.environ))
            sql("DROP DATABASE IF EXISTS shop_bench")
            results["drkit restore age"].append(run(
                [DRKIT, "restore", sealed_name, "--as", "shop_bench", "--no-prove"], os.environ))
            for pipeline, runs in results.items():
                print(f"  round {round_number + 1} {pipeline:<15} {runs[-1][0]:7.2f} s  "
                      f"{runs[-1][1] / 1024:6.0f} MiB", flush=True)
    clock = time.perf_counter()
    proof = prove_backup(settings, name, rename_to="shop_bench")
    proof_seconds = time.perf_counter() - clock

    median = {p: statistics.median(w for w, _ in runs) for p, runs in results.items()}
    peak = {p: max(r for _, r in runs) / 1024 for p, runs in results.items()}
    base = median["gunzip | mysql"]
    print(f"\nmedian of {args.repeat} runs\n{'pipeline':<16}{'wall s':>8}{'x baseline':>12}"
          f"{'peak RSS MiB':>14}")
    for pipeline in results:
        print(f"{pipeline:<16}{median[pipeline]:8.2f}{median[pipeline] / base:12.2f}"
              f"{peak[pipeline]:14.0f}")
    print(f"proof (re-dump + compare, {proof.rows_checked} rows): {proof_seconds:.1f} s, "
          f"{'passed' if proof.ok else 'FAILED'}")
    (OUT / f"restore-{args.size}.json").write_text(json.dumps(
        {"backup": name, "median_seconds": median, "peak_rss_mib": peak,
         "proof_seconds": proof_seconds, "proof_ok": proof.ok, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
