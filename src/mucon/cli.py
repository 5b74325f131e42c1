"""The `mucon` command: one entry point with a subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from mucon import __version__


def _prepare(args: argparse.Namespace) -> int:
    from mucon.audio.io import AudioDecodeError
    from mucon.audio.store_writer import prepare_store

    try:
        report = prepare_store(
            args.audio_dir, args.store_dir, args.sample_rate,
            strict=args.strict, min_seconds=args.min_seconds, metadata=args.metadata, layout=args.layout,
            splits=args.split, stem_map=args.stem_map, num_workers=args.workers, progress=not args.quiet,
        )
    except AudioDecodeError as error:
        print(f"mucon prepare: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _separate(args: argparse.Namespace) -> int:
    from mucon.audio.separation import separate_folder

    report = separate_folder(args.in_dir, args.out_dir, args.sample_rate, separator=args.separator, model=args.model,
                             device=args.device, batch_size=args.batch_size, layout=args.layout, splits=args.split,
                             progress=not args.quiet)
    print(report.summary())
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from mucon.config import load_config
    from mucon.training import TrainingInterrupted, pretrain

    overrides = list(args.overrides)
    if args.store:
        overrides.append(f"data.store={args.store}")
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    config = load_config(args.config, overrides)
    try:
        checkpoint = pretrain(config, resume=args.resume)
    except TrainingInterrupted as stop:
        if rank_zero_only.rank == 0:
            print(f"mucon pretrain: {stop}", file=sys.stderr)
        return 128 + stop.signum  # the shell's status for a run a signal ended
    if rank_zero_only.rank == 0:  # under DDP every process returns here; one line is enough
        print(f"checkpoint: {checkpoint}")
    return 0


def _corpus_build(args: argparse.Namespace) -> int:
    from mucon.data.corpus import build_corpus
    from mucon.data.corpus.render import SoundfontMissing

    try:
        report = build_corpus(args.out_dir, size=args.size, sample_rate=args.sample_rate, seed=args.seed,
                              soundfonts=args.soundfont, progress=not args.quiet)
    except SoundfontMissing as error:
        print(f"mucon corpus build: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _corpus_plot(args: argparse.Namespace) -> int:
    from mucon.data.corpus.plot import plot_stems

    for version in args.versions:
        print(plot_stems(args.corpus_dir, version, args.out_dir / f"{version}.png"))
    return 0


def _embed(args: argparse.Namespace) -> int:
    from mucon.evaluation import embed_folder

    result = embed_folder(args.checkpoint or args.model, args.audio_dir, args.out, hop_seconds=args.hop_seconds,
                          max_windows=args.max_windows or None, batch_size=args.batch_size, device=args.device,
                          precision=args.precision, metadata=args.metadata, cache_dir=args.cache,
                          progress=not args.quiet, overwrite=args.overwrite)
    print(f"embedded {result.n_embedded} files into {result.embeddings} (rows listed in {result.index}); "
          f"failed {result.n_failed}" + (f", listed in {result.failed}" if result.n_failed else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from mucon.export import export_checkpoint

    metadata = export_checkpoint(args.checkpoint, onnx_out=args.onnx, torch_out=args.torch, stft=args.stft)
    print(f"exported {args.checkpoint} to " + " and ".join(str(path) for path in (args.onnx, args.torch) if path))
    for key, value in metadata.as_strings().items():
        print(f"  {key}: {value}")
    return 0


def _masks(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from mucon.audio.io import AudioDecodeError, load_audio
    from mucon.checkpoint import load
    from mucon.evaluation.plots import frame_mask_figure
    from mucon.files import readable_name
    from mucon.methods import PEMR

    if args.start_seconds < 0:
        raise ValueError(f"--start-seconds must be at least 0, got {args.start_seconds:g}")
    model = load(args.checkpoint)
    if not isinstance(model, PEMR):
        raise ValueError(f"{args.checkpoint}: a {model.config.method_name} checkpoint; frame masks need a pemr one")
    rate, crop = model.config.data.sample_rate, model.params.crop_samples
    start = round(args.start_seconds * rate)
    args.out.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for path in args.audio_files:
        try:
            audio = load_audio(path, rate)
        except AudioDecodeError as error:
            print(f"mucon masks: {error}", file=sys.stderr)
            return 1
        if start >= len(audio):  # the crop would be silence: a blank figure
            raise ValueError(f"{path}: --start-seconds {args.start_seconds:g} is outside the file "
                             f"({len(audio) / rate:.2f} s long)")
        clip = np.zeros(crop, dtype=np.float32)  # a file shorter than the crop is padded with silence
        piece = audio[start : start + crop]
        clip[: len(piece)] = piece
        masks = {name: value[0].numpy() for name, value in model.frame_masks(torch.from_numpy(clip)[None]).items()}
        name = path.stem if path.stem not in written else f"{path.stem}-{len(written)}"
        written.add(name)
        title = readable_name(f"{path.name} from {args.start_seconds:g} s: {args.checkpoint}")
        print(readable_name(frame_mask_figure(masks["spectrogram"], masks["importance"], masks["positive_masked"],
                                              model.encoder.frontend.hop_length / rate, title, args.out / f"{name}.png")))
    return 0


def _name_parts(checkpoint: Path) -> tuple[str, ...]:
    """RUN_DIR/checkpoints/last.ckpt reads as RUN_DIR, RUN_DIR/checkpoints/step-100.ckpt as RUN_DIR@step-100,
    any other file as its own path without the extension; names use the last parts."""
    if checkpoint.parent.name != "checkpoints":
        return (*checkpoint.parent.parts, checkpoint.stem)
    *parents, run = checkpoint.parent.parent.parts
    return (*parents, run if checkpoint.stem == "last" else f"{run}@{checkpoint.stem}")


def _model_names(checkpoints: list[str]) -> dict[str, str]:
    """A name per checkpoint: RUN_DIR/checkpoints/last.ckpt is named after its run folder, any other
    file after itself; where names clash, each takes as many parent folders as tell it apart
    (``a/run``, ``b/run``), so no checkpoint is silently merged with another."""
    resolved = [Path(path).resolve() for path in checkpoints]
    if len(set(resolved)) < len(resolved):
        twice = next(path for path, where in zip(checkpoints, resolved) if resolved.count(where) > 1)
        raise ValueError(f"{twice}: given twice as --checkpoint")
    parts = [_name_parts(path) for path in resolved]
    lengths = [1] * len(parts)
    while True:
        names = ["/".join(part[-length:]) for part, length in zip(parts, lengths)]
        clashing = [i for i, name in enumerate(names) if names.count(name) > 1]
        if not clashing:
            return dict(zip(names, checkpoints))
        if all(lengths[i] >= len(parts[i]) for i in clashing):  # e.g. run/checkpoints/last.ckpt and run.ckpt
            names = [str(path) if i in clashing else name for i, (name, path) in enumerate(zip(names, resolved))]
            return dict(zip(names, checkpoints))
        for i in clashing:
            lengths[i] += 1


def _hear_names(sources: list[str]) -> dict[str, str]:
    """A name per HEAR module: the module's, or with its weights file's stem where one module comes with
    several weights (``lab.encoder:small``), so that no row replaces another."""
    if len(set(sources)) < len(sources):
        raise ValueError(f"{next(source for source in sources if sources.count(source) > 1)}: given twice as --model")
    modules = [source.split(":")[1] for source in sources]
    weights = [Path(source.split(":", 2)[2]).stem if source.count(":") > 1 else "no weights" for source in sources]
    return {module if modules.count(module) == 1 else f"{module}:{stem}": source
            for module, stem, source in zip(modules, weights, sources)}


def _exported_names(sources: list[str]) -> dict[str, str]:
    """A name per exported file (ONNX or .pt2): its file name, or its whole path where two files share a name."""
    if len(set(sources)) < len(sources):
        raise ValueError(f"{next(source for source in sources if sources.count(source) > 1)}: given twice as --model")
    paths = [source.split(":", 1)[1] for source in sources]
    names = [Path(path).name for path in paths]
    return {name if names.count(name) == 1 else path: source for name, path, source in zip(names, paths, sources)}


def _evaluate(args: argparse.Namespace) -> int:
    from mucon.evaluation import evaluate
    from mucon.evaluation.robustness import CORRUPTION_PRESETS

    preset = len(args.corruptions) == 1 and args.corruptions[0] in CORRUPTION_PRESETS
    from mucon.evaluation.hear_models import is_hear_source
    from mucon.evaluation.exported_models import is_exported_source

    sources = [*(args.checkpoint or []), *(args.model or [])]
    if not sources:
        raise ValueError("give at least one --checkpoint or --model")
    models = {**_model_names([source for source in sources if not is_hear_source(source) and
                              not is_exported_source(source)]),
              **_hear_names([source for source in sources if is_hear_source(source)]),
              **_exported_names([source for source in sources if is_exported_source(source)])}
    results = evaluate(models, args.tasks, args.out, robustness=not args.no_robustness,
             seed=args.seed, baselines=not args.no_baselines, device=args.device,
             severities=tuple(args.severities) if args.severities else None,
             corruptions=args.corruptions[0] if preset else args.corruptions, cache_dir=args.cache,
             precision=args.precision, progress=not args.quiet, data_roots=args.data_root or (),
             protocol=args.protocol, heads=args.heads)
    return 1 if results["failed_models"] else 0  # the other rows were produced; say that some failed


def _tasks(args: argparse.Namespace) -> int:
    from mucon.evaluation.benchmarks import describe_benchmarks

    print(describe_benchmarks())
    return 0


def _task_make(args: argparse.Namespace) -> int:
    from mucon.evaluation.splitting import make_task

    made = make_task(args.metadata, args.label, args.out, group=args.group, seed=args.seed, task_type=args.type,
                     name=args.name)
    print(made.summary())
    print(f"evaluate it with: mucon evaluate --tasks {made.header} --checkpoint ... --out ...")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mucon.demo import run_demo

    from mucon.demo import select_presets

    # `--methods clmr-cpu trainer.precision=32-true`: the list option takes the settings after it too
    methods = [name for name in args.methods or [] if "=" not in name]
    overrides = [*(name for name in args.methods or [] if "=" in name), *args.overrides]
    run_demo(args.out, budget_minutes=args.budget_minutes, corpus_dir=args.corpus, corpus_size=args.corpus_size,
             presets=select_presets(methods), seed=args.seed, overrides=overrides, progress=not args.quiet)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """A command-line mistake is one line on stderr and exit status 2, like every other user error: the usage
    block argparse prints first pushed the error itself below a screenful of options."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


CACHE_HELP = ("the embedding cache embed and evaluate share: a file embedded by either with the same model and "
              "settings is not embedded again (default: $MUCON_CACHE/embeddings, ~/.cache/mucon/embeddings)")


def build_parser() -> argparse.ArgumentParser:
    from mucon.data.layouts import LAYOUTS
    from mucon.demo import DEMO_BUDGET_MINUTES
    from mucon.evaluation.tasks import MAX_CHUNKS
    from mucon.precision import EMBEDDING_PRECISIONS

    parser = OneLineParser(prog="mucon", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mucon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="decode a folder of audio once into a store training reads crops from")
    prepare.add_argument("audio_dir", type=Path)
    prepare.add_argument("store_dir", type=Path)
    prepare.add_argument("--sample-rate", type=int, required=True)
    prepare.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    prepare.add_argument("--min-seconds", type=float, default=1.0, help="shorter files are skipped (default 1.0)")
    prepare.add_argument("--metadata", type=Path, help="CSV with a `path` column and label columns "
                         "(default: AUDIO_DIR/metadata.csv when present)")
    prepare.add_argument("--layout", choices=list(LAYOUTS), help="how to read AUDIO_DIR "
                         "(default: detected from the folder)")
    prepare.add_argument("--split", action="append", help="keep only rows whose `split` column is this (repeatable)")
    prepare.add_argument("--stem-map", type=Path, help="YAML/JSON file overriding the Slakh2100 instrument -> "
                         "source type mapping")
    prepare.add_argument("--workers", type=int, default=None, help="decoding processes")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(run=_prepare)

    separate = commands.add_parser("separate", help="separate every mixture of a folder into sources once, "
                                   "for `mucon prepare` to store next to the mixture")
    separate.add_argument("in_dir", type=Path)
    separate.add_argument("out_dir", type=Path)
    separate.add_argument("--sample-rate", type=int, required=True, help="rate of the written mixture and stems")
    separate.add_argument("--separator", choices=["hpss", "demucs"], default="hpss",
                          help="hpss: drums vs other, no weights (default); demucs: a Demucs model file (--model)")
    separate.add_argument("--model", type=Path, help="the separator's weights file (demucs)")
    separate.add_argument("--device", default="cpu")
    separate.add_argument("--batch-size", type=int, default=4, help="segments per batch (hpss)")
    separate.add_argument("--layout", choices=list(LAYOUTS), help="how to read IN_DIR (default: detected)")
    separate.add_argument("--split", action="append", help="only rows whose `split` column is this (repeatable)")
    separate.add_argument("--quiet", action="store_true", help="no progress bar")
    separate.set_defaults(run=_separate)

    pretrain = commands.add_parser("pretrain", help="pretrain an encoder with a method preset",
                                   epilog="overrides: key.sub=value, e.g. trainer.max_steps=500 data.batch_size=32")
    pretrain.add_argument("--config", required=True, help="a preset name (clmr, clmr-cpu, ...), a YAML file, "
                          "or a run's config.yaml")
    pretrain.add_argument("--store", help="the prepared store (sets data.store)")
    pretrain.add_argument("--run-dir", help="where checkpoints and logs go (sets run_dir)")
    pretrain.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt")
    pretrain.add_argument("overrides", nargs="*", help="key.sub=value settings over the config")
    pretrain.set_defaults(run=_pretrain)

    export = commands.add_parser("export", help="the encoder with its front end as an ONNX file or a torch.export "
                                 "program: waveforms [B, samples] to embedding [B, D] and frames [B, T, D]")
    export.add_argument("checkpoint", type=Path)
    export.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="write an ONNX file (opset 20)")
    export.add_argument("--torch", type=Path, metavar="OUT.pt2", help="write a torch.export program")
    export.add_argument("--stft", choices=["fft", "conv"], default="fft",
                        help="fft: the spectrum by FFT (ONNX DFT op; default); conv: by a fixed convolution, "
                        "for runtimes where that op is slow or missing")
    export.set_defaults(run=_export)

    embed = commands.add_parser("embed", help="the embedding of every audio file of a folder, with its metadata.csv "
                                "labels, through the cache evaluate uses")
    embed.add_argument("audio_dir", type=Path)
    embedded_model = embed.add_mutually_exclusive_group(required=True)
    embedded_model.add_argument("--checkpoint", type=Path)
    embedded_model.add_argument("--model", help="onnx:FILE or pt2:FILE, a file written by `mucon export --onnx` "
                                "or `--torch`")
    embed.add_argument("--out", required=True, type=Path, help="folder for embeddings.npy, index.csv, failed.csv")
    embed.add_argument("--hop-seconds", type=float, help="window hop (default: the encoder's window, as evaluate)")
    embed.add_argument("--max-windows", type=int, default=MAX_CHUNKS, help="windows per file at most, evenly "
                       "spread, as evaluate's tasks (default %(default)s; 0: every window)")
    embed.add_argument("--metadata", type=Path, help="CSV with a `path` column and label columns, copied into "
                       "index.csv (default: AUDIO_DIR/metadata.csv when present, as prepare reads)")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--device", default="cpu")
    embed.add_argument("--precision", default="auto", help="auto (bf16 where the device has bf16) or 32-true")
    embed.add_argument("--cache", type=Path, help=CACHE_HELP)
    embed.add_argument("--overwrite", action="store_true", help="replace the results already in --out "
                       "(without it, an --out holding them is refused)")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(run=_embed)

    masks = commands.add_parser("masks", help="PNGs of a PEMR checkpoint's frame importance and positive/negative "
                                "masks over the log-mel of a crop of each file")
    masks.add_argument("audio_files", nargs="+", type=Path)
    masks.add_argument("--checkpoint", required=True, type=Path, help="a pemr checkpoint")
    masks.add_argument("--out", required=True, type=Path, help="folder for one PNG per file")
    masks.add_argument("--start-seconds", type=float, default=0.0, help="where each file's crop starts (default 0; "
                       "the crop is the model's training crop length, a shorter file is padded with silence)")
    masks.set_defaults(run=_masks)

    evaluation = commands.add_parser("evaluate", help="probe checkpoints and baselines on tasks; table, JSON, MD, PNG")
    evaluation.add_argument("--checkpoint", action="append", help="a mucon checkpoint (repeatable)")
    evaluation.add_argument("--model", action="append", help="a checkpoint, or a HEAR 2021 module with its weights: "
                            "hear:PACKAGE.MODULE[:WEIGHTS], or a file of `mucon export`: onnx:FILE (--onnx) "
                            "or pt2:FILE (--torch) (repeatable; a row next to the checkpoints')")
    evaluation.add_argument("--tasks", required=True, nargs="+", help="task header files (.yaml/.json), corpus "
                            "folders, or built-in benchmark task names (`mucon tasks`) with --data-root")
    evaluation.add_argument("--data-root", action="append", type=Path, help="a benchmark dataset's folder, as its "
                            "publisher distributes it (repeatable: each task name reads the first that holds its "
                            "dataset)")
    evaluation.add_argument("--out", required=True, type=Path)
    evaluation.add_argument("--no-robustness", action="store_true", help="skip the corrupted-audio tests")
    evaluation.add_argument("--severities", type=float, nargs="+", help="robustness severities (default: the "
                            "preset's, or all of the corruptions named)")
    evaluation.add_argument("--precision", default="auto", choices=EMBEDDING_PRECISIONS, help="the encoders' "
                            "precision: auto (bf16 where the device has bf16, as in training), 32-true or bf16-mixed "
                            "(default %(default)s)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluation.add_argument("--corruptions", nargs="+", default=["quick"], help="robustness corruptions: quick "
                            "(training-chain, reverb, mp3 at severities 1 and 2; the default), full (every "
                            "corruption at every severity: 43 conditions) or names, e.g. reverb mp3")
    evaluation.add_argument("--cache", type=Path, help=CACHE_HELP)
    evaluation.add_argument("--protocol", default="mucon", help="the probe protocol: mucon (its own, the default), "
                            "semisupcon, clmr or marble, as released (README: evaluation protocols)")
    evaluation.add_argument("--heads", nargs="+", help="probe heads, the first one the report's (default: the "
                            "protocol's, linear and mlp); knn adds the parameter-free cosine kNN probe")
    evaluation.add_argument("--no-baselines", action="store_true", help="no random-init and MFCC+chroma rows")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--device", default="cpu")
    evaluation.set_defaults(run=_evaluate)

    tasks = commands.add_parser("tasks", help="list the built-in benchmark tasks: dataset, metrics, published "
                                "split sizes, sources")
    tasks.set_defaults(run=_tasks)

    task = commands.add_parser("task", help="tasks of your own: `task make` writes one from a metadata table")
    task_commands = task.add_subparsers(dest="task_command", required=True)
    make = task_commands.add_parser("make", help="a task (YAML header + CSV) from a metadata.csv with a seeded, "
                                    "stratified split that keeps each group in one split; prints its counts")
    make.add_argument("metadata", type=Path, help="CSV with a `path` column (relative to its folder) and label "
                      "columns: the metadata.csv prepare reads")
    make.add_argument("--label", required=True, help="the column to predict")
    make.add_argument("--group", help="a column whose rows stay together in one split (album, artist, session)")
    make.add_argument("--type", default="multiclass", choices=["multiclass", "key", "multilabel", "regression"])
    make.add_argument("--name", help="the task's name (default: the label column)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True, type=Path, help="folder for NAME.yaml and NAME.csv")
    make.set_defaults(run=_task_make)

    demo = commands.add_parser("demo", help="the whole loop on the built-in corpus: pretrain every method, evaluate, compare")
    demo.add_argument("--out", type=Path, default=Path("mucon-demo"))
    demo.add_argument("--budget-minutes", type=float, default=DEMO_BUDGET_MINUTES,
                      help="pretraining minutes of all CPU presets together on 2 CPU cores with bf16 (default "
                           "%(default)s; a preset's own max_steps are its share of 16): it scales every preset's steps, "
                           "so the same budget trains the same on any machine; the plan printed first says the minutes here")
    demo.add_argument("--methods", nargs="+", help="methods or presets to pretrain (default: every CPU preset)")
    demo.add_argument("--corpus", type=Path, help="an existing corpus folder (default: built and cached)")
    # `small` (a dozen items, for the tests) holds fewer training clips than one batch of a CPU preset
    demo.add_argument("--corpus-size", choices=["default", "full"], default="default")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("overrides", nargs="*",
                      help="key.sub=value settings over every preset, e.g. trainer.precision=32-true (float32, what a "
                           "CPU without bf16 gets) or trainer.compile=true")
    demo.set_defaults(run=_demo)

    corpus = commands.add_parser("corpus", help="the built-in corpus: rendered multitrack music with labels")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    build = corpus_commands.add_parser("build", help="render the corpus offline from music21 scores and GM soundfonts")
    build.add_argument("out_dir", type=Path)
    build.add_argument("--size", choices=["small", "default", "full"], default="default")
    build.add_argument("--sample-rate", type=int, default=22050)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--soundfont", action="append", help="a .sf2/.sf3 file to render with (repeatable; "
                       "default: the Debian GM soundfonts)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_corpus_build)
    plot = corpus_commands.add_parser("plot", help="spectrograms of versions' mixtures and stems, as PNG")
    plot.add_argument("corpus_dir", type=Path)
    plot.add_argument("versions", nargs="+", help="version ids (the `version` column of metadata.csv)")
    plot.add_argument("--out-dir", type=Path, default=Path("."))
    plot.set_defaults(run=_corpus_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options too (`--resume trainer.max_steps=9`); argparse stops at the first
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except (OSError, ValueError) as error:  # a user's mistake (a path, a setting): one line, not a traceback
        print(f"mucon {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (pretrain saves its step first and says how to resume)
        print(f"mucon {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130  # the shell's status for a run SIGINT ended


if __name__ == "__main__":
    sys.exit(main())
