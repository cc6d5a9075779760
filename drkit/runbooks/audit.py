"""Audit records of runbook runs: written locally, checked for secrets, published once.

A record is a directory ``RUNBOOK/YYYY/MM/DD/RUN_ID/`` holding the executed notebook, an
HTML rendering and ``run.json`` (what ran, with which parameters, how it ended, the key
results, versions, and the sha256 of each file). It is uploaded to the audit container
under the same path, never overwriting; a record in which the scrubber finds a secret is
not published at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.errors import AuditRefusedError, BackupNotFoundError, ChecksumMismatchError
from drkit.redact import find_secrets

NOTEBOOK, HTML, RUN = "notebook.ipynb", "notebook.html", "run.json"
LOCK = "run.lock"  # held by drkit run and papermill together: free once both are gone
RUNNING = "running"

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_html(notebook: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nbformat.read(notebook, as_version=4))
    html.write_text(body, encoding="utf-8")


@dataclass
class AuditRecord:
    directory: Path
    blob_prefix: str  # RUNBOOK/YYYY/MM/DD/RUN_ID/

    def finish(self, run: dict[str, Any]) -> None:
        """Render the HTML, hash the files and write run.json."""
        notebook = self.directory / NOTEBOOK
        files = {}
        if notebook.exists():
            render_html(notebook, self.directory / HTML)
            files = {name: sha256_file(self.directory / name) for name in (NOTEBOOK, HTML)}
        run["files"] = files
        (self.directory / RUN).write_text(json.dumps(run, indent=2, default=str,
                                                     ensure_ascii=False) + "\n")

    def start(self, run: dict[str, Any]) -> int:
        """Write run.json saying the run is going on, before papermill starts, and hold the
        record's lock (the descriptor returned, to be handed to papermill): a run killed with
        -9 leaves a record the next run finds and closes (:func:`interrupted_records`)."""
        lock = os.open(self.directory / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        (self.directory / RUN).write_text(json.dumps({**run, "status": RUNNING}, indent=2,
                                                     default=str) + "\n")
        return lock

    def check_for_secrets(self, secret_values: Iterable[str]) -> None:
        values = [v for v in secret_values if v]
        for name in (NOTEBOOK, HTML, RUN):
            path = self.directory / name
            if not path.exists():
                continue
            found = find_secrets(path.read_text(encoding="utf-8", errors="replace"), values)
            if found:
                for leftover in self.directory.iterdir():
                    leftover.chmod(0o600)  # kept for the owner to inspect, for no one else
                raise AuditRefusedError(
                    f"The audit record {self.directory} was not published: its {name} contains "
                    f"{', '.join(found)}.",
                    "Find what printed it (a notebook output or parameter), remove it, and "
                    "rotate that credential.")

    def publish(self, store: BackupStore, metadata: dict[str, str] | None = None) -> list[str]:
        """Upload each file once, into a private container; an existing blob of the same
        name is never replaced."""
        store.check()  # audit records hold the estate's layout: never in a public container
        names = []
        run_sha256 = sha256_file(self.directory / RUN)
        for path in sorted(self.directory.iterdir()):
            if path.name not in (NOTEBOOK, HTML, RUN):
                continue
            blob = self.blob_prefix + path.name
            with path.open("rb") as data:
                written = store.write(blob, data, metadata={
                    **{k: v for k, v in (metadata or {}).items() if v},
                    "run_sha256": run_sha256})
            if written is None:
                raise AuditRefusedError(f"Audit blob {blob} already exists; it was not "
                                        "overwritten.")
            names.append(blob)
        return names


def interrupted_records(root: Path) -> Iterator[tuple[AuditRecord, dict[str, Any]]]:
    """Local records under ``root`` still saying running whose drkit run and papermill are
    both gone (killed with -9, a reboot); each is yielded while its lock is held, so two
    closers never close one twice."""
    for path in sorted(root.glob(f"*/*/*/*/*/{RUN}")):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("status") != RUNNING:
                continue
            lock = os.open(path.parent / LOCK, os.O_RDWR)
            try:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # still running
                run = json.loads(path.read_text())  # again, now that it is ours
                if run.get("status") == RUNNING:
                    yield AuditRecord(path.parent, str(run["audit"]["prefix"])), run
            finally:
                os.close(lock)


# -- reading published records --------------------------------------------------------------
def list_runs(store: BackupStore, limit: int = 20) -> list[dict[str, Any]]:
    """The newest published runs (their run.json), newest first."""
    blobs = [b for b in store.blobs() if b.name.endswith("/" + RUN)]
    blobs.sort(key=lambda b: b.name.rsplit("/", 2)[-2], reverse=True)  # run ids sort by time
    return [json.loads(store.read(b.name)) for b in blobs[:limit]]


def find_run(store: BackupStore, run_id: str) -> str:
    """The blob prefix of run ``run_id``."""
    for blob in store.blobs():
        if blob.name.endswith(f"/{run_id}/{RUN}"):
            return blob.name[: -len(RUN)]
    raise BackupNotFoundError(f"No audit record of run {run_id} in container "
                              f"{store.container_name}.",
                              "drkit audit list shows the recent runs.")


def verify_run(store: BackupStore, run_id: str) -> dict[str, Any]:
    """Check every file of a published record against the hashes in its run.json."""
    prefix = find_run(store, run_id)
    data = store.read(prefix + RUN)
    recorded = store.metadata(prefix + RUN).get("run_sha256")
    if hashlib.sha256(data).hexdigest() != recorded:
        raise ChecksumMismatchError(f"run.json of run {run_id} was changed after publication.")
    run = json.loads(data)
    for name, expected in run.get("files", {}).items():
        actual = hashlib.sha256(store.read(prefix + name))
        if actual.hexdigest() != expected:
            raise ChecksumMismatchError(f"{name} of run {run_id} does not match its sha256 in "
                                        "run.json: the record was altered.")
    return run
