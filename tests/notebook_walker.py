"""A person at JupyterLab, as a test can be one: each code cell of a saved notebook run in
a real drkit kernel, ``input()`` answered from a list, outputs and JupyterLab's timing
metadata written back into the cell, the notebook saved afterwards."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.manager import KernelManager

from drkit.runbooks.runner import kernel_environment


class NotebookWalker:
    def __init__(self, notebook: Path, client) -> None:
        self.path = notebook
        self.notebook = nbformat.read(notebook, as_version=4)
        self.client = client
        self.count = 0

    def code_cells(self) -> list[nbformat.NotebookNode]:
        return [c for c in self.notebook.cells if c.cell_type == "code"]

    def run(self, cell: nbformat.NotebookNode, answers: tuple[str, ...] = ()) -> bool:
        """Run ``cell`` as JupyterLab would (its outputs replaced); whether it succeeded."""
        pending = list(answers)
        started = datetime.now(UTC).isoformat()
        message_id = self.client.execute(cell.source, allow_stdin=True)
        cell.outputs, ok = [], True
        deadline = time.monotonic() + 600
        while True:
            self._answer_input(pending)
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except Empty:
                assert time.monotonic() < deadline, f"cell still running: {cell.source[:60]}"
                continue
            if message["parent_header"].get("msg_id") != message_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "error":
                ok = False
            if kind in ("stream", "display_data", "execute_result", "error"):
                cell.outputs.append(nbformat.v4.output_from_msg(message))
        self.client.get_shell_msg(timeout=60)
        self.count += 1
        cell.execution_count = self.count
        cell.metadata["execution"] = {"iopub.execute_input": started,
                                      "shell.execute_reply": datetime.now(UTC).isoformat()}
        return ok

    def _answer_input(self, pending: list[str]) -> None:
        """Answer an ``input()`` the cell asks, if it asks one now."""
        try:
            request = self.client.get_stdin_msg(timeout=0)
        except Empty:
            return
        assert pending, f"the cell asked {request['content']['prompt']!r}, with no answer left"
        self.client.input(pending.pop(0))

    def save(self) -> None:
        nbformat.write(self.notebook, self.path)


@contextmanager
def walking(notebook: Path) -> Iterator[NotebookWalker]:
    """A drkit kernel started in the notebook's folder, as JupyterLab starts it."""
    with kernel_environment() as environment:
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = environment["JUPYTER_PATH"]
        manager = KernelManager(kernel_name="drkit")
        try:
            manager.start_kernel(cwd=str(notebook.parent), env=environment)
        finally:
            if saved is None:
                os.environ.pop("JUPYTER_PATH")
            else:
                os.environ["JUPYTER_PATH"] = saved
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            yield NotebookWalker(notebook, client)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
