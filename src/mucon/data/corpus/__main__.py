"""``python -m mucon.data.corpus OUT_DIR [--size ...]``: build the corpus without the mucon CLI."""

import argparse

from .build import SIZES, build_corpus


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m mucon.data.corpus", description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--size", choices=list(SIZES), default="default")
    ap.add_argument("--sample-rate", type=int, default=22050)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--soundfont", action="append", help="a .sf2/.sf3 file (repeat for several)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--plot", metavar="VERSION", action="append", default=[],
                    help="also write plots/<VERSION>.png (mixture and stem spectrograms)")
    args = ap.parse_args()
    report = build_corpus(args.out_dir, args.size, args.sample_rate, args.seed, args.soundfont,
                          workers=args.workers)
    print(report.summary())
    if args.plot:
        from pathlib import Path

        from .plot import plot_stems

        for v in args.plot:
            print(plot_stems(args.out_dir, v, Path(args.out_dir) / "plots" / f"{v}.png"))


if __name__ == "__main__":
    main()
