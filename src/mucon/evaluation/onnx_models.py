"""An exported model as one more ``Encoder`` row: ``onnx:FILE`` runs a file written by ``mucon export --onnx``
through onnxruntime, so a user can check that what they ship scores what its checkpoint scores.

Its frames are the file's ``frames`` output and its clip embedding the file's ``embedding`` output, so the
pooling is exactly the exported one; rate, window, shortest input and D come from the file's metadata.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from mucon.encoders import Encoder
from mucon.export import INPUT_NAME, ExportError, ExportMetadata, file_sha256

ONNX_PREFIX = "onnx:"


def is_onnx_source(model) -> bool:
    return isinstance(model, str) and model.startswith(ONNX_PREFIX)


class OnnxEncoder(Encoder):
    """An onnxruntime session over an exported encoder; it computes on the CPU whatever device evaluate uses."""

    pooling = "mean"  # unused: ``embed`` is the file's own pooled output

    def __init__(self, path: str | Path):
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise ExportError("running an ONNX model needs onnxruntime: pip install 'mucon[export]'") from error
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file")
        self.sha256 = file_sha256(self.path)
        self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        try:
            self.metadata = ExportMetadata.from_strings(self.session.get_modelmeta().custom_metadata_map)
        except TypeError as error:  # a field missing: an ONNX file that mucon export did not write
            raise ValueError(f"{self.path}: not written by mucon export (its metadata lacks {error})") from error
        self.sample_rate = self.metadata.sample_rate
        self.input_samples = self.metadata.input_samples
        self.dim = self.metadata.embedding_dim

    @property
    def min_input_samples(self) -> int:
        return self.metadata.min_input_samples

    def describe(self) -> str:
        """The report's source of the row: the file, its SHA-256 and the checkpoint it was exported from."""
        return (f"ONNX file {self.path} (sha256 {self.sha256}), exported by mucon {self.metadata.mucon_version} "
                f"from checkpoint sha256 {self.metadata.checkpoint_sha256}")

    def _run(self, output: str, waveform: Tensor) -> Tensor:
        self.check_input(waveform)
        feed = {INPUT_NAME: waveform.detach().to("cpu", torch.float32).numpy()}
        [result] = self.session.run([output], feed)
        return torch.from_numpy(result).to(waveform.device)

    def forward(self, waveform: Tensor) -> Tensor:
        """``[B, samples]`` -> the file's ``frames`` ``[B, T, D]``."""
        return self._run("frames", waveform)

    def embed(self, waveform: Tensor, level: Tensor | None = None) -> Tensor:
        """``[B, samples]`` -> the file's ``embedding`` ``[B, D]``: an exported encoder takes each input as its
        own item, so ``level`` is not given to it (``scales_by_item_level`` is False)."""
        return self._run("embedding", waveform)

    def extra_repr(self) -> str:  # part of the embedding cache's key (model_fingerprint), so it names the file's hash
        return f"{self.describe()}, sample_rate={self.sample_rate}, input_samples={self.input_samples}"


def load_onnx_encoder(source: str) -> OnnxEncoder:
    """``onnx:FILE`` (or a plain path) as an ``OnnxEncoder``."""
    return OnnxEncoder(source.removeprefix(ONNX_PREFIX))
