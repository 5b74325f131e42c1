"""Where mucon keeps files: replaced so that a kill at any moment leaves the old version or the new
one, never part of one; and the cache folder that commands share."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"


def cache_root() -> Path:
    """``$MUCON_CACHE`` (default ~/.cache/mucon): what any command may reuse from another's work, such as
    the demo's corpus and stores and the embeddings ``embed`` and ``evaluate`` share."""
    return Path(os.environ.get("MUCON_CACHE", Path.home() / ".cache" / "mucon"))


def write_atomically(path: str | os.PathLike, write: Callable[[IO[Any]], Any], mode: str = "wb") -> None:
    """Write ``path`` through ``PATH.tmp`` next to it: fsync, rename over ``path``, fsync the folder.

    The temporary file lies in the target's folder because only a rename within one filesystem is
    atomic; a move from another one (a tmpfs $TMPDIR) is a copy that empties the target first. The
    fsyncs keep a power cut from leaving a renamed file whose data never reached the disk.
    """
    path = Path(path)
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    text_options = {} if "b" in mode else {"newline": "", "encoding": "utf-8", "errors": "surrogateescape"}
    with open(temporary, mode, **text_options) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def remove_temporary_files(folder: str | os.PathLike) -> None:
    """Delete the temporary files that writes killed midway left in ``folder``."""
    for path in Path(folder).glob(f"*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)
