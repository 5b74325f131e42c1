"""mucon's modules import in one direction: none imports a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import mucon

SOURCE = Path(mucon.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The mucon modules ``path`` imports, at its top or inside a function (an import put off is still one)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..y import x
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return found & modules


def test_no_module_imports_one_that_imports_it_back():
    """tasks.py and benchmarks.py imported each other: neither could be read, or changed, alone."""
    paths = {_module_name(path): path for path in SOURCE.rglob("*.py")}
    graph = {name: _imports(path, set(paths)) - {name} - _packages_of(name) for name, path in paths.items()}
    circles = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            name = stack.pop()
            if name == start:
                circles.append(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(graph[name])
    assert circles == []


def _packages_of(name: str) -> set[str]:
    """The packages a module lies in: it may take names from their __init__, which gathers what they hold."""
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))}
