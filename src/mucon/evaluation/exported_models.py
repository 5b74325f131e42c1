"""An exported model as one more ``Encoder`` row: ``onnx:FILE`` runs a file written by ``mucon export --onnx``
through onnxruntime, ``pt2:FILE`` a program written by ``mucon export --torch``, so a user can check that what
they ship scores what its checkpoint scores.

Its frames are the file's ``frames`` output and its clip embedding the file's ``embedding`` output, so the
pooling is exactly the exported one; rate, window, shortest input, D and whether it takes each clip's item
level (COLA, MSCOL) come from the file's metadata.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mucon.encoders import Encoder
from mucon.export import OUTPUT_NAMES, ExportError, ExportMetadata, file_sha256, input_feed, load_torch

ONNX_PREFIX = "onnx:"
PROGRAM_PREFIX = "pt2:"
EXPORTED_PREFIXES = (ONNX_PREFIX, PROGRAM_PREFIX)


def is_exported_source(model) -> bool:
    return isinstance(model, str) and model.startswith(EXPORTED_PREFIXES)


class ExportedEncoder(Encoder):
    """A file of ``mucon export``; subclasses run it (``_run``) on the CPU, whatever device evaluate uses."""

    pooling = "mean"  # unused: ``embed`` is the file's own pooled output
    file_kind: str  # how the report's source names the file

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such {self.file_kind}")
        self.sha256 = file_sha256(self.path)

    def _set_metadata(self, metadata: ExportMetadata) -> None:
        self.metadata = metadata
        self.sample_rate = metadata.sample_rate
        self.input_samples = metadata.input_samples
        self.dim = metadata.embedding_dim

    @property
    def min_input_samples(self) -> int:
        return self.metadata.min_input_samples

    @property
    def scales_by_item_level(self) -> bool:
        """An export of COLA or MSCOL takes each clip's item level: evaluation brings the track's."""
        return self.metadata.takes_level

    def describe(self) -> str:
        """The report's source of the row: the file, its SHA-256 and the checkpoint it was exported from."""
        return (f"{self.file_kind} {self.path} (sha256 {self.sha256}), exported by mucon {self.metadata.mucon_version} "
                f"from checkpoint sha256 {self.metadata.checkpoint_sha256}")

    def _run(self, output: str, feed: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def _output(self, output: str, waveform: Tensor, level: Tensor | None) -> Tensor:
        self.check_input(waveform)
        feed = input_feed(self.metadata, waveform.detach().cpu(), None if level is None else level.detach().cpu())
        return self._run(output, feed).to(waveform.device)

    def forward(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """``[B, samples]`` -> the file's ``frames`` ``[B, T, D]``; ``level``: as ``embed``'s."""
        return self._output("frames", waveform, level)

    def embed(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """``[B, samples]`` -> the file's ``embedding`` ``[B, D]``; ``level`` (``[B]``, each clip's item RMS) is
        given to a file that takes it, and without it each clip is its own item."""
        return self._output("embedding", waveform, level)

    def extra_repr(self) -> str:  # part of the embedding cache's key (model_fingerprint), so it names the file's hash
        return f"{self.describe()}, sample_rate={self.sample_rate}, input_samples={self.input_samples}"


class OnnxEncoder(ExportedEncoder):
    """An onnxruntime session over an ONNX file of ``mucon export``."""

    file_kind = "ONNX file"

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError as error:
            raise ExportError("running an ONNX model needs onnxruntime: pip install 'mucon[export]'") from error
        super().__init__(path)
        self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        try:
            self._set_metadata(ExportMetadata.from_strings(self.session.get_modelmeta().custom_metadata_map))
        except TypeError as error:  # a field missing: an ONNX file that mucon export did not write
            raise ValueError(f"{self.path}: not written by mucon export (its metadata lacks {error})") from error

    def _run(self, output: str, feed: dict[str, Tensor]) -> Tensor:
        [result] = self.session.run([output], {name: value.numpy() for name, value in feed.items()})
        return torch.from_numpy(result)


class ProgramEncoder(ExportedEncoder):
    """A ``torch.export`` program (``.pt2``) of ``mucon export``, run as its loaded module."""

    file_kind = "torch.export program"

    def __init__(self, path: str | Path):
        super().__init__(path)
        program, metadata = load_torch(self.path)
        self._set_metadata(metadata)
        self._program = (program.module(),)  # in a tuple, not a submodule: its weights stay on the CPU

    @torch.no_grad()
    def _run(self, output: str, feed: dict[str, Tensor]) -> Tensor:
        return self._program[0](*feed.values())[OUTPUT_NAMES.index(output)]


def load_exported_encoder(source: str) -> ExportedEncoder:
    """``onnx:FILE`` as an ``OnnxEncoder``, ``pt2:FILE`` as a ``ProgramEncoder``."""
    if source.startswith(PROGRAM_PREFIX):
        return ProgramEncoder(source.removeprefix(PROGRAM_PREFIX))
    return OnnxEncoder(source.removeprefix(ONNX_PREFIX))
