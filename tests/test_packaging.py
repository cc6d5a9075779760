"""The project's own promises: one dependency list, the README's commands, exit codes."""

from __future__ import annotations

import re
import tomllib

import yaml

from drkit.errors import error_classes, exit_codes
from tests.conftest import repo_root


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    environment = yaml.safe_load((repo_root() / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip_section if not r.startswith("-")]
    assert sorted(map(str.lower, listed)) == sorted(map(str.lower, declared))
    assert {_name(r) for r in listed} == {_name(r) for r in declared}


def _readme_commands() -> list[str]:
    readme = (repo_root() / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:sh|bash)\n(.*?)\n```", quick_start, re.S)


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    commands = _readme_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    ci = (repo_root() / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
    assert commands[0].startswith("./install.sh")


def test_every_error_has_its_own_documented_exit_code():
    classes = error_classes()
    codes = exit_codes()
    assert len(codes) == len(classes), "two errors share an exit code"
    readme = (repo_root() / "README.md").read_text()
    for code, name in codes.items():
        assert re.search(rf"\|\s*{code}\s*\|", readme), f"exit code {code} ({name}) not in README"
