"""Typed run configuration: YAML presets + command-line overrides -> dataclasses, and back to YAML.

Every run writes its resolved config next to its checkpoint, and `mucon pretrain --config` that file
re-runs it. Unknown keys and values of the wrong type are errors that name the key, so a typo never
trains silently with a default (SemiSupCon's release trained pure self-supervision that way).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mucon.files import write_atomically


PRESETS_DIR = Path(__file__).parent / "configs"
RUN_INFO = "mucon.json"  # written into every run folder, next to the run's config.yaml


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: bounds included unless open; NaN and infinity never."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        return math.isfinite(value) and not (
            self.low is not None and (value < self.low or (self.low_open and value == self.low))
            or self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE, AT_LEAST_ONE, NON_NEGATIVE = Range(0, low_open=True), Range(1), Range(0)
FRACTION, OPEN_FRACTION = Range(0, 1), Range(0, 1, low_open=True, high_open=True)

# The range of every numeric setting, the run's and each method's (`method.*`), in one place: a value
# outside it is refused naming the setting, before a run starts (a temperature of 0 trained NaN weights
# and exited 0; -1 trained). tests/test_config.py checks that no numeric setting is missing here. A user's
# own method declares its settings' ranges on their fields: ``field(default=0.1, metadata={"range": POSITIVE})``.
SETTING_RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1),  # what Lightning's seed_everything accepts
    "data.sample_rate": AT_LEAST_ONE,
    "data.batch_size": AT_LEAST_ONE,
    "data.crops_per_item": AT_LEAST_ONE,
    "data.num_workers": NON_NEGATIVE,
    "optimizer.lr": POSITIVE,
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.halve_lr_at_fraction": OPEN_FRACTION,
    "trainer.max_steps": AT_LEAST_ONE,
    "trainer.num_nodes": AT_LEAST_ONE,
    "trainer.accumulate_grad_batches": AT_LEAST_ONE,
    "trainer.gradient_clip_val": NON_NEGATIVE,
    "trainer.log_every_n_steps": AT_LEAST_ONE,
    "trainer.checkpoint_every_n_steps": AT_LEAST_ONE,
    "trainer.checkpoint_every_minutes": POSITIVE,
    "trainer.keep_checkpoints": AT_LEAST_ONE,
    "method.crop_samples": AT_LEAST_ONE,
    "method.segment_samples": AT_LEAST_ONE,
    "method.chunk_samples": AT_LEAST_ONE,
    "method.views": AT_LEAST_ONE,
    "method.chunks": AT_LEAST_ONE,
    "method.temperature": POSITIVE,
    "method.present_only_probability": FRACTION,
    "method.presence_threshold": NON_NEGATIVE,
    "method.labelled_share": FRACTION,
    "method.labelled_keep": FRACTION,
    "method.min_shared_labels": AT_LEAST_ONE,
    "method.severity": NON_NEGATIVE,
    "method.mask_ratio": FRACTION,
    "method.off_diagonal_weight": NON_NEGATIVE,
    "method.negative_weight": NON_NEGATIVE,
    "method.prediction_weight": NON_NEGATIVE,
    "method.prediction_share": FRACTION,
    "method.huber_delta": POSITIVE,
    "method.transformer_layers": AT_LEAST_ONE,
    "method.transformer_heads": AT_LEAST_ONE,
    "method.feedforward_dim": AT_LEAST_ONE,
    "method.dropout": Range(0, 1, high_open=True),
    "method.prediction_hidden_dim": AT_LEAST_ONE,
    "method.gamma": Range(0, 1, low_open=True),  # SogCLR: the batch's weight in each moving denominator
}


def check_ranges(settings: Any, section: str) -> None:
    """Refuse, in one line naming it, any numeric setting of dataclass ``settings`` outside its range."""
    for f in dataclasses.fields(settings):
        name, value = f"{section}.{f.name}" if section else f.name, getattr(settings, f.name)
        allowed = f.metadata.get("range", SETTING_RANGES.get(name))  # a user method's own: field(metadata=...)
        for number in value if isinstance(value, list) else [value]:
            if allowed and isinstance(number, (int, float)) and not isinstance(number, bool) and number not in allowed:
                raise ConfigError(f"{name}={number!r}: must be {allowed}")


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file, or a shipped preset by name (`clmr`, `clmr-cpu`, ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    raise ConfigError(f"{name_or_path}: neither a config file nor a preset; presets: {', '.join(preset_names())}")


@dataclass
class ModuleConfig:
    """A registered building block (encoder or head) by name, with its keyword arguments."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    store: str | None = None
    sample_rate: int = 22050
    batch_size: int = 48
    crops_per_item: int = 1  # clips cut from each item per epoch: more than 1 lets a few long tracks fill batches
    num_workers: int = 2
    label_column: str | None = None  # a labels.csv column; ';' separates several labels of one item
    label_separator: str = ";"
    labelled_column: str | None = None  # 1/0 flags: "labelled with no tag" differs from "unlabelled";
    # without it an item counts as labelled when its label cell is not empty


@dataclass
class OptimizerConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    halve_lr_at_fraction: float | None = None  # MSCOL halves the rate halfway: 0.5


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    max_time: str | None = None  # "DD:HH:MM:SS": stop at whichever of max_steps and max_time comes first
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"  # Lightning's values, or "auto": bf16-mixed where the device has bf16, else 32-true
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 100
    checkpoint_every_minutes: float | None = None  # also save last.ckpt this often: slow CPU steps lose little
    keep_checkpoints: list[int] = field(default_factory=list)  # steps whose checkpoint stays as step-N.ckpt
    progress_bar: bool = True
    compile: bool = False  # torch.compile the encoder's network for training (needs a C++ compiler on CPU)


@dataclass
class RunConfig:
    method: dict[str, Any]  # `name` picks the method; the rest is checked against that method's Params
    encoder: ModuleConfig
    head: ModuleConfig = field(default_factory=lambda: ModuleConfig("projection"))
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    run_dir: str = "runs/run"
    seed: int = 0

    def __post_init__(self):
        if "sample_rate" in self.encoder.params:
            raise ConfigError("encoder.params.sample_rate: a run states its sample rate once, as data.sample_rate")
        check_ranges(self, "")
        for section in ("data", "optimizer", "trainer"):
            check_ranges(getattr(self, section), section)
        if self.trainer.max_time is not None and not re.fullmatch(r"\d+:\d+:\d+:\d+", self.trainer.max_time):
            raise ConfigError(f"trainer.max_time={self.trainer.max_time!r}: must be DD:HH:MM:SS, e.g. 00:12:00:00")

    @property
    def method_name(self) -> str:
        return self.method["name"]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is none of {annotation}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    raise ConfigError(f"{where}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass `cls` from a mapping, checking names and types recursively."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing key {f.name}")
    return cls(**values)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested mapping, in place."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key.sub=value")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as error:  # a !!python/object tag included: safe_load builds no object, runs nothing
            problem = str(getattr(error, "problem", None) or error).splitlines()[0]
            raise ConfigError(f"override {override!r}: the value is not plain YAML ({problem})") from None
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a preset (by name or file) or a run's saved config.yaml, apply overrides, and check it.

    The folder of a run's config.yaml is the run (unless an override sets run_dir): a run folder copied
    or moved elsewhere resumes into itself, never into the folder it was copied from.
    """
    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of sections (method, encoder, data, ...), "
                          f"got {reprlib.repr(data)}")
    if path.name == "config.yaml" and (path.parent / RUN_INFO).is_file():
        data["run_dir"] = os.path.abspath(path.parent)
    apply_overrides(data, overrides or [])
    config = from_dict(RunConfig, data, where=str(path))
    if "name" not in config.method:
        raise ConfigError(f"{path}: method.name is missing")
    return config


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write ``path`` whole or not at all: a run killed mid-save must not leave a config that reads wrong."""
    write_atomically(path, lambda handle: handle.write(yaml.safe_dump(config.to_dict(), sort_keys=False)), mode="w")
