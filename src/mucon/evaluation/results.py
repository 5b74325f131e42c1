"""What ``evaluate`` found, typed: one small record per level, serialised to results.json.

results.json is the contract with everything that reads an evaluation later (``report``, the
figures, a user's notebook), so ``Results.to_json`` writes exactly its keys and order, and
``Results.from_json`` reads one back. In results.json a score and its interval sit in two parallel
trees (``scores`` and ``intervals``, ``robustness`` and ``robustness_intervals``); here they are one
``Score``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Score:
    """A figure and its bootstrap interval ``(low, high)``; a count (retrieval's queries) has none."""

    value: float | None
    interval: tuple[float | None, float | None] | None = None

    @property
    def low(self) -> float | None:
        return None if self.interval is None else self.interval[0]

    @property
    def high(self) -> float | None:
        return None if self.interval is None else self.interval[1]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A model's figure against another model's on the same resamples (``bootstrap.difference``)."""

    model: str
    difference: float | None
    interval: tuple[float | None, float | None]
    better: int

    def to_json(self) -> JSON:
        return {"model": self.model, "difference": self.difference, "interval": list(self.interval),
                "better": self.better}

    @classmethod
    def from_json(cls, data: Mapping) -> Comparison:
        return cls(data["model"], data["difference"], tuple(data["interval"]), data["better"])


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the evaluation ran: enough to repeat it."""

    seed: int
    heads: list[str]
    protocol: str
    probing: str
    protocol_recipe: dict[str, str]
    robustness: bool
    corruptions: Any  # a preset's name or a list of corruption names, as given
    severities: Any
    device: str
    precision: str
    skipped_corruptions: dict[str, str]
    bootstrap: dict[str, Any]

    def to_json(self) -> JSON:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> Settings:
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A row of the tables: what the model is and where it came from."""

    kind: str  # "pretrained", "encoder", "random-init" or "handcrafted"
    source: str
    sample_rate: int
    window_samples: int
    dim: int
    random_init_twin: str | None = None
    run: str | None = None  # a checkpoint's run and step, where training saved them
    step: int | None = None
    pretraining_augmentations: list[str] | None = None  # a checkpoint's pretraining chain's effects

    def to_json(self) -> JSON:
        data = {"kind": self.kind, "source": self.source, "sample_rate": self.sample_rate,
                "window_samples": self.window_samples, "dim": self.dim}
        if self.random_init_twin:
            data["random_init_twin"] = self.random_init_twin
        if self.run:
            data.update(run=self.run, step=self.step)
        if self.pretraining_augmentations is not None:
            data["pretraining_augmentations"] = self.pretraining_augmentations
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> ModelInfo:
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a task was and which of its items were scored."""

    type: str
    primary_metric: str
    audio_root: str
    tracks: dict[str, int]  # scored tracks per split
    classes: int
    failed: dict[str, str]  # undecodable file -> why
    also_in_train: dict[str, int]
    bootstrap: dict[str, Any]  # unit and number of units resampled
    chunks: dict[str, Any]  # the embedding setting: window cap and averaging
    benchmark: dict[str, Any] | None = None  # a benchmark task's published facts and comparability

    def to_json(self) -> JSON:
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if self.benchmark is None:
            del data["benchmark"]
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> TaskInfo:
        return cls(**data)


def _map(tree, leaf, depth: int):
    """``tree`` (nested dicts ``depth`` deep) with ``leaf`` applied to every value at that depth."""
    if depth == 0:
        return leaf(tree)
    return {key: _map(value, leaf, depth - 1) for key, value in tree.items()}


def _scores_with_intervals(scores: Mapping, intervals: Mapping, depth: int) -> dict:
    """Two parallel trees (a value, and its ``[low, high]`` where it has one) as one tree of ``Score``."""
    if depth == 0:
        return {metric: Score(value, tuple(intervals[metric]) if metric in intervals else None)
                for metric, value in scores.items()}
    return {key: _scores_with_intervals(value, intervals.get(key, {}), depth - 1) for key, value in scores.items()}


def _values(tree: Mapping, depth: int) -> dict:
    return _map(tree, lambda score: score.value, depth)


def _intervals(tree: Mapping, depth: int) -> dict:
    return _map(tree, lambda metrics: {metric: list(score.interval) for metric, score in metrics.items()
                                       if score.interval is not None}, depth)


@dataclasses.dataclass(frozen=True)
class Results:
    """An evaluation: ``scores[model][task][head][metric]`` and
    ``robustness[model][task][corruption][severity]`` are ``Score``s; ``comparisons[model][task][head]
    [metric][role]`` (role: "random-init", "baseline") are ``Comparison``s."""

    settings: Settings
    models: dict[str, ModelInfo]
    tasks: dict[str, TaskInfo]
    scores: dict[str, dict[str, dict[str, dict[str, Score]]]]
    comparisons: dict[str, dict[str, dict[str, dict[str, dict[str, Comparison]]]]]
    chance: dict[str, dict[str, float]]  # task -> what an answer ignoring the audio scores
    robustness: dict[str, dict[str, dict[str, dict[str, Score]]]]
    robustness_exposure: dict[str, dict[str, str]]  # model -> corruption -> seen, partly seen, unseen, unknown
    warnings: list[str]
    figures: list[str]  # the PNGs, relative to the report folder
    failed_models: dict[str, str] = dataclasses.field(default_factory=dict)  # model -> why it was left out

    def to_json(self) -> JSON:
        """The content of results.json (numbers as computed; ``report.write_report`` writes NaN as null)."""
        intervals = {model: {task: per_task[task] for task in self.tasks if task in per_task}
                     for model, per_task in _intervals(self.scores, 3).items()}  # in the tasks' order
        return {
            "settings": self.settings.to_json(),
            "models": {name: info.to_json() for name, info in self.models.items()},
            "tasks": {name: info.to_json() for name, info in self.tasks.items()},
            "scores": _values(self.scores, 4),
            "intervals": intervals,
            "comparisons": _map(self.comparisons, Comparison.to_json, 5),
            "chance": self.chance,
            "robustness": _values(self.robustness, 4),
            "robustness_intervals": _map(self.robustness, lambda score: list(score.interval), 4),
            "robustness_exposure": self.robustness_exposure,
            "warnings": self.warnings,
            "figures": self.figures,
            "failed_models": self.failed_models,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Results:
        """Results from the content of a results.json."""
        return cls(
            settings=Settings.from_json(data["settings"]),
            models={name: ModelInfo.from_json(info) for name, info in data["models"].items()},
            tasks={name: TaskInfo.from_json(info) for name, info in data["tasks"].items()},
            scores=_scores_with_intervals(data["scores"], data["intervals"], 3),
            comparisons=_map(data["comparisons"], Comparison.from_json, 5),
            chance=data["chance"],
            robustness=_scores_with_intervals(data["robustness"], data["robustness_intervals"], 3),
            robustness_exposure=data["robustness_exposure"],
            warnings=data["warnings"],
            figures=data["figures"],
            failed_models=data.get("failed_models", {}),  # results.json written before models could fail alone
        )
