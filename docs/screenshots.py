#!/usr/bin/env python3
"""Make the README's screenshots from real runs on a sandbox of their own.

    .venv/bin/python docs/screenshots.py [--dir docs/out/sandbox]

Starts (or reuses) a sandbox, takes and verifies a backup, runs three restore drills that pass
and one that fails on a drkit error (a backup that does not exist), builds the audit report,
and opens the failover notebook of a new incident in JupyterLab after answering its first
gate wrongly. Then, the region still gone, a person's whole failover: `drkit failover open`'s
terminal (its three lines, two Ctrl-C), and the notebook run to its end by hand (the first
gate answered wrongly, then right) and published. Each page is photographed by headless
Chromium at 1280 px into docs/*.png.
Needs what install.sh installs (chromium, the sandbox and lab extras).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager

from drkit.config import load_settings
from drkit.runbooks.incident import lab, new_incident, new_token
from drkit.runbooks.runbook import load_runbook, runbook_dirs
from drkit.runbooks.runner import KERNEL, kernel_environment
from drkit.sandbox.estate import Sandbox
from drkit.sandbox.services import free_port

DOCS = Path(__file__).resolve().parent
DRKIT = str(Path(sys.executable).parent / "drkit")
WIDTH, HEIGHT = 1280, 900


def drkit(*args: str, ok: bool = True) -> dict:
    """Run the CLI with --json; its result."""
    result = subprocess.run([DRKIT, *args, "--json"], capture_output=True, text=True)
    if ok and result.returncode != 0:
        raise SystemExit(f"drkit {' '.join(args)} failed: {result.stdout[-500:]}"
                         f"{result.stderr[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def screenshot(url: str, png: Path, wait_ms: int = 8000, height: int = HEIGHT) -> None:
    """Chromium's own screenshot. The URL is handed over in a private file, never in the
    arguments, because a JupyterLab URL carries its token."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("chromium is missing: run install.sh (Debian package chromium).")
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "open.html"
        page.write_text(f"<script>location.replace({json.dumps(url)})</script>")
        page.chmod(0o600)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
                        f"--user-data-dir={scratch}/profile",
                        f"--window-size={WIDTH},{height}", f"--virtual-time-budget={wait_ms}",
                        f"--screenshot={png}", page.as_uri()],
                       check=True, capture_output=True, timeout=600)
    print(f"wrote {png.relative_to(DOCS.parent)} ({png.stat().st_size // 1024} KiB)")


def answer_the_first_gate_wrongly(notebook: Path) -> None:
    """Run the failover notebook's cells in drkit's kernel up to its first gate, type a wrong
    answer there, and keep the outputs in the notebook, as a person's JupyterLab would."""
    book = nbformat.read(notebook, as_version=4)
    with kernel_environment() as environment:
        # The kernelspec is looked up in this process's own Jupyter path.
        os.environ["JUPYTER_PATH"] = environment["JUPYTER_PATH"]
        manager = KernelManager(kernel_name=KERNEL)
        manager.start_kernel(env=environment)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        try:
            for cell in [c for c in book.cells if c.cell_type == "code"]:
                cell.outputs = []
                gate = "failover.decide(" in cell.source

                def keep(message, cell=cell) -> None:
                    if message["msg_type"] in ("stream", "display_data", "execute_result",
                                               "error"):
                        cell.outputs.append(nbformat.v4.output_from_msg(message))

                reply = client.execute_interactive(
                    cell.source, allow_stdin=gate, output_hook=keep, timeout=120,
                    stdin_hook=lambda message: client.input("yes"))
                cell.execution_count = reply["content"].get("execution_count")
                if gate:
                    break
            # What the person has read and run already is folded, so the page opens at
            # the assessment and the gate (JupyterLab shows a folded cell as a thin bar).
            for earlier in book.cells[:book.cells.index(cell) - 1]:
                earlier.metadata.setdefault("jupyter", {})["source_hidden"] = True
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    nbformat.write(book, notebook)


def lab_at_the_gate(settings, config: Path, png: Path) -> None:
    runbook = load_runbook("failover", runbook_dirs(settings))
    incident = new_incident(settings, config, runbook, settings.environment)
    answer_the_first_gate_wrongly(incident.notebook)
    port, token = free_port(), new_token()
    with lab(incident, port, token) as (command, environment), \
            tempfile.TemporaryDirectory() as settings:
        # No "news" pop-up over the page: the answer, in lab settings of its own.
        notification = Path(settings, "@jupyterlab", "apputils-extension")
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false", "checkForUpdates": false}')
        process = subprocess.Popen(command, env={**environment,
                                                 "JUPYTERLAB_SETTINGS_DIR": settings},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                           timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("JupyterLab did not start") from None
                    time.sleep(0.5)
            # /doc: JupyterLab's single-document mode, the notebook without the side panels.
            screenshot(incident.url(port, token).replace("/lab/tree/", "/doc/tree/"), png,
                       wait_ms=20000, height=1300)
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)


def run_by_hand(notebook: Path, answers: dict[str, tuple[str, ...]]) -> None:
    """Every code cell of the notebook run in drkit's kernel in its folder, as a person runs
    it: each gate answered from ``answers`` (by a piece of the cell's code); a cell whose
    first answer was refused is run again with the next. The notebook is saved with the
    outputs and the cells' times, as JupyterLab saves it."""
    book = nbformat.read(notebook, as_version=4)
    with kernel_environment() as environment:
        os.environ["JUPYTER_PATH"] = environment["JUPYTER_PATH"]
        manager = KernelManager(kernel_name=KERNEL)
        manager.start_kernel(env=environment, cwd=str(notebook.parent))
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        try:
            for number, cell in enumerate([c for c in book.cells if c.cell_type == "code"], 1):
                pending = list(next((a for key, a in answers.items() if key in cell.source), ()))
                while not _run_cell(client, cell, pending, number):
                    if not pending:
                        raise SystemExit(f"cell {number} failed: {cell.outputs[-1:]}")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    nbformat.write(book, notebook)


def _run_cell(client, cell, pending: list[str], number: int) -> bool:
    cell.outputs, started = [], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def keep(message) -> None:
        if message["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            cell.outputs.append(nbformat.v4.output_from_msg(message))

    reply = client.execute_interactive(cell.source, allow_stdin=True, output_hook=keep,
                                       timeout=600,
                                       stdin_hook=lambda message: client.input(pending.pop(0)))
    cell.execution_count = number
    cell.metadata["execution"] = {
        "iopub.execute_input": started,
        "shell.execute_reply": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return reply["content"]["status"] == "ok"


def terminal(lines: list[str], png: Path) -> None:
    """A terminal's text as a page: what a person saw, photographed."""
    from html import escape

    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "terminal.html"
        page.write_text(
            "<html><body style='margin:0;background:#1e1e1e'><pre style='color:#d4d4d4;"
            "font:15px/1.45 monospace;padding:18px;white-space:pre-wrap'>"
            + escape("\n".join(lines)) + "</pre></body></html>")
        screenshot(page.as_uri(), png, wait_ms=1000, height=360)


def failover_open_terminal(config: Path, png: Path) -> Path:
    """``drkit failover open`` in a terminal: its three lines once JupyterLab answers, then
    Ctrl-C twice. Returns the incident's notebook. The token is masked in the picture."""
    port = free_port()
    command = f"drkit failover open --port {port}"
    process = subprocess.Popen([DRKIT, "failover", "open", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "DRKIT_CONFIG": str(config)})
    shown = [f"$ {command}"] + [process.stdout.readline().rstrip() for _ in range(3)]
    notebook = Path(shown[1].removeprefix("incident notebook: "))
    process.send_signal(2)
    shown += ["^C", process.stdout.readline().rstrip()]
    process.send_signal(2)
    shown += ["^C", process.stdout.readline().rstrip()]
    process.wait(timeout=60)
    token = shown[2].rsplit("token=", 1)[-1]
    terminal([line.replace(token, "…" * 8) for line in shown], png)
    return notebook


def the_hand_run_record(settings, config: Path, terminal_png: Path, record_png: Path) -> None:
    notebook = failover_open_terminal(config, terminal_png)
    run_by_hand(notebook, {"failover.decide(": ("yes", "FAILOVER"),
                           "failover.maintenance_on(": ("FAILOVER",),
                           "failover.bring_up_server(": ("FAILOVER",),
                           "failover.restore(": ("FAILOVER",),
                           "failover.end_incident(": ("FAILOVER",)})
    published = subprocess.run([DRKIT, "audit", "publish", str(notebook), "--by",
                                "Ines (incident commander)"], capture_output=True, text=True)
    if published.returncode != 0:
        raise SystemExit(f"audit publish failed: {published.stdout}{published.stderr}")
    run_id = published.stdout.split(":")[0]
    record = next((settings.backup.state_dir.expanduser() / "audit").rglob(
        f"{run_id}/notebook.html"))
    screenshot(record.as_uri(), record_png, height=1500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DOCS / "out" / "sandbox")
    parser.add_argument("--keep", action="store_true", help="Leave the sandbox running.")
    parser.add_argument("--only-hand-run", action="store_true",
                        help="Only the hand-run failover's two pictures.")
    args = parser.parse_args()
    box = Sandbox(args.dir)
    box.up()
    try:
        if args.only_hand_run:
            photograph_the_hand_run(box)
        else:
            photograph(box, args.dir)
    finally:
        if not args.keep:
            box.down()


def photograph_the_hand_run(box: Sandbox) -> None:
    os.environ["DRKIT_CONFIG"] = str(box.config_path)
    settings = load_settings(box.config_path)
    drkit("verify", drkit("backup")["backup"])
    box.stop_service("source")
    box.stop_service("moto")
    try:
        the_hand_run_record(settings, box.config_path, DOCS / "failover-open-terminal.png",
                            DOCS / "failover-hand-run-record.png")
    finally:
        box.up()


def photograph(box: Sandbox, directory: Path) -> None:
    os.environ["DRKIT_CONFIG"] = str(box.config_path)
    settings = load_settings(box.config_path)

    backup = drkit("backup")["backup"]
    drkit("verify", backup)
    passed = [drkit("run", "restore-drill") for _ in range(3)]
    failed = drkit("run", "restore-drill", "-p", "backup=backups/backup-20000101-000000.sql.gz",
                   ok=False)
    assert not failed["ok"], failed
    screenshot(Path(passed[-1]["record"], "notebook.html").as_uri(), DOCS / "drill-passed.png")
    screenshot(Path(failed["record"], "notebook.html").as_uri(), DOCS / "drill-failed.png")

    report = directory / "report.html"
    subprocess.run([DRKIT, "audit", "report", "--output", str(report)], check=True,
                   capture_output=True)
    screenshot(report.as_uri(), DOCS / "audit-report.png")
    # The incident: the source is dead and AWS does not answer; the assessment says GO.
    box.stop_service("source")
    box.stop_service("moto")
    try:
        lab_at_the_gate(settings, box.config_path, DOCS / "failover-lab-gate.png")
        the_hand_run_record(settings, box.config_path, DOCS / "failover-open-terminal.png",
                            DOCS / "failover-hand-run-record.png")
    finally:
        box.up()


if __name__ == "__main__":
    main()
