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


def _imported_distributions(paths) -> set[str]:
    """The distributions whose modules the files import (drkit and the standard library aside)."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    providers = packages_distributions()
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and \
                not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("drkit", "tests"):
                    continue
                candidates = [_name(d) for d in providers.get(top, [top])]
                # A namespace (azure.storage.blob) names its distribution by its parts.
                dotted = [_name("-".join(name.split(".")[:n])) for n in (3, 2, 1)]
                found.add(next((d for d in dotted if d in candidates), candidates[0]))
    return found


def test_every_imported_package_is_declared_core_or_in_its_extra():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {extra: {_name(r) for r in deps}
              for extra, deps in project["optional-dependencies"].items()}
    package = repo_root() / "drkit"
    outside_extras = [p for p in package.rglob("*.py")
                      if not {"sandbox", "fleet"} & set(p.relative_to(package).parts[:1])]
    assert _imported_distributions(outside_extras) <= core
    assert _imported_distributions((package / "fleet").rglob("*.py")) <= core | extras["fleet"]
    assert _imported_distributions((package / "sandbox").rglob("*.py")) <= core | extras["sandbox"]
    # The sandbox extra's modules are what drkit checks for before starting the sandbox.
    from drkit.programs import EXTRAS

    assert set(EXTRAS) <= set(extras)
