"""drkit's layers, checked from its imports: dependencies point down only.

Every ``import drkit...`` counts, also one inside a function (a lazy import is still a
dependency). The rules are the ones ``drkit/__init__.py`` states.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import drkit

PACKAGE = Path(drkit.__file__).parent
ADAPTERS = {"mysql", "azure", "aws"}
# layer -> the layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "stream": {"core", "stream"},
    **{adapter: {"core", "stream", adapter} for adapter in ADAPTERS},
    "binlog": {"core", "stream", "mysql", "azure", "binlog"},
    "ops": {"core", "stream", *ADAPTERS, "binlog", "ops"},
    "runbooks": {"core", "stream", *ADAPTERS, "binlog", "ops", "runbooks"},
    "health": {"core", "stream", *ADAPTERS, "binlog", "ops", "runbooks", "health"},
    "fleet": {"core", "stream", *ADAPTERS, "binlog", "ops", "runbooks", "fleet"},
    "sandbox": {"core", "stream", *ADAPTERS, "sandbox"},
    "cli": {"core", "stream", *ADAPTERS, "binlog", "ops", "runbooks", "health", "fleet",
            "sandbox", "cli"},
}
# Modules outside drkit that only the byte stages must not touch.
CLOUD_AND_NETWORK = ("azure", "boto3", "botocore", "pymysql", "socket", "urllib", "http",
                     "requests", "subprocess")


def layer_of(module: str) -> str:
    """``drkit.ops.backup`` -> ``ops``; a top-level module (``drkit.errors``) -> ``core``."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "core"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in ``module``'s file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            if base == "drkit":  # from drkit import ops -> drkit.ops
                found += [(node.lineno, f"drkit.{alias.name}") for alias in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_are_the_package_folders():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(ALLOWED) - {"core"}


def violations(path: Path, module: str) -> list[str]:
    own = layer_of(module)
    return [f"line {line}: {imported} ({layer_of(imported)})"
            for line, imported in imports(path, module)
            if imported.startswith("drkit.") and layer_of(imported) not in ALLOWED[own]]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dependencies_point_down(path: Path):
    wrong = violations(path, module_name(path))
    assert not wrong, f"{layer_of(module_name(path))} may import only " \
                      f"{sorted(ALLOWED[layer_of(module_name(path))])}: {wrong}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "stream").rglob("*.py")),
                         ids=lambda p: p.name)
def test_stream_stages_touch_no_network_or_cloud(path: Path):
    touched = [module for _, module in imports(path, module_name(path))
               if module.split(".")[0] in CLOUD_AND_NETWORK]
    assert not touched


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_layer_says_what_it_holds(path: Path):
    if path.name == "__init__.py":
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "import" in docstring, "a layer's docstring says what it may import"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path: Path):
    assert len(path.read_text().splitlines()) <= 400


def test_the_checker_sees_lazy_relative_and_sideways_imports(tmp_path):
    # The rules above would pass vacuously if imports() missed any kind of import.
    source = tmp_path / "x.py"
    source.write_text("from .codecs import x\nfrom ..azure import blobstore\n\n"
                      "def f():\n    from drkit.cli import main\n    import drkit.mysql.dump\n")
    assert violations(source, "drkit.stream.x") == [
        "line 2: drkit.azure (azure)", "line 5: drkit.cli (cli)",
        "line 6: drkit.mysql.dump (mysql)"]
    assert violations(source, "drkit.cli.x") == []
