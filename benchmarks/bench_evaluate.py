"""Wall time of ``mucon.evaluation.evaluate`` on a corpus, from an empty embedding cache, split into
its parts (loading the models, the plan, embedding with its decoding, corrupting and encoder forwards
inside it, probes, robustness scoring, intervals, figures and the report), plus a digest of the
scores so two versions of the code can be checked to give the same results.

    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint RUN/checkpoints/last.ckpt
    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint CKPT --robustness demo   # the demo's conditions
    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint CKPT --severities 1 2    # every corruption
    python benchmarks/bench_evaluate.py CORPUS_DIR --checkpoint CKPT --precision 32-true # float32, as without bf16

It only wraps functions by name (``load_audio``, ``Encoder.embed``, ``fit_probe``, ``Condition.apply``, and
evaluate's stages in ``run``), skipping any an older checkout lacks, so it runs against an older checkout
too: put that checkout's ``src`` first on PYTHONPATH. Evaluate runs verbose, as ``mucon demo`` runs it (the
plan it prints is timed too); what it prints is not shown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SECONDS: dict[str, float] = defaultdict(float)
# evaluate's stages, wrapped where ``run`` names them: (label, attribute of run); the embedding's parts
# (decode, corrupt, encoder forward) run inside "embedding" and are shown under it.
STAGES = (("load models", "resolve_models"), ("plan", "evaluation_plan"), ("probes", "probe_task"),
          ("retrieval", "retrieval_task"), ("robustness scoring", "robustness_scores"),
          ("intervals and comparisons", "_intervals_and_comparisons"), ("figures", "draw_figures"),
          ("figures", "_draw_figures"), ("report", "write_report"), ("summary", "summary_text"))
INSIDE_EMBEDDING = ("decode", "corrupt", "encoder forward")


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
    parser.add_argument("--precision", help="embedding precision, e.g. 32-true (default: evaluate's, auto)")
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
    for label, name in STAGES:
        if hasattr(run, name):
            setattr(run, name, timed(label, getattr(run, name)))
    if hasattr(run, "Folder"):
        run.Folder.embed = timed("embedding", run.Folder.embed)

    corruptions, severities = args.corruptions, args.severities
    if args.robustness == "demo":
        from mucon.demo import DEMO_CORRUPTIONS

        corruptions = DEMO_CORRUPTIONS
    models = {Path(path).resolve().parents[1].name: path for path in args.checkpoint}
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    if args.precision:
        options["precision"] = args.precision
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        out = args.out or Path(scratch) / "report"
        start, cpu_start = time.perf_counter(), time.process_time()
        results = run.evaluate(models, [args.corpus], out, robustness=args.robustness != "none",
                               corruptions=corruptions, severities=severities,
                               cache_dir=Path(scratch) / "cache", verbose=True, progress=False, **options)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    scores = json.dumps({"scores": results["scores"], "robustness": results["robustness"]}, sort_keys=True,
                        default=str)
    print(f"mucon {mucon.__version__} from {Path(mucon.__file__).parent}")
    print(f"robustness: {args.robustness} corruptions={corruptions} severities={severities} {options}")
    print(f"models: {', '.join(results['models'])}")
    print(f"evaluate: {total:.1f} s in all, {cpu:.1f} s of CPU (less disturbed by other processes)")
    for label, seconds in SECONDS.items():
        if label not in INSIDE_EMBEDDING and label != "probe training":
            print(f"  {label}: {seconds:.1f} s")
            if label == "probes":
                print(f"    of it probe training: {SECONDS['probe training']:.1f} s")
            if label == "embedding":
                for part in INSIDE_EMBEDDING:
                    print(f"    of it {part}: {SECONDS[part]:.1f} s")
    print(f"  the rest: {total - sum(s for label, s in SECONDS.items() if label not in (*INSIDE_EMBEDDING, 'probe training')):.1f} s")
    print(f"scores digest: {hashlib.sha256(scores.encode()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
