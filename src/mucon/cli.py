"""The `mucon` command: one entry point with a subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mucon import __version__


def _prepare(args: argparse.Namespace) -> int:
    from mucon.audio.io import AudioDecodeError
    from mucon.audio.store import prepare_store

    try:
        report = prepare_store(
            args.audio_dir, args.store_dir, args.sample_rate,
            strict=args.strict, min_seconds=args.min_seconds, metadata=args.metadata,
            num_workers=args.workers, progress=not args.quiet,
        )
    except AudioDecodeError as error:
        print(f"mucon prepare: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from mucon.config import load_config
    from mucon.training import pretrain

    overrides = list(args.overrides)
    if args.store:
        overrides.append(f"data.store={args.store}")
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    config = load_config(args.config, overrides)
    checkpoint = pretrain(config, resume=args.resume)
    print(f"checkpoint: {checkpoint}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mucon", description=__doc__)
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
    prepare.add_argument("--workers", type=int, default=None, help="decoding processes")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(run=_prepare)

    pretrain = commands.add_parser("pretrain", help="pretrain an encoder with a method preset",
                                   epilog="overrides: key.sub=value, e.g. trainer.max_steps=500 data.batch_size=32")
    pretrain.add_argument("--config", required=True, type=Path, help="a preset (configs/*.yaml) or a run's config.yaml")
    pretrain.add_argument("--store", help="the prepared store (sets data.store)")
    pretrain.add_argument("--run-dir", help="where checkpoints and logs go (sets run_dir)")
    pretrain.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt")
    pretrain.add_argument("overrides", nargs="*", help="key.sub=value settings over the config")
    pretrain.set_defaults(run=_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options too (`--resume trainer.max_steps=9`); argparse stops at the first
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
