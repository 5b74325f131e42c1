"""Checkpoints: written so a kill never destroys one, read back without executing code from the file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from mucon.config import RunConfig, from_dict
from mucon.files import write_atomically
from mucon.user_code import UserCodeError, package_of, recorded_code


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, empty, corrupt, refused or not mucon's.

    The message names the file and the problem in one line, what the command line prints.
    """


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made safe against kills: every save goes through
    ``mucon.files.write_atomically``.

    Lightning saves through a temporary file in $TMPDIR and a move. When $TMPDIR lies on another
    filesystem the move is a copy that empties the target first, so a kill mid-save destroyed
    last.ckpt, and every kill left a checkpoint-sized file in $TMPDIR. Written next to its target
    and renamed, the previous checkpoint stays whole until the new one is complete on disk.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda handle: torch.save(checkpoint, handle))


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(". ")[0]


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """Why torch.load failed on ``path``, in one line (its own messages run to a dozen lines)."""
    if not zipfile.is_zipfile(path):
        return CheckpointError(f"{path}: not a checkpoint: cut short, corrupt, or another kind of file")
    if isinstance(error, pickle.UnpicklingError):  # weights_only met something beyond tensors and plain data
        detail = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
        return CheckpointError(f"{path}: refused: it holds Python objects that could run code when loaded"
                               + (f" ({detail})" if detail else ""))
    return CheckpointError(f"{path}: corrupt checkpoint ({type(error).__name__}: {_first_sentence(error)})")


def _check_archive(path: Path) -> None:
    """Refuse a checkpoint whose zip members fail their CRC-32: torch.load reads tensor bytes unchecked,
    so a damaged byte inside a tensor loaded and gave embeddings off by 1e27."""
    if not zipfile.is_zipfile(path):
        return  # not an archive: torch.load says what it is
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except OSError:
        raise
    except Exception as error:  # a damaged member header fails with many types (BadZipFile, zlib.error, ...)
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(error).__name__}: {_first_sentence(error)})") from error
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint: {damaged} fails its CRC check (damaged bytes)")


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, loaded with weights_only (tensors and plain data only).

    Every way a file can fail (missing, unreadable, empty, cut short, corrupt or damaged inside a
    tensor, holding code, not mucon's) raises ``CheckpointError`` with a one-line message naming the file.
    """
    path = Path(path)
    try:
        empty = path.stat().st_size == 0
        if not empty:
            _check_archive(path)
        checkpoint = None if empty else torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as error:  # a folder, no permission, a failing disk
        raise CheckpointError(f"{path}: cannot read the checkpoint: {error.strerror or error}") from error
    except Exception as error:  # torch.load fails on damaged files with many types (RuntimeError, EOFError, ...)
        raise _unreadable(path, error) from error
    if empty:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if not isinstance(checkpoint, dict) or "mucon" not in checkpoint:
        raise CheckpointError(f"{path}: not a mucon checkpoint (no 'mucon' entry with its config)")
    return checkpoint


def load(path: str | Path, device: str | torch.device = "cpu"):
    """The trained method of a checkpoint, in eval mode; its `.encoder` gives frames and embeddings.

    The method is rebuilt from the config stored in the checkpoint, so a checkpoint is all one needs.
    """
    return method_from_checkpoint(read_checkpoint(path), path).to(device).eval()


def method_from_checkpoint(checkpoint: dict, path: str | Path):
    """The trained method of a checkpoint already read (``read_checkpoint``), on the CPU in eval mode:
    a caller that also needs the checkpoint's config reads the file once."""
    from mucon.methods import method_class

    broken = next((name for name, tensor in checkpoint["state_dict"].items()
                   if tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)
    if broken is not None:  # it embeds every clip to NaN; evaluate failed with "SVD did not converge"
        raise CheckpointError(f"{path}: the checkpoint holds NaN or infinite weights ({broken}); "
                              "it cannot embed: use an earlier checkpoint of the run")
    config = from_dict(RunConfig, checkpoint["mucon"]["config"])
    trained_with = checkpoint["mucon"].get("user_code", {})
    try:
        method = method_class(config.method_name)(config, label_vocabulary=checkpoint["mucon"]["label_vocabulary"])
    except UserCodeError as error:  # the user's own method, encoder or head is not importable here
        raise CheckpointError(f"{path}: its code is missing: {error}; it was trained with "
                              f"{package_of(error.path)} version {trained_with.get(error.path, 'unknown')}") from None
    for import_path, version in recorded_code(config).items():
        if trained_with.get(import_path, version) != version:  # the weights may not mean what the code now reads
            rank_zero_warn(f"{path}: {import_path} was trained with {package_of(import_path)} version "
                           f"{trained_with[import_path]}, and is loaded with version {version}")
    method.load_state_dict(checkpoint["state_dict"])
    return method.eval()
