"""`mucon demo`: the whole loop on the built-in corpus, on a laptop CPU.

Build (once, cached) the corpus, prepare its training mixtures as a store, pretrain every method that
has a CPU preset, then evaluate each next to the baselines on the corpus tasks and print one comparison
table. Everything lands in one folder; the corpus and store are cached across runs in MUCON_CACHE
(default ~/.cache/mucon).

The budget is counted in steps, not seconds: each CPU preset's ``max_steps`` is its share of
``DEMO_BUDGET_MINUTES`` on a 2-core CPU, and ``--budget-minutes`` scales every preset's steps. A run
that stopped on a clock would train a different number of steps whenever the machine is busier, and
the same seed would give another table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mucon.config import load_config, preset_names
from mucon.files import cache_root

CORPUS_SAMPLE_RATE = 22050
# Pretraining minutes (all CPU presets together, on 2 CPU cores) that the presets' max_steps are sized for.
DEMO_BUDGET_MINUTES = 16.0
# The robustness conditions the demo's report shows: evaluate's quick preset (see
# robustness.CORRUPTION_PRESETS): SemiSupCon's pretraining chain and two everyday corruptions (a room,
# which CLMR and PEMR pretrain with and the report marks seen for them, and a low-bitrate codec, which
# no preset saw), at a clear and at a harsh severity; the full list would cost more than pretraining here.
DEMO_CORRUPTIONS = "quick"


def budget_steps(max_steps: int, budget_minutes: float) -> int:
    """A preset's steps under a demo budget: its own max_steps scaled by budget / DEMO_BUDGET_MINUTES."""
    if budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {budget_minutes}")
    return max(1, round(max_steps * budget_minutes / DEMO_BUDGET_MINUTES))


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
    from mucon.audio.store_format import FORMAT_VERSION
    from mucon.audio.store_writer import prepare_store
    from mucon.data.corpus import build_corpus
    from mucon.data.corpus.build import FORMAT as CORPUS_FORMAT
    from mucon.evaluation import evaluate
    from mucon.training import LAST_CHECKPOINT, pretrain

    out_dir = Path(out_dir)
    presets = presets or demo_presets()
    times = DemoTimes()

    started = time.time()
    # The corpus format is in the name: a cache left by an older mucon is not resumed (build_corpus refuses it).
    cached = f"corpus-{corpus_size}-{CORPUS_SAMPLE_RATE}-seed{seed}-format{CORPUS_FORMAT}"
    corpus_dir = Path(corpus_dir) if corpus_dir else cache_root() / cached
    print(f"[1/4] corpus: {corpus_dir}")
    print(build_corpus(corpus_dir, size=corpus_size, sample_rate=CORPUS_SAMPLE_RATE, seed=seed, progress=progress).summary())
    times.corpus = time.time() - started

    checkpoints = {}
    for number, preset in enumerate(presets, 1):
        config = load_config(preset)
        rate = config.data.sample_rate
        store = cache_root() / "stores" / f"{corpus_dir.name}-train-{rate}-format{FORMAT_VERSION}"
        started = time.time()
        print(f"[2/4] store of the training split at {rate} Hz: {store}")  # pretraining never hears a test piece
        print(prepare_store(corpus_dir, store, rate, splits=["train"], progress=progress).summary())
        times.prepare += time.time() - started

        run_dir = out_dir / "runs" / preset
        config = load_config(preset, [
            f"data.store={store}", f"run_dir={run_dir}", f"seed={seed}",
            f"trainer.max_steps={budget_steps(config.trainer.max_steps, budget_minutes)}",
            f"trainer.progress_bar={str(progress).lower()}",
            *(overrides or []),
        ])
        started = time.time()
        print(f"[3/4] pretraining {preset} ({number}/{len(presets)}): {config.trainer.max_steps} steps")
        last = run_dir / LAST_CHECKPOINT
        checkpoints[preset] = pretrain(config, resume=last.exists())
        times.pretrain += time.time() - started

    started = time.time()
    print("[4/4] evaluating every model and the baselines on the corpus tasks")
    results = evaluate(checkpoints, [corpus_dir], out_dir / "report", robustness=True, seed=seed,
                       corruptions=robustness_corruptions, severities=robustness_severities, progress=progress)
    times.evaluate = time.time() - started
    print(times.summary())
    print(f"report: {out_dir / 'report' / 'results.md'}")
    return results
