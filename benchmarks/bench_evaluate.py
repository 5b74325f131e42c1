"""Wall time of ``mucon.evaluation.evaluate`` on a corpus, from an empty embedding cache, split into
decoding, embedding (encoder forwards) and probe training, plus a digest of the scores so two
versions of the code can be checked to give the same results.

    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint RUN/checkpoints/last.ckpt
    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint CKPT --robustness demo   # the demo's conditions
    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint CKPT --severities 1 2    # every corruption

It only wraps functions by name (``load_audio``, ``Encoder.embed``, ``fit_probe``, ``Condition.apply``,
``draw_figures``, ``_draw_figures`` in older checkouts), so it runs against an older checkout too: put that
checkout's ``src`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SECONDS: dict[str, float] = defaultdict(float)


def timed(label: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--robustness", choices=["none", "demo", "given"], default="given",
                        help="demo: the conditions `mucon demo` runs; given: --corruptions/--severities")
    parser.add_argument("--corruptions", nargs="+")
    parser.add_argument("--severities", type=float, nargs="+")
    parser.add_argument("--batch-size", type=int, help="windows per forward pass (default: evaluate's)")
    parser.add_argument("--out", type=Path, help="report folder (default: a temporary one)")
    args = parser.parse_args()

    import mucon
    import mucon.evaluation.embed as embed
    import mucon.evaluation.run as run
    from mucon.encoders import Encoder
    from mucon.evaluation.robustness import Condition

    embed.load_audio = timed("decode", embed.load_audio)
    Encoder.embed = timed("encoder forward", Encoder.embed)
    try:  # evaluate's stages have modules of their own; an older checkout probes and draws in run
        import mucon.evaluation.scoring as scoring
    except ImportError:
        scoring = run
    scoring.fit_probe = timed("probe training", scoring.fit_probe)
    Condition.apply = timed("corrupt", Condition.apply)
    draw = "draw_figures" if hasattr(run, "draw_figures") else "_draw_figures"
    setattr(run, draw, timed("figures", getattr(run, draw)))

    corruptions, severities = args.corruptions, args.severities
    if args.robustness == "demo":
        from mucon.demo import DEMO_CORRUPTIONS, DEMO_SEVERITIES

        corruptions, severities = list(DEMO_CORRUPTIONS), list(DEMO_SEVERITIES)
    models = {Path(path).resolve().parents[1].name: path for path in args.checkpoint}
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "report"
        start, cpu_start = time.perf_counter(), time.process_time()
        results = run.evaluate(models, [args.corpus], out, robustness=args.robustness != "none",
                               corruptions=corruptions, severities=severities,
                               cache_dir=Path(scratch) / "cache", verbose=False, **options)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    scores = json.dumps({"scores": results["scores"], "robustness": results["robustness"]}, sort_keys=True,
                        default=str)
    print(f"mucon {mucon.__version__} from {Path(mucon.__file__).parent}")
    print(f"robustness: {args.robustness} corruptions={corruptions} severities={severities} {options}")
    print(f"evaluate: {total:.1f} s in all, {cpu:.1f} s of CPU (less disturbed by other processes)")
    for label, seconds in SECONDS.items():
        print(f"  {label}: {seconds:.1f} s")
    print(f"scores digest: {hashlib.sha256(scores.encode()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
