"""Runbooks through papermill against the sandbox: outcomes, exit codes, audit records, cron."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from croniter import croniter

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import CIPHERTEXT_OK, Catalog
from drkit.azure.verdicts import UNCHECKED
from drkit.config import load_settings
from drkit.errors import AuditRefusedError, BackupNotFoundError, ConfigError
from drkit.runbooks import runner
from drkit.runbooks.audit import AuditRecord
from drkit.runbooks.runbook import all_runbooks, load_runbook, runbook_dirs
from drkit.runbooks.runner import RunRequest, run_runbook
from tests import dbtools
from tests.conftest import repo_root
from tests.helpers import point_cli_at, run_cli


@pytest.fixture
def run_env(sandbox, tmp_path, monkeypatch):
    """drkit run pointed at the sandbox, with this test's own backups and state."""
    point_cli_at(sandbox, tmp_path, monkeypatch)
    monkeypatch.setenv("DRKIT_BACKUP__LOG_FILE", str(tmp_path / "backup.log"))
    return tmp_path


@pytest.fixture
def audit_store(settings):
    return BackupStore.from_settings(settings, container="dr-audit",
                                     prefix="")


def published(audit_store, run_id: str) -> dict[str, bytes]:
    return {b.name.rsplit("/", 1)[1]: audit_store.container.download_blob(b.name).readall()
            for b in audit_store.container.list_blobs() if f"/{run_id}/" in b.name}


def assert_no_secret(sandbox, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        for key, value in {**sandbox.secret(), **sandbox.azure_secrets()}.items():
            if key not in ("azure_storage_account", "azure_tenant_id", "azure_subscription_id"):
                assert value.encode() not in data, f"{key} found in {name}"


def test_plain_papermill_runs_the_backup_notebook(sandbox, run_env, tmp_path):
    output = tmp_path / "out.ipynb"
    result = subprocess.run(
        [sys.executable, "-m", "papermill", str(repo_root() / "notebooks" / "backup.ipynb"),
         str(output), "-k", "drkit", "-p", "config_path", str(sandbox.config_path)],
        capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr[-2000:]
    cells = json.loads(output.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("Backup finished" in "".join(o.get("text", "")) for o in outputs)


def test_run_nightly_backup_then_restore_drill_publish_clean_audit_records(
        sandbox, run_env, audit_store):
    backup = run_cli("run", "nightly-backup", "--json")
    assert backup.exit_code == 0, backup.stdout + backup.stderr
    outcome = json.loads(backup.stdout)
    files = published(audit_store, outcome["run_id"])
    assert set(files) == {"notebook.ipynb", "notebook.html", "run.json"}
    run = json.loads(files["run.json"])
    today = datetime.now(UTC)
    assert outcome["published"][0].startswith(f"nightly-backup/{today:%Y/%m/%d}/")
    assert run["status"] == "succeeded" and run["exit_code"] == 0
    assert run["environment"] == "sandbox" and run["parameters"] == {"verify": True}
    assert run["results"]["backup"].startswith(os.environ["DRKIT_STORAGE__PREFIX"])
    assert run["results"]["compressed_bytes"] > 0 and run["results"]["verified"] == "ok"
    assert set(run["versions"]) == {"drkit", "papermill", "python", "servers"}
    assert "mariadb" in run["versions"]["servers"]["source"]
    for name in ("notebook.ipynb", "notebook.html"):
        assert run["files"][name] == hashlib.sha256(files[name]).hexdigest()
    assert_no_secret(sandbox, files)
    assert run_cli("audit", "verify", outcome["run_id"]).exit_code == 0
    for verb in ("show", "verify"):  # a run, not a backup, is not found: the runbooks' code
        missing = run_cli("audit", verb, "nosuch")
        assert missing.exit_code == 43, missing.stderr
        assert "No audit record of run nosuch in container" in missing.stderr
    run_log = (run_env / "backup.log").read_text()  # the seed's run log, from the kernel too
    assert "[2/4] dump + compress + upload ... done" in run_log and "Backup finished" in run_log

    drill = run_cli("run", "restore-drill", "--json")
    assert drill.exit_code == 0, drill.stdout + drill.stderr
    drill_run = json.loads(published(audit_store, json.loads(drill.stdout)["run_id"])["run.json"])
    results = drill_run["results"]
    assert results["backup"] == run["results"]["backup"]
    assert results["proof"] == "passed" and results["rto_seconds"] > 0
    assert 0 <= results["rpo_seconds"] < 600
    assert drill_run["parameters"]["rpo_hours"] == 1  # the sandbox environment's objective
    leftovers = dbtools.query(sandbox, "target", "SELECT SCHEMA_NAME FROM information_schema."
                              "SCHEMATA WHERE SCHEMA_NAME LIKE 'drkit_drill_%'")
    assert leftovers == []
    # The record opens with its verdict and the figures beside their objectives.
    cells = json.loads(published(audit_store, drill_run["run_id"])["notebook.ipynb"])["cells"]
    tags = [c["metadata"].get("tags", []) for c in cells]
    verdict = "".join(cells[tags.index(["drkit-verdict"])]["source"])
    assert tags.index(["drkit-verdict"]) == tags.index(["injected-parameters"]) + 1
    assert "Verdict: restore-drill: PASSED" in verdict and "of 1 h: met" in verdict
    shown = json.dumps(cells)  # the proof, per table, as the drill showed it
    assert "Proof per table" in shown and "shop.orders" in shown and "digest_match" in shown
    assert drill_run["verdict"] == "PASSED"

    listing = json.loads(run_cli("audit", "list", "--json").stdout)["runs"]
    assert {r["run_id"] for r in listing[:2]} == {outcome["run_id"], drill_run["run_id"]}


def test_failed_step_becomes_drkit_exit_code_and_still_leaves_a_record(
        run_env, audit_store, monkeypatch):
    monkeypatch.setenv("DRKIT_SOURCE__PORT", "1")
    result = run_cli("run", "nightly-backup", "--json")
    assert result.exit_code == 10
    outcome = json.loads(result.stdout)
    # The cell as the record shows it: "In [N]" beside the cell with the error.
    count = re.search(r"failed at step '2\. Backup' \(In \[(\d+)\]\)", outcome["message"])
    assert count, outcome["message"]
    assert "Cannot connect to the source server 127.0.0.1:1" in outcome["message"]
    files = published(audit_store, outcome["run_id"])
    run = json.loads(files["run.json"])
    assert run["status"] == "failed" and run["exit_code"] == 10
    assert run["failed_cell"]["ename"] == "ServerUnreachableError"
    assert run["failed_cell"]["step"] == "2. Backup"
    assert run["failed_cell"]["execution_count"] == int(count.group(1))
    assert run["verdict"] == "FAILED"
    cells = json.loads(files["notebook.ipynb"])["cells"]
    (error,) = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]
                if o["output_type"] == "error"]
    # one sentence with its fix and exit code, not a traceback
    assert error["traceback"][0].startswith("ServerUnreachableError: Cannot connect to the "
                                            "source server 127.0.0.1:1")
    assert error["traceback"][1:] == ["(drkit exit code 10)"]
    verdict = next("".join(c["source"]) for c in cells
                   if "drkit-verdict" in c["metadata"].get("tags", []))
    assert "Verdict: nightly-backup: FAILED" in verdict and "(exit code 10)" in verdict


def test_wrong_secret_fails_and_keeps_the_record_locally(run_env, monkeypatch):
    monkeypatch.setenv("DRKIT_AWS__SECRET_ID", "backup-credentials-nowhere")
    # Only in AWS (the sandbox lists its Key Vault after it, which would publish anyway).
    monkeypatch.setenv("DRKIT_STORAGE__KEY", json.dumps("secret:azure_storage_key"))
    result = run_cli("run", "nightly-backup", "--json")
    assert result.exit_code == 4
    outcome = json.loads(result.stdout)
    assert "Secret backup-credentials-nowhere does not exist" in outcome["message"]
    assert outcome["published"] == []  # the storage key lives in the missing secret
    assert f"It is kept at {outcome['record']}" in outcome["message"]
    run = json.loads((Path(outcome["record"]) / "run.json").read_text())
    assert run["failed_cell"]["ename"] == "SecretError"


def _tiny_runbook(directory: Path, source: str, total_seconds: int = 600) -> str:
    notebook = directory / "tiny.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
                   "source": "config_path = None\nenvironment = None\nresults_path = None",
                   "outputs": [], "execution_count": None},
                  {"cell_type": "markdown", "id": "m", "metadata": {},
                   "source": "## The step"},
                  {"cell_type": "code", "id": "c", "metadata": {}, "source": source,
                   "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": "drkit", "display_name": "drkit",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    (directory / "tiny.yaml").write_text(textwrap.dedent(f"""\
        name: tiny
        notebook: {notebook}
        timeouts: {{cell_seconds: 600, total_seconds: {total_seconds}}}
        environments: {{sandbox: {{schedule: "* * * * *"}}}}
        """))
    return "tiny"


def test_record_with_a_secret_in_an_output_is_refused(sandbox, run_env, audit_store,
                                                      monkeypatch):
    monkeypatch.setenv("LEAKED", sandbox.azure_secrets()["azure_storage_key"])
    name = _tiny_runbook(run_env, "import os\nprint(os.environ['LEAKED'])")
    settings = load_settings()
    outcome = run_runbook(settings, sandbox.config_path,
                          RunRequest(load_runbook(name, [run_env])))
    assert outcome.exit_code == AuditRefusedError.exit_code
    assert "contains an Azure storage account key" in outcome.message
    assert "a value of this run's secrets" in outcome.message
    assert outcome.published == [] and published(audit_store, outcome.run_id) == {}


def test_secret_shaped_strings_are_refused_without_knowing_them(tmp_path):
    record = AuditRecord(tmp_path, "x/")
    (tmp_path / "run.json").write_text(json.dumps(
        {"note": "https://acct.blob.core.windows.net/c?sv=2024-01-01&sig=abcdEFGH1234%2Bxyz%3D"}))
    with pytest.raises(AuditRefusedError, match="a SAS token"):
        record.check_for_secrets([])


def test_kernel_failure_has_its_own_code_and_a_record(sandbox, run_env, audit_store,
                                                     monkeypatch):
    real = runner.kernel_environment
    monkeypatch.setattr(runner, "kernel_environment",
                        lambda **given: real(python="/nonexistent/bin/python3", **given))
    outcome = run_runbook(load_settings(), sandbox.config_path,
                          RunRequest(load_runbook("nightly-backup")))
    assert outcome.exit_code == 41
    assert "No such file or directory: '/nonexistent/bin/python3'" in outcome.message
    run = json.loads(published(audit_store, outcome.run_id)["run.json"])
    assert run["status"] == "failed" and run["exit_code"] == 41


def test_total_timeout_stops_the_run_and_keeps_a_record(sandbox, run_env, audit_store):
    name = _tiny_runbook(run_env, "import time\ntime.sleep(60)", total_seconds=8)
    outcome = run_runbook(load_settings(), sandbox.config_path,
                          RunRequest(load_runbook(name, [run_env])))
    assert outcome.exit_code == 41
    assert "exceeded the runbook's total timeout" in outcome.message
    assert "run.json" in published(audit_store, outcome.run_id)


@pytest.fixture
def fake_crontab(fake_crontab: Path) -> Path:
    """The fake `crontab` (tests/conftest.py) holding a line of someone else's."""
    fake_crontab.write_text("MAILTO=ops@example.com\n17 * * * * /usr/bin/true  # not ours\n")
    return fake_crontab


def test_schedule_show_install_remove(run_env, fake_crontab, monkeypatch):
    monkeypatch.setenv("DRKIT_SIDE", "both")  # the seed's one host runs every runbook
    shown = run_cli("schedule", "show", "--env", "prod")
    assert shown.exit_code == 0
    assert run_cli("schedule", "install", "--env", "prod").exit_code == 0
    assert run_cli("schedule", "install", "--env", "prod").exit_code == 0  # replaces, no dupes
    table = fake_crontab.read_text()
    assert shown.stdout in table and table.count("# BEGIN drkit prod") == 1
    assert table.startswith("MAILTO=ops@example.com\n17 * * * * /usr/bin/true")
    entries = [line for line in shown.stdout.splitlines()
               if not line.startswith(("#", "CRON_TZ="))]
    schedules = {line.split(" run ")[1].split()[0]: " ".join(line.split()[:5])
                 for line in entries}
    assert schedules == {"nightly-backup": "0 3 * * *", "verify-backup": "30 3 * * *",
                         "restore-drill": "0 5 * * 1"}
    for schedule in schedules.values():
        assert croniter.is_valid(schedule)
    assert all(" /" in line and "flock -n" in line and "timeout -k 60" in line
               for line in entries)
    assert run_cli("schedule", "remove", "--env", "prod").exit_code == 0
    assert "drkit" not in fake_crontab.read_text()
    assert "17 * * * * /usr/bin/true" in fake_crontab.read_text()


def test_seed_schedules_are_the_defaults():
    backup = load_runbook("nightly-backup")
    assert {env: run.schedule for env, run in backup.environments.items()} == {
        "sandbox": "*/5 * * * *", "test": "*/5 * * * *", "dev": "0 */6 * * *",
        "prod": "0 3 * * *", "prod-kst": "0 18 * * *"}
    assert {r.name for r in all_runbooks()} >= {"nightly-backup", "restore-drill"}


def test_cron_command_runs_and_overlapping_runs_are_skipped(sandbox, run_env, fake_crontab,
                                                            audit_store, monkeypatch):
    """The backup host's entry (a SAS without delete, no identity) as cron runs it: the
    nightly passes, reading back the ciphertext only, so the backup is not called verified."""
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.backup_config_path))
    line = next(line for line in run_cli("schedule", "show", "--env", "test").stdout
                .splitlines() if " run nightly-backup " in line)
    command = " ".join(line.split()[5:]).replace("\\%", "%")  # as cron hands it to sh
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRKIT_")}
    clean["DRKIT_STORAGE__PREFIX"] = os.environ["DRKIT_STORAGE__PREFIX"]
    clean["DRKIT_BACKUP__STATE_DIR"] = os.environ["DRKIT_BACKUP__STATE_DIR"]
    clean["PATH"] = "/usr/bin:/bin"  # cron's
    done = subprocess.run(["/bin/sh", "-c", command], env=clean)
    assert done.returncode == 0
    log = run_env / "state" / "logs" / "nightly-backup-test.log"
    assert "succeeded" in log.read_text() and "checked as ciphertext: size and sha256; the " \
        "full verify runs on the Azure side" in log.read_text()
    assert "(cell " not in log.read_text()  # no terminal: no live step line (the pty test's)
    catalog = Catalog(BackupStore.from_settings(load_settings()))
    assert [e.verified for e in catalog.entries()] == [CIPHERTEXT_OK]
    with pytest.raises(BackupNotFoundError):
        catalog.select("latest-verified")

    lock = run_env / "state" / "locks" / "runbook-nightly-backup-test.lock"
    # Holds the lock until its input closes; says so once it holds it.
    holder = subprocess.Popen(["flock", str(lock), "-c", "echo held; read -r _"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        skipped = subprocess.run(["/bin/sh", "-c", command], env=clean)
        assert skipped.returncode == 0
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert "nightly-backup skipped, the previous run still holds" in log.read_text()
    assert log.read_text().count('"event": "run.finished"') == 1  # the second never started

    # The Azure side's daily verify, as its cron line runs it, makes the backup verified.
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    line = next(line for line in run_cli("schedule", "show", "--env", "test").stdout
                .splitlines() if " run verify-backup " in line)
    verified = subprocess.run(["/bin/sh", "-c", " ".join(line.split()[5:]).replace("\\%", "%")],
                              env=clean)
    log = run_env / "state" / "logs" / "verify-backup-test.log"
    assert verified.returncode == 0, log.read_text()[-3000:]
    assert "verify-backup: PASSED" in log.read_text()
    azure_side = Catalog(BackupStore.from_settings(load_settings()))
    assert azure_side.select("latest-verified").name == azure_side.entries()[-1].name
    # The backup host holds no identity to check the Azure side's signature.
    assert [e.verified for e in catalog.entries()] == [UNCHECKED]


def test_committed_notebooks_are_clean_and_pass_ruff():
    for path in (repo_root() / "notebooks").glob("*.ipynb"):
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path
        tagged = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, path
    ruff = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check",
                           str(repo_root() / "notebooks")], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


def test_audit_report_renders_verdicts_objectives_and_links_in_a_browser(run_env, tmp_path):
    """Three runs, the last a drill that breaches its RTO (44), in the report and a browser."""
    backup = run_cli("run", "nightly-backup")
    assert backup.exit_code == 0
    lines = backup.stdout.splitlines()  # the summary a person or cron mail reads
    assert lines[0] == "nightly-backup: PASSED" and lines[1].startswith("backup ")
    assert lines[-2].startswith("record: ") and lines[-1].startswith("published: http")
    ids = [lines[-1].rsplit("/", 2)[-2]]
    for args, code in ((["restore-drill"], 0),
                       (["restore-drill", "-p", "rto_minutes=0.00001"], 44)):
        result = run_cli("run", *args, "--json")
        assert result.exit_code == code
        ids.append(json.loads(result.stdout)["run_id"])
    assert "RTO: the restore took" in json.loads(result.stdout)["message"]
    output = tmp_path / "report.html"
    assert run_cli("audit", "report", "--output", str(output)).exit_code == 0
    report = json.loads(run_cli("audit", "report", "--format", "json").stdout)
    mine = {r["run_id"]: r for r in report["runs"] if r["run_id"] in ids}  # the container
    assert [mine[i]["verdict"] for i in ids] == ["PASSED", "PASSED", "FAILED"]  # is shared
    assert report["failed"] >= 1
    breached = mine[ids[2]]
    assert any(f.startswith("RTO") and f.endswith("BREACHED") for f in breached["figures"])
    assert breached["record_url"].endswith(f"/{breached['run_id']}/notebook.html")
    # A real browser at 1280 px: the page lays out without sideways scrolling, and each
    # chart has its series line, a dot per drill and the objective's dashed line.
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "install.sh installs chromium"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--window-size=1280,900", "--dump-dom", output.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    width = int(re.search(r'data-scroll-width="(\d+)"', dom).group(1))
    assert width <= 1280
    assert dom.count('class="objective"') == 2 and dom.count('class="series"') == 2
    drills = sum(r["runbook"] == "restore-drill" and r["rto_seconds"] is not None
                 for r in report["runs"])
    assert dom.count("<circle") == 2 * drills  # a dot per drill, on each of two charts
    assert f'href="{breached["record_url"]}"' in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1280,900", f"--screenshot={shot}", output.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000  # something was drawn


def test_unknown_runbook_or_environment_is_named(run_env):
    missing = run_cli("run", "nightly-bakup")
    assert missing.exit_code == 43
    assert "There is no runbook 'nightly-bakup'" in missing.stderr
    assert "nightly-backup" in missing.stderr  # the known ones are listed
    wrong_env = run_cli("run", "nightly-backup", "--env", "staging")
    assert wrong_env.exit_code == 43
    assert "has no environment 'staging'" in wrong_env.stderr


def _write_runbook(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


@pytest.mark.parametrize(("text", "message"), [
    ("name: [unclosed\n", "is not valid YAML at line"),
    ("", "must hold a mapping"),
    ("- a\n- b\n", "must hold a mapping"),
    ("name: mine\nnotebook: backup.ipynb\nenvironments: {}\n",
     "environments: Dictionary should have at least 1 item"),
    ("name: mine\nnotebook: backup.ipynb\nenvironments: {prod: {schedule: 'not a cron'}}\n",
     "'not a cron' is not a cron schedule"),
    ("name: other\nnotebook: backup.ipynb\nenvironments: {prod: {}}\n", "calls itself 'other'"),
    ("name: mine\nnotebook: nowhere.ipynb\nenvironments: {prod: {}}\n", "names the notebook"),
])
def test_a_bad_runbook_file_is_a_config_error_naming_it(tmp_path, text, message):
    _write_runbook(tmp_path, "mine", text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_runbook("mine", [tmp_path])
    assert str(tmp_path / "mine.yaml") in str(caught.value) or "mine" in str(caught.value)


def test_own_runbooks_come_first_and_drkits_stay(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    _write_runbook(folder, "nightly-backup", "name: nightly-backup\nnotebook: backup.ipynb\n"
                   "environments: {prod: {schedule: '30 1 * * *'}}\n")
    _write_runbook(folder, "extra", "name: extra\nnotebook: backup.ipynb\n"
                   "environments: {prod: {schedule: '0 2 * * *'}}\n")
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\nrunbooks: mine\n")
    settings = load_settings(config)  # relative to the config file, not the cwd
    assert runbook_dirs(settings)[0] == folder
    runbooks = {r.name: r for r in all_runbooks(runbook_dirs(settings))}
    assert {"nightly-backup", "extra", "restore-drill", "failover"} <= set(runbooks)
    assert runbooks["nightly-backup"].environments["prod"].schedule == "30 1 * * *"
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    lines = run_cli("schedule", "show", "--env", "prod").stdout.splitlines()
    assert any(" run extra " in line and f"DRKIT_RUNBOOKS={folder}" in line for line in lines)


def test_a_missing_runbook_folder_is_named(tmp_path, monkeypatch):
    config = tmp_path / "drkit.yaml"
    config.write_text("source: {host: db, databases: [shop]}\n")
    monkeypatch.setenv("DRKIT_CONFIG", str(config))
    monkeypatch.setenv("DRKIT_RUNBOOKS", str(tmp_path / "nope"))
    result = run_cli("schedule", "show", "--env", "prod")
    assert result.exit_code == 3
    assert f"The runbook folder {tmp_path / 'nope'}" in result.stderr


def test_at_a_terminal_drkit_run_names_each_step_as_it_runs(sandbox, run_env):
    """On a terminal (a real pty), the live line names the notebook's heading and cell; the
    same run under cron (no terminal) prints no such line: its log, in
    test_cron_command_runs_and_overlapping_runs_are_skipped."""
    import os
    import pty
    import re
    import subprocess
    import sys

    drkit = [str(Path(sys.executable).parent / "drkit"), "run", "nightly-backup"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(drkit, stdin=follower, stdout=follower, stderr=follower,
                               env=dict(os.environ, COLUMNS="160"))
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the pty closes when the run ends
            break
        if not data:
            break
        seen += data
    assert process.wait(timeout=120) == 0, seen[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert re.search(r"nightly-backup \(\w+\): \S.* \(cell \d+ of \d+\)", text), text[-2000:]
    assert "nightly-backup: PASSED" in text
