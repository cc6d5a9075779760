"""drkit's errors: families that mirror the exit-code ranges, one ExitStatus for every code
(documented in the README), no exit code written as a number elsewhere, and no error changed
after it was raised."""

from __future__ import annotations

import ast
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import drkit
from drkit.checks import Status
from drkit.errors import (
    BinlogArchiveError,
    DrkitError,
    ProofFailedError,
    RunStopped,
    StorageError,
    TlsError,
    VerifyError,
    error_classes,
    error_families,
)
from drkit.exitstatus import ExitStatus
from drkit.interrupts import _EXCEPTIONS
from drkit.ops.readback import failed_verification
from drkit.redact import MASK, register_secret
from drkit.runbooks.verdict import verdict_of
from tests.conftest import repo_root

PACKAGE = Path(drkit.__file__).parent


def _family(cls: type[DrkitError]) -> type[DrkitError]:
    (family,) = [f for f in error_families() if issubclass(cls, f)]
    return family


def _readme_exit_codes() -> str:
    readme = (repo_root() / "README.md").read_text()
    return readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]


# --- the families and ExitStatus ------------------------------------------------------------

def test_every_family_is_a_child_of_drkit_error_with_a_range_no_other_family_has():
    families = error_families()
    assert [f.__name__ for f in DrkitError.__subclasses__()] == [f.__name__ for f in families]
    for family in families:
        others = set().union(*(f.codes for f in families if f is not family))
        assert not family.codes & others, family.__name__


@pytest.mark.parametrize("cls", [c for c in error_classes() if c is not DrkitError],
                         ids=lambda c: c.__name__)
def test_every_error_belongs_to_one_family_and_its_code_lies_in_that_familys_range(cls):
    assert cls.exit_code in _family(cls).codes


def test_the_families_mirror_the_readmes_ranges():
    assert {f.__name__: sorted(f.codes & set(ExitStatus)) for f in error_families()} == {
        "SetupError": [2, 3, 4, 5, 6, 7, 8, 9],
        "ServerError": [10, 11, 12, 17],
        "StorageError": [13, 14, 15, 16],
        "BackupError": [20, 21, 22, 23, 24],
        "VerifyError": [30, 31, 32, 33, 38],
        "RestoreError": [34, 35, 36, 37, 39],
        "RunbookError": [40, 41, 42, 43, 44],
        "FailoverError": [45, 46, 47],
        "BinlogError": [48, 49, 50],
        "RunStopped": [130, 137, 143],
    }
    assert isinstance(TlsError("x"), _family(TlsError))
    assert StorageError.exit_code == ExitStatus.STORAGE_FAILED  # the family's "another failure"


def test_every_errors_code_is_an_exit_status_of_its_own():
    classes = error_classes()
    assert all(isinstance(cls.exit_code, ExitStatus) for cls in classes)
    assert len({cls.exit_code for cls in classes}) == len(classes), "two errors share a code"


def test_the_readmes_table_lists_every_exit_status_and_nothing_else():
    table = {int(code) for code in re.findall(r"^\| (\d+) \|", _readme_exit_codes(), re.M)}
    assert table == {int(status) for status in ExitStatus}


def test_the_doctors_nagios_codes_are_the_readmes_and_its_statuses():
    named = re.findall(r"(\d) (OK|WARNING|CRITICAL|UNKNOWN)", _readme_exit_codes())
    assert len(named) == 4
    for code, name in named:
        assert Status(name).exit_code is ExitStatus[f"NAGIOS_{name}"] == int(code)


def test_a_signal_stops_a_run_with_128_plus_its_number():
    for signum, cls in _EXCEPTIONS.items():
        assert issubclass(cls, RunStopped) and cls.exit_code == 128 + signum
    assert ExitStatus.KILLED == 128 + signal.SIGKILL


@pytest.mark.parametrize("code, verdict", [
    (ExitStatus.OK, "PASSED"), (ExitStatus.INTERRUPTED, "INTERRUPTED"),
    (ExitStatus.TERMINATED, "INTERRUPTED"), (ExitStatus.KILLED, "INTERRUPTED"),
    (ExitStatus.RUNBOOK_STEP_FAILED, "FAILED"), (ExitStatus.INTERNAL_ERROR, "FAILED")])
def test_a_runs_verdict_is_interrupted_for_every_stopped_code(code, verdict):
    assert verdict_of(code) == verdict
    assert verdict_of(int(code)) == verdict  # as read back from run.json


@pytest.mark.parametrize("cls", [c for c in error_classes() if issubclass(c, VerifyError)],
                         ids=lambda c: c.__name__)
def test_a_recorded_verify_outcome_names_its_error_again(cls):
    assert failed_verification(cls.outcome) is cls


@pytest.mark.parametrize("outcome", ["ok", None, "", "stale"])
def test_a_backup_verified_ok_or_never_has_no_failed_verification(outcome):
    assert failed_verification(outcome) is None


# --- an error is never changed after it is raised ---------------------------------------------

def test_with_context_builds_a_new_redacted_error_and_leaves_the_raised_one_as_it_was():
    secret = "s3cr3t-with-context-7f1c"
    register_secret(secret)
    proof = object()
    raised = ProofFailedError("Table t differs.", "Restore another backup.", proof=proof)
    told = raised.with_context(f"The copy (password {secret}) was dropped.")
    assert type(told) is ProofFailedError and told is not raised and told.proof is proof
    assert str(told) == f"Table t differs. The copy (password {MASK}) was dropped. " \
                        "Restore another backup."
    assert told.args == (told.message,) and told.exit_code == ExitStatus.PROOF_FAILED
    assert str(raised) == "Table t differs. Restore another backup."
    assert str(raised.with_context(fix=f"Drop {secret}.")) == f"Table t differs. Drop {MASK}."


def test_with_names_tells_a_scratch_copy_by_the_database_it_stands_for():
    raised = BinlogArchiveError("Table drkit_restore_20260101000000_ab12cd_1.t has 3 columns.",
                                "Drop drkit_restore_20260101000000_ab12cd_1.t2 first.")
    told = raised.with_names({"drkit_restore_20260101000000_ab12cd_1": "pit"})
    assert type(told) is BinlogArchiveError and told is not raised
    assert str(told) == "Table pit.t has 3 columns. Drop pit.t2 first."
    assert str(raised).startswith("Table drkit_restore_")


_EXCEPTION_TYPES = re.compile(r"^(BaseException|Exception|\w*Error)( \| None)?$")


def _errors_in_hand(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(name, scope) of every caught error and every parameter typed as one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.name:
            yield node.name, ast.Module(body=node.body, type_ignores=[])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in node.args.args + node.args.kwonlyargs:
                if arg.annotation is not None and \
                        _EXCEPTION_TYPES.match(ast.unparse(arg.annotation)):
                    yield arg.arg, node


def _changes(name: str, scope: ast.AST) -> Iterator[ast.AST]:
    for node in ast.walk(scope):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
               and t.value.id == name for t in targets):
            yield node
        if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                 and node.args and isinstance(node.args[0], ast.Name)
                 and node.args[0].id == name)
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "add_note"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == name)):
            yield node


def errors_changed(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        changes = {node for name, scope in _errors_in_hand(tree) for node in _changes(name, scope)}
        found += [f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}"
                  for node in sorted(changes, key=lambda node: node.lineno)]
    return found


def test_no_error_is_changed_after_it_is_raised():
    changed = errors_changed(PACKAGE)
    assert changed == [], "build a new error (DrkitError.with_context) instead:\n" + \
        "\n".join(changed)


# --- no exit code written as a number outside drkit/exitstatus.py ---------------------------

_EXIT_CALLS = {"exit", "Exit", "SystemExit"}  # sys.exit, ctx.exit, click's Exit
_EXIT_CODE_FUNCTIONS = {"main", "outcome", "exit_code"}  # each returns an exit code


def _numbers(node: ast.AST, into_calls: bool = True) -> Iterator[ast.Constant]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        yield node
    elif into_calls or not isinstance(node, ast.Call):
        for child in ast.iter_child_nodes(node):
            yield from _numbers(child, into_calls)


def _named(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else \
        node.attr if isinstance(node, ast.Attribute) else ""


def _exit_code_numbers(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _named(node.func) in _EXIT_CALLS:
            yield from _numbers(ast.Tuple(elts=[*node.args, *(k.value for k in node.keywords)]))
        elif isinstance(node, ast.keyword) and node.arg == "exit_code":
            yield from _numbers(node.value)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [_named(n) for t in targets for n in ast.walk(t)]
            if any("exit_code" in name.lower() for name in names):
                # a call's arguments are not the code: outcome(runbook, papermill_code, ...)
                yield from _numbers(node.value, into_calls=False)
        elif isinstance(node, ast.FunctionDef) and node.name in _EXIT_CODE_FUNCTIONS:
            for returned in ast.walk(node):
                if isinstance(returned, ast.Return) and returned.value is not None:
                    yield from _numbers(returned.value)


def exit_code_literals(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "exitstatus.py":
            continue
        lines = path.read_text().splitlines()
        numbers = set(_exit_code_numbers(ast.parse("\n".join(lines), str(path))))
        found += [f"{path.relative_to(root)}:{line}: {lines[line - 1].strip()}"
                  for line in sorted({number.lineno for number in numbers})]
    return found


def test_no_exit_code_is_written_as_a_number_outside_exit_status():
    found = exit_code_literals(PACKAGE)
    assert found == [], "name it in drkit/exitstatus.py's ExitStatus:\n" + "\n".join(found)
