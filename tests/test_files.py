"""mucon.files: the one way mucon replaces a file."""

from __future__ import annotations

import ast
from pathlib import Path

import mucon

SOURCE = Path(mucon.__file__).parent


def _renames(tree: ast.AST) -> list[int]:
    """Lines that move a file over another: os.replace/os.rename/shutil.move, and Path.rename/Path.replace
    (a ``.replace`` with a single argument: str.replace takes two)."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        name = node.func.attr
        if (owner, name) in {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}:
            lines.append(node.lineno)
        elif owner not in {"os", "shutil", "dataclasses"} and (
            name == "rename" or (name == "replace" and len(node.args) == 1 and not node.keywords)
        ):
            lines.append(node.lineno)
    return lines


def test_only_write_atomically_renames_files_into_place():
    """A hand-written temp-file-and-rename skipped the fsyncs and named its temporary file its own way."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        if name == "files.py":
            continue
        lines = _renames(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[name] = lines
    assert found == {}, "write through mucon.files.write_atomically instead"
