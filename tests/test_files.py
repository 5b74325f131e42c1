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


# Still write their files over the old ones; to be moved onto write_atomically with their own restructuring.
NOT_YET_WHOLE = {"evaluation/report.py", "evaluation/splitting.py"}


def test_files_are_replaced_whole_never_truncated_and_rewritten_in_place():
    """Path.write_text empties a file before it writes: a kill in between left a truncated config.yaml,
    run info (mucon.json), embeddings.json or separated.json, which the next run could not read."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        if name in {"files.py", *NOT_YET_WHOLE}:
            continue
        lines = [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "write_text"]
        if lines:
            found[name] = lines
    assert found == {}, "write through mucon.files.write_atomically instead"
