"""`mucon demo`: the whole loop on the built-in corpus, on a laptop CPU.

Build (once, cached) the corpus, prepare its training mixtures as a store, pretrain every method that
has a CPU preset, then evaluate each next to the baselines on the corpus tasks and print one comparison
table. Everything lands in one folder; the corpus and store are cached across runs in MUCON_CACHE
(default ~/.cache/mucon).

The budget is counted in steps, not seconds: each CPU preset's ``max_steps`` is its share of
``PRESET_BUDGET_MINUTES`` (on 2 CPU cores in bf16), and the demo trains ``--budget-minutes`` of it
(``DEMO_BUDGET_MINUTES`` by default): every preset's steps scaled by budget / PRESET_BUDGET_MINUTES. A
run that stopped on a clock would train a different number of steps whenever the machine is busier,
and the same seed would give another table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mucon.config import RunConfig, load_config, preset_names
from mucon.files import cache_root
from mucon.precision import resolve_precision
from mucon.step_timing import StepTiming, time_training_step

CORPUS_SAMPLE_RATE = 22050
# Pretraining minutes (all CPU presets together, 2 CPU cores, bf16) that the presets' own max_steps add up to.
PRESET_BUDGET_MINUTES = 16.0
# The demo's default share of that: 5 minutes of float32 pretraining on 2 cores with AVX-512, 11 on 2 cores
# with AVX2 only (no bf16, where the whole demo took 28 minutes), less where the CPU has bf16. Evaluation
# takes longer than pretraining: see the README's times.
DEMO_BUDGET_MINUTES = 3.0
# The robustness conditions the demo's report shows: evaluate's quick preset (see
# robustness.CORRUPTION_PRESETS): SemiSupCon's pretraining chain and two everyday corruptions (a room,
# which CLMR and PEMR pretrain with and the report marks seen for them, and a low-bitrate codec, which
# no preset saw), at a clear and at a harsh severity; the full list would cost more than pretraining here.
DEMO_CORRUPTIONS = "quick"


def budget_steps(max_steps: int, budget_minutes: float) -> int:
    """A preset's steps under a demo budget: its own max_steps scaled by budget / PRESET_BUDGET_MINUTES."""
    if budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {budget_minutes}")
    return max(1, round(max_steps * budget_minutes / PRESET_BUDGET_MINUTES))


def select_presets(methods: list[str] | None) -> list[str]:
    """The demo's presets, or those of the named methods or presets (``--methods clmr mscol-drums-cpu``)."""
    from mucon.methods import METHODS

    presets = demo_presets()
    if not methods:
        return presets
    chosen = [preset for preset in presets
              if preset in methods or load_config(preset).method_name in methods]
    unknown = [name for name in methods if name not in presets and name not in METHODS]
    if unknown or not chosen:
        raise ValueError(f"--methods: {', '.join(unknown or methods)} names no demo preset; "
                         f"choose from the methods {', '.join(METHODS)} or the presets {', '.join(presets)}")
    return chosen


def demo_presets() -> list[str]:
    """Every shipped CPU preset (``*-cpu``) of a registered method: by method in registration order, each
    method's ``<name>-cpu`` first, then its variants (e.g. a source-targeted ``mscol-drums-cpu``) by name."""
    from mucon.methods import METHODS

    by_method: dict[str, list[str]] = {}
    for preset in preset_names():
        if preset.endswith("-cpu"):
            by_method.setdefault(load_config(preset).method_name, []).append(preset)
    return [preset for name in METHODS
            for preset in sorted(by_method.get(name, []), key=lambda preset: (preset != f"{name}-cpu", preset))]


@dataclass
class DemoTimes:
    corpus: float = 0.0
    prepare: float = 0.0
    pretrain: float = 0.0
    evaluate: float = 0.0

    def summary(self) -> str:
        total = self.corpus + self.prepare + self.pretrain + self.evaluate
        return (f"time: corpus {self.corpus / 60:.1f} min, prepare {self.prepare / 60:.1f} min, pretrain "
                f"{self.pretrain / 60:.1f} min, evaluate {self.evaluate / 60:.1f} min, total {total / 60:.1f} min")


def demo_config(preset: str, corpus_dir: Path, out_dir: Path, budget_minutes: float, seed: int, progress: bool,
                overrides: list[str] | None) -> RunConfig:
    """The config the demo trains ``preset`` with: its steps under the budget, the corpus's cached training
    store at the preset's rate, a run folder in ``out_dir``, then the caller's overrides."""
    from mucon.audio.store_format import FORMAT_VERSION

    config = load_config(preset)
    store = cache_root() / "stores" / f"{corpus_dir.name}-train-{config.data.sample_rate}-format{FORMAT_VERSION}"
    return load_config(preset, [
        f"data.store={store}", f"run_dir={out_dir / 'runs' / preset}", f"seed={seed}",
        f"trainer.max_steps={budget_steps(config.trainer.max_steps, budget_minutes)}",
        f"trainer.progress_bar={str(progress).lower()}",
        *(overrides or []),
    ])


@dataclass(frozen=True)
class PresetPlan:
    preset: str
    steps: int
    timing: StepTiming


def plan_demo(configs: dict[str, RunConfig]) -> list[PresetPlan]:
    """Each preset's steps and the time of its step on the device it will train on, from a few steps on a
    synthetic batch (compiled where the preset compiles: the first step then holds the compile, which
    inductor caches on disk for the run itself)."""
    return [PresetPlan(preset, config.trainer.max_steps, time_training_step(config, device=training_device(config)))
            for preset, config in configs.items()]


def training_device(config: RunConfig) -> str:
    """Where Lightning will train ``config``: a GPU where one is visible and the accelerator allows it."""
    gpu = config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "cuda" if gpu else "cpu"


def plan_text(plans: list[PresetPlan], budget_minutes: float) -> str:
    device = "a GPU" if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    auto, why = resolve_precision("auto", "cuda" if torch.cuda.is_available() else "cpu")
    lines = [f"plan: pretrain {len(plans)} presets on {device}; precision auto is {auto} here: {why}",
             f"  {'preset':<18}{'steps':>7}{'precision':>12}{'compiled':>10}{'first step':>12}{'s/step':>8}{'minutes':>9}"]
    for plan in plans:
        timing = plan.timing
        lines.append(f"  {plan.preset:<18}{plan.steps:>7}{timing.precision:>12}{'yes' if timing.compiled else 'no':>10}"
                     f"{timing.first_step_seconds:>11.1f}s{timing.seconds_per_step:>8.2f}{timing.minutes(plan.steps):>9.1f}")
    total = sum(plan.timing.minutes(plan.steps) for plan in plans)
    lines.append(f"  pretraining: about {total:.1f} min here (timed steps; loading batches adds a little), then "
                 f"evaluation; --budget-minutes {budget_minutes:g} gives these steps, twice the budget twice the steps")
    return "\n".join(lines)


def embedding_precision(configs) -> str:
    """Evaluation embeds at the precision every preset trained at (``trainer.precision=32-true`` makes the
    whole demo float32, as on a CPU without bf16), or at evaluate's own ``auto`` where they differ."""
    precisions = {resolve_precision(config.trainer.precision, training_device(config))[0] for config in configs}
    return precisions.pop() if len(precisions) == 1 else "auto"


def run_demo(out_dir: str | Path = "mucon-demo", *, budget_minutes: float = DEMO_BUDGET_MINUTES,
             corpus_dir: str | Path | None = None,
             corpus_size: str = "default", presets: list[str] | None = None, seed: int = 0,
             robustness_corruptions: str | tuple[str, ...] = DEMO_CORRUPTIONS,
             robustness_severities: tuple[float, ...] | None = None, overrides: list[str] | None = None,
             progress: bool = True) -> dict:
    """Run the demo and return the evaluation results; `budget_minutes` scales every preset's steps.

    `presets` defaults to every CPU preset; `overrides` (key.sub=value) apply to every preset, after the
    demo's own settings.
    """
    from mucon.audio.store_writer import prepare_store
    from mucon.data.corpus import build_corpus
    from mucon.data.corpus.build import FORMAT as CORPUS_FORMAT
    from mucon.evaluation import evaluate
    from mucon.training import LAST_CHECKPOINT, pretrain

    out_dir = Path(out_dir)
    presets = presets or demo_presets()
    times = DemoTimes()
    # The corpus format is in the name: a cache left by an older mucon is not resumed (build_corpus refuses it).
    cached = f"corpus-{corpus_size}-{CORPUS_SAMPLE_RATE}-seed{seed}-format{CORPUS_FORMAT}"
    corpus_dir = Path(corpus_dir) if corpus_dir else cache_root() / cached
    configs = {preset: demo_config(preset, corpus_dir, out_dir, budget_minutes, seed, progress, overrides)
               for preset in presets}
    print(plan_text(plan_demo(configs), budget_minutes))

    started = time.time()
    print(f"[1/4] corpus: {corpus_dir}")
    print(build_corpus(corpus_dir, size=corpus_size, sample_rate=CORPUS_SAMPLE_RATE, seed=seed, progress=progress).summary())
    times.corpus = time.time() - started

    checkpoints = {}
    for number, (preset, config) in enumerate(configs.items(), 1):
        started = time.time()
        print(f"[2/4] store of the training split at {config.data.sample_rate} Hz: {config.data.store}")
        # pretraining never hears a test piece
        print(prepare_store(corpus_dir, config.data.store, config.data.sample_rate, splits=["train"],
                            progress=progress).summary())
        times.prepare += time.time() - started
        started = time.time()
        print(f"[3/4] pretraining {preset} ({number}/{len(presets)}): {config.trainer.max_steps} steps")
        last = Path(config.run_dir) / LAST_CHECKPOINT
        checkpoints[preset] = pretrain(config, resume=last.exists())
        times.pretrain += time.time() - started

    started = time.time()
    print("[4/4] evaluating every model and the baselines on the corpus tasks")
    results = evaluate(checkpoints, [corpus_dir], out_dir / "report", robustness=True, seed=seed,
                       corruptions=robustness_corruptions, severities=robustness_severities,
                       precision=embedding_precision(configs.values()), progress=progress)
    times.evaluate = time.time() - started
    print(times.summary())
    print(f"report: {out_dir / 'report' / 'results.md'}")
    return results
