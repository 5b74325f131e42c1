"""Where mucon keeps files: replaced so that a kill at any moment leaves the old version or the new
one, never part of one; a folder locked against a second mucon process; file names shown whatever
bytes they hold; and the cache folder that commands share."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """A write stopped because the disk (or the user's quota) is full; the message says what was kept."""


def cache_root() -> Path:
    """``$MUCON_CACHE`` (default ~/.cache/mucon): what any command may reuse from another's work, such as
    the demo's corpus and stores and the embeddings ``embed`` and ``evaluate`` share."""
    return Path(os.environ.get("MUCON_CACHE", Path.home() / ".cache" / "mucon"))


def write_atomically(path: str | os.PathLike, write: Callable[[IO[Any]], Any], mode: str = "wb") -> None:
    """Write ``path`` through ``PATH.tmp`` next to it: fsync, rename over ``path``, fsync the folder.

    The temporary file lies in the target's folder because only a rename within one filesystem is
    atomic; a move from another one (a tmpfs $TMPDIR) is a copy that empties the target first. The
    fsyncs keep a power cut from leaving a renamed file whose data never reached the disk. A write
    that fails removes its temporary file; on a full disk it raises ``DiskFull``, saying ``path``
    is as it was (a traceback of errno 28 told nobody that the previous checkpoint was still whole).
    """
    path = Path(path)
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    text_options = {} if "b" in mode else {"newline": "", "encoding": "utf-8", "errors": "surrogateescape"}
    try:
        with open(temporary, mode, **text_options) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            kept = f"{path.name} is whole, as it was before this save" if path.exists() else f"{path.name} was not written"
            raise DiskFull(f"{path}: the disk is full ({error.strerror}); {kept}; free some space and run again") from None
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def remove_temporary_files(folder: str | os.PathLike) -> None:
    """Delete the temporary files that writes killed midway left in ``folder``."""
    for path in Path(folder).glob(f"*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked_folder(folder: Path, lock_name: str, user: str, setting: str) -> Iterator[None]:
    """Hold ``folder/lock_name`` while inside: a second mucon process into a folder in use is refused.

    Two runs into one run folder interleaved metrics.csv and overwrote each other's checkpoint; two
    ``prepare`` into one store interleaved its shards. ``user`` names the holder in the refusal
    ("mucon run"), ``setting`` what to change instead ("run_dir"). The lock is the kernel's (flock),
    so a killed process releases it.
    """
    descriptor = os.open(folder / lock_name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            raise FileExistsError(f"{folder} is in use by another {user} (process {holder}); "
                                  f"wait for it to end or pick another {setting}") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)


def readable_name(name: str | os.PathLike) -> str:
    """``name`` as text any terminal or font can show: bytes that are not UTF-8 appear as ``\\xe9``.

    File names are kept as the bytes the file system holds (surrogate escapes); printed or drawn as
    they are, such a name stopped ``mucon masks`` with an encoding error.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")
