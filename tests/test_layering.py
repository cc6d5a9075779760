"""drkit's layers, checked from its imports: dependencies point down only, each SDK is used
in its adapter only, and no modules import each other in a circle.

Every import counts, also one inside a function (a lazy import is still a dependency) or
under ``TYPE_CHECKING`` (a type names what a module is built on). The rules are the ones
``drkit/__init__.py`` states.
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
    "sandbox": {"core", "stream", *ADAPTERS, "sandbox"},
    "cli": {"core", "stream", *ADAPTERS, "binlog", "ops", "runbooks", "health", "sandbox",
            "cli"},
}
# Modules outside drkit that only the byte stages must not touch.
CLOUD_AND_NETWORK = ("azure", "boto3", "botocore", "pymysql", "socket", "urllib", "http",
                     "requests", "subprocess")
# Each SDK -> the layers that may import it: its adapter (the binlog engine speaks MySQL's
# replication protocol over pymysql), and the sandbox, which stands in for the whole estate.
SDK_LAYERS: dict[str, set[str]] = {
    "azure": {"azure", "sandbox"},
    "boto3": {"aws", "sandbox"},
    "botocore": {"aws", "sandbox"},
    "pymysql": {"mysql", "binlog", "sandbox"},
}
# The Blob Storage SDK's calls (ContainerClient, BlobClient): a store's methods make them,
# nothing outside drkit/azure does (an attribute name is all a caller's code shows of them).
BLOB_CALLS = {"list_blobs", "download_blob", "upload_blob", "get_blob_client", "delete_blob",
              "stage_block", "commit_block_list", "get_block_list", "get_blob_properties",
              "get_container_properties", "set_blob_tags", "get_blob_tags",
              "set_blob_metadata"}


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


def imports(path: Path, module: str, names: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in ``module``'s file, relative ones resolved; with
    ``names``, also each name a from-import takes, as ``module.name`` (it may be a module)."""
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
            if base == "drkit" or names:  # from drkit import ops -> drkit.ops
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
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


def sdk_violations(path: Path, module: str) -> list[str]:
    own = layer_of(module)
    return [f"line {line}: {imported}" for line, imported in imports(path, module)
            if own not in SDK_LAYERS.get(imported.split(".")[0], {own})]


def test_each_sdk_is_imported_by_its_adapter_only():
    wrong = {str(path.relative_to(PACKAGE)): found for path in SOURCES
             if (found := sdk_violations(path, module_name(path)))}
    assert wrong == {}, f"each SDK belongs to the layers {SDK_LAYERS}"


def blob_calls(path: Path, module: str) -> list[str]:
    if layer_of(module) in SDK_LAYERS["azure"]:
        return []
    return [f"line {node.lineno}: .{node.attr}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in BLOB_CALLS]


def test_blob_storage_is_called_through_the_store_only():
    wrong = {str(path.relative_to(PACKAGE)): found for path in SOURCES
             if (found := blob_calls(path, module_name(path)))}
    assert wrong == {}, "call a BackupStore method instead"


def import_cycles(sources: dict[str, Path]) -> list[list[str]]:
    """Each set of modules (of ``sources``: name -> file) that import each other in a
    circle, sorted; a module counts as imported by ``from package import module`` too."""
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        targets = set()
        for _, imported in imports(path, module, names=True):
            while imported and imported not in sources:  # drkit.x.y.Name -> drkit.x.y
                imported = imported.rpartition(".")[0]
            if imported and imported != module:
                targets.add(imported)
        graph[module] = targets
    return sorted(sorted(group) for group in _strongly_connected(graph) if len(group) > 1)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            groups.append([*group, node])

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def _modules(paths: list[Path]) -> dict[str, Path]:
    return {module_name(path): path for path in paths}


def test_no_modules_import_each_other_in_a_circle():
    assert import_cycles(_modules(SOURCES)) == []


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


def test_the_checker_sees_lazy_relative_and_sideways_imports(tmp_path):
    # The rules above would pass vacuously if imports() missed any kind of import.
    source = tmp_path / "x.py"
    source.write_text("from .codecs import x\nfrom ..azure import blobstore\n\n"
                      "def f():\n    from drkit.cli import main\n    import drkit.mysql.dump\n")
    assert violations(source, "drkit.stream.x") == [
        "line 2: drkit.azure (azure)", "line 5: drkit.cli (cli)",
        "line 6: drkit.mysql.dump (mysql)"]
    assert violations(source, "drkit.cli.x") == []


def test_the_checker_sees_sdks_lazy_and_under_type_checking(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("from typing import TYPE_CHECKING\nimport pymysql\n\n"
                      "if TYPE_CHECKING:\n    from botocore.client import BaseClient\n\n"
                      "def f():\n    from azure.core.exceptions import AzureError\n")
    assert sdk_violations(source, "drkit.ops.x") == [
        "line 2: pymysql", "line 5: botocore.client", "line 8: azure.core.exceptions"]
    assert sdk_violations(source, "drkit.binlog.x") == [
        "line 5: botocore.client", "line 8: azure.core.exceptions"]
    assert sdk_violations(source, "drkit.sandbox.x") == []


def test_the_checker_sees_blob_calls_outside_the_adapter(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f(store):\n    return store.container.list_blobs()\n")
    assert blob_calls(source, "drkit.runbooks.x") == ["line 2: .list_blobs"]
    assert blob_calls(source, "drkit.azure.x") == []


def test_the_checker_sees_a_circle_of_lazy_type_checking_and_package_imports(tmp_path):
    package = tmp_path / "drkit" / "p"
    package.mkdir(parents=True)
    files = {"__init__": "", "a": "def f():\n    from drkit.p.b import g\n",
             "b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n",
             "c": "from drkit.p import a\n", "d": "from drkit.p.a import f\n"}
    for name, text in files.items():
        (package / f"{name}.py").write_text(text)
    sources = {f"drkit.p.{name}" if name != "__init__" else "drkit.p": package / f"{name}.py"
               for name in files}
    assert import_cycles(sources) == [["drkit.p.a", "drkit.p.b", "drkit.p.c"]]
