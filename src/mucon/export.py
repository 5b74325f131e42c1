"""An encoder exported with its front end, to ONNX or a ``torch.export`` program, so that embeddings can be
computed in a service, a plugin or a browser without mucon.

The exported model maps waveforms ``[B, samples]`` (float32 at the encoder's sample rate, batch and length
dynamic) to ``embedding [B, D]`` and ``frames [B, T, D]``, exactly ``encoder.embed`` and ``encoder``. An encoder
that scales by its item's level (COLA, MSCOL) takes a second input, ``level [B]``: the RMS of the whole item
each waveform was cut from, as ``embed(waveform, level)`` (a clip's own RMS takes it as its own item).
Each file carries ``ExportMetadata``: ONNX as metadata_props, a ``.pt2`` as its extra file ``mucon.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
import logging
import warnings
import weakref
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim

from mucon import __version__
from mucon.audio.frontend import STFTS, Stft
from mucon.encoders import Encoder
from mucon.encoders.base import smallest_length_with_frames

INPUT_NAME = "waveform"
LEVEL_NAME = "level"  # the second input of an encoder that scales by its item's level
OUTPUT_NAMES = ("embedding", "frames")
METADATA_FILE = "mucon.json"
ONNX_OPSET = 20  # the first with DFT and STFT as the exporter writes them


class ExportError(ValueError):
    """An encoder the exporters cannot trace or translate; the message names the module or op, in one line."""


@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """What a user of the exported file needs to feed it and to know where it came from."""

    sample_rate: int
    input_samples: int  # the crop length the encoder was trained on
    min_input_samples: int  # the shortest input the exported model accepts
    embedding_dim: int
    mucon_version: str
    checkpoint_sha256: str
    stft: str  # how the front end computes its spectrum: "fft" or "conv"
    inputs: str = INPUT_NAME
    outputs: str = ",".join(OUTPUT_NAMES)

    @property
    def takes_level(self) -> bool:
        return LEVEL_NAME in self.inputs.split(",")

    def as_strings(self) -> dict[str, str]:
        return {field.name: str(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> ExportMetadata:
        types = {field.name: field.type for field in dataclasses.fields(cls)}
        return cls(**{name: int(value) if types[name] == "int" else value
                      for name, value in values.items() if name in types})


class EmbeddingModel(nn.Module):
    """The exported computation: waveform (and item level) -> (``encoder.embed``, ``encoder`` frames)."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, waveform: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        frames = self.encoder(waveform) if level is None else self.encoder(waveform, level)
        return self.encoder.pool(frames), frames


def input_feed(metadata: ExportMetadata, waveform: Tensor, level: Tensor | None = None) -> dict[str, Tensor]:
    """The exported model's inputs by name: ``level``, for a model that takes it, each waveform's own RMS where
    not given (each clip its own item, as the encoder's ``embed`` without ``level``)."""
    from mucon.evaluation.windows import track_level

    feed = {INPUT_NAME: waveform.float()}
    if metadata.takes_level:
        feed[LEVEL_NAME] = (track_level(waveform) if level is None else level).float()
    return feed


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def with_stft(encoder: Encoder, stft: Stft) -> Encoder:
    """A copy of ``encoder`` whose front end computes its spectrum by ``stft`` (``"fft"`` or ``"conv"``)."""
    if stft not in STFTS:
        raise ValueError(f"stft must be one of {', '.join(STFTS)}, got {stft!r}")
    frontend = getattr(encoder, "frontend", None)
    if frontend is None or not hasattr(frontend, "use_stft"):
        if stft == "fft":
            return encoder
        raise ValueError(f"{type(encoder).__name__} has no log-mel front end whose STFT could be a convolution")
    switched = copy.deepcopy(encoder)
    switched.frontend.use_stft(stft)
    return switched


def export_program(encoder: Encoder) -> torch.export.ExportedProgram:
    """``EmbeddingModel(encoder)`` traced by ``torch.export`` with batch and length dynamic, from
    ``shortest_accepted_input`` samples up (for an encoder that scales by its item's level, with a ``level``
    input of the same batch). A failure raises ``ExportError`` naming the innermost module traced."""
    encoder.min_input_samples  # noqa: B018 -- found by forwards, which must run before tracing, not inside it
    model = EmbeddingModel(exportable(encoder)).eval()
    batch = Dim("batch", min=1)
    # Dim.DYNAMIC: a named Dim("samples", min=...) fails on the guards a frame count of 1 adds
    inputs = [(torch.zeros(2, _example_samples(model.encoder)), {0: batch, 1: Dim.DYNAMIC})]
    if encoder.scales_by_item_level:
        inputs.append((torch.full((2,), 0.1), {0: batch}))
    examples, dynamic_shapes = zip(*inputs)
    with _modules_entered(model) as stack, _size_oblivious_tracing():
        try:
            return torch.export.export(model, examples, dynamic_shapes=dynamic_shapes, strict=False)
        except Exception as error:  # the exporter fails in many types; each means the same to a user
            name, module = stack[-1] if stack else ("", model)
            raise ExportError(f"cannot export: {name or 'the model'} ({type(module).__name__}) stops "
                              f"torch.export: {_first_line(error)}") from error


def _size_oblivious_tracing():
    """Tracing that treats a size of 1 as any other: otherwise the one-frame output of an encoder at its own
    crop length (SampleCNN's 59049 samples, PEMR's CNN) is guarded against, and the program refuses that
    length. The example traced still gives two frames, so that no size of it is 1."""
    from torch.fx.experimental import _config as shape_config

    return shape_config.patch(backed_size_oblivious=True)


class MaxPool1dThrough2d(nn.MaxPool1d):
    """``nn.MaxPool1d`` computed by ``max_pool2d`` over a unit height, equal to it: torch's ``max_pool1d``
    reads its input's length as a plain int, which fixes the length of an exported program to the example's."""

    def forward(self, input: Tensor) -> Tensor:
        def along_time(value, height: int) -> tuple[int, int]:
            return height, value[0] if isinstance(value, tuple) else value

        return torch.nn.functional.max_pool2d(
            input.unsqueeze(-2), along_time(self.kernel_size, 1), along_time(self.stride, 1),
            along_time(self.padding, 0), along_time(self.dilation, 1), ceil_mode=self.ceil_mode).squeeze(-2)


def exportable(encoder: Encoder) -> Encoder:
    """``encoder``, or a copy of it computing the same with the modules ``torch.export`` cannot keep dynamic
    replaced (``MaxPool1dThrough2d``)."""
    def replaceable(module: nn.Module) -> bool:
        return type(module) is nn.MaxPool1d and not module.return_indices

    if not any(replaceable(module) for module in encoder.modules()):
        return encoder
    replaced = copy.deepcopy(encoder)
    for module in replaced.modules():
        if replaceable(module):
            module.__class__ = MaxPool1dThrough2d
    return replaced


@torch.no_grad()
def _example_samples(encoder: Encoder) -> int:
    """The length traced: the crop length, doubled until it gives two frames, so that tracing sees no frame count
    of 1 (a forward or two, where finding the shortest such length takes a bisection)."""
    length = max(encoder.input_samples, encoder.min_input_samples)
    while encoder(torch.zeros(1, length)).shape[1] < 2:
        length *= 2
    return length


def _two_frame_samples(encoder: Encoder) -> int:
    """The fewest samples that give two frames, found by bisection over forwards once per encoder."""
    if encoder not in _TWO_FRAME_SAMPLES:
        _TWO_FRAME_SAMPLES[encoder] = smallest_length_with_frames(encoder.eval(), min_frames=2, frame_axis=1)
    return _TWO_FRAME_SAMPLES[encoder]


_TWO_FRAME_SAMPLES: weakref.WeakKeyDictionary[Encoder, int] = weakref.WeakKeyDictionary()


def shortest_accepted_input(program: torch.export.ExportedProgram, encoder: Encoder) -> int:
    """The fewest samples ``program`` accepts: the lower bound of its length (the encoder's ``min_input_samples``,
    or more where a kernel asks more: EfficientNet's convolutions want two spectrogram frames), or, where the
    program refuses a single frame there (a guard torch's own transpose adds, in SmallCNN), two frames' worth."""
    waveform = next(node for node in program.graph.nodes if node.name == program.graph_signature.user_inputs[0])
    length = waveform.meta["val"].shape[1]
    lower = length if isinstance(length, int) else int(program.range_constraints[length.node.expr].lower)
    try:
        program.module()(*(torch.zeros(1, lower), torch.ones(1))[:len(program.graph_signature.user_inputs)])
    except (AssertionError, RuntimeError):  # a guard of the program failing
        return max(lower, _two_frame_samples(encoder))
    return lower


def export_onnx(program: torch.export.ExportedProgram, out: str | Path, metadata: ExportMetadata) -> None:
    """``program`` (``export_program``) as an ONNX file (opset 20) with ``metadata`` as its metadata_props."""
    if importlib.util.find_spec("onnxscript") is None:
        raise ExportError("exporting to ONNX needs onnx and onnxscript: pip install 'mucon[export]'")
    try:
        with _quiet_onnx_exporter():
            onnx_program = torch.onnx.export(program, (), input_names=metadata.inputs.split(","),
                                             output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET, dynamo=True,
                                             verbose=False)
    except Exception as error:  # mostly a torch op without an ONNX translation
        raise ExportError(f"cannot export to ONNX: {_onnx_failure(error)}") from error
    onnx_program.model.metadata_props.update(metadata.as_strings())
    _write_onnx(onnx_program.model_proto, Path(out))  # model_proto: serialised from .model at each access


def export_torch(program: torch.export.ExportedProgram, out: str | Path, metadata: ExportMetadata) -> None:
    """``program`` (``export_program``) saved as a ``.pt2`` with ``metadata`` as its ``mucon.json``."""
    with warnings.catch_warnings():  # about weights off the CPU, which an exported encoder's never are
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        torch.export.save(program, str(out), extra_files={METADATA_FILE: json.dumps(metadata.as_strings())})


def load_torch(path: str | Path) -> tuple[torch.export.ExportedProgram, ExportMetadata]:
    """A ``.pt2`` written by ``export_torch`` and its metadata."""
    extra_files = {METADATA_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra_files)
    if not extra_files[METADATA_FILE]:
        raise ValueError(f"{path}: not written by mucon export (it has no {METADATA_FILE})")
    return program, ExportMetadata.from_strings(json.loads(extra_files[METADATA_FILE]))


def onnx_metadata(path: str | Path) -> ExportMetadata:
    """The metadata of an ONNX file written by ``export_onnx``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ExportMetadata.from_strings({entry.key: entry.value for entry in model.metadata_props})


def program_metadata(program: torch.export.ExportedProgram, encoder: Encoder, checkpoint_sha256: str,
                     stft: Stft) -> ExportMetadata:
    return ExportMetadata(sample_rate=encoder.sample_rate, input_samples=encoder.input_samples,
                          min_input_samples=shortest_accepted_input(program, encoder), embedding_dim=encoder.dim,
                          mucon_version=__version__, checkpoint_sha256=checkpoint_sha256, stft=stft,
                          inputs=",".join([INPUT_NAME, LEVEL_NAME] if encoder.scales_by_item_level else [INPUT_NAME]))


def export_checkpoint(checkpoint: str | Path, onnx_out: str | Path | None = None,
                      torch_out: str | Path | None = None, stft: Stft = "fft") -> ExportMetadata:
    """The encoder of a mucon checkpoint exported to the files given; returns the metadata they carry."""
    from mucon.checkpoint import method_from_checkpoint, read_checkpoint

    if onnx_out is None and torch_out is None:
        raise ValueError("nothing to export: give --onnx OUT.onnx, --torch OUT.pt2 or both")
    encoder = with_stft(method_from_checkpoint(read_checkpoint(checkpoint), checkpoint).encoder.eval(), stft)
    program = export_program(encoder)
    metadata = program_metadata(program, encoder, file_sha256(checkpoint), stft)
    if onnx_out is not None:
        export_onnx(program, onnx_out, metadata)
    if torch_out is not None:
        export_torch(program, torch_out, metadata)
    return metadata


def _write_onnx(model_proto, out: Path) -> None:
    from mucon.files import write_atomically

    write_atomically(out, lambda handle: handle.write(model_proto.SerializeToString()))


def _onnx_failure(error: BaseException) -> str:
    """The innermost cause of an ONNX translation failure in one line (the exporter's own first line only says
    which step failed), after the module holding the graph node it failed on."""
    failed_node = None
    while True:
        failed_node = _node_in_traceback(error) or failed_node
        if error.__cause__ is None:
            break
        error = error.__cause__
    cause = _first_line(error)
    stack = list(failed_node.meta.get("nn_module_stack", {}).values()) if failed_node is not None else []
    if not stack:
        return cause
    path, module_type = stack[-1]
    module_name = getattr(module_type, "__name__", str(module_type).rsplit(".", 1)[-1])
    return f"{path.removeprefix('L__self__.') or 'the model'} ({module_name}) stops it: {cause}"


def _node_in_traceback(error: BaseException) -> torch.fx.Node | None:
    """The graph node a translation step was working on when it raised (the innermost frame's ``node``):
    the decomposed graph the exporter translates is not returned on failure, so this is where it is."""
    found, frame = None, error.__traceback__
    while frame is not None:
        candidate = frame.tb_frame.f_locals.get("node")
        found = candidate if isinstance(candidate, torch.fx.Node) else found
        frame = frame.tb_next
    return found


@contextlib.contextmanager
def _quiet_onnx_exporter():
    """Without the exporter's notes that a user can do nothing about: torchvision's ops skipped (mucon uses
    none) and a deprecation inside torch's pytree code."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _modules_entered:
    """Within it, the (qualified name, module) of every module whose forward is running, innermost last:
    where tracing fails, the last entry is the module that stopped it."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.stack: list[tuple[str, nn.Module]] = []
        self.handles = []

    def __enter__(self) -> list[tuple[str, nn.Module]]:
        for name, module in self.model.named_modules():
            if module is self.model:
                continue
            self.handles.append(module.register_forward_pre_hook(
                lambda module, args, name=name: self.stack.append((name, module))))
            self.handles.append(module.register_forward_hook(self._left))
        return self.stack

    def _left(self, module: nn.Module, args, output) -> None:
        self.stack.pop()  # returning it would replace the module's output

    def __exit__(self, *exc_info) -> None:
        for handle in self.handles:
            handle.remove()
