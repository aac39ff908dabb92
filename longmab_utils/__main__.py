"""Command line: `python -m longmab_utils STEP --profile NAME --run-dir DIR [--set key=value ...]`.

`build-data` turns MuSiQue (and a Wikipedia dump) into training samples (`builddata.py`).

Every step is a function of `pipeline` that the notebooks call too; see `--help` of each step.
`settings --profile NAME` prints every key with its value and docstring. Settings are validated
before any heavy module (torch, transformers) is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .builddata import RECIPES, BuildSettings, build_data, default_output, policy_counter
from .config import PROFILES, Profile, describe, get_profile, parse_overrides
from .course.reproduce import ABLATIONS, COURSE, NotebookFailed, reproduce
from .errors import UserError
from .estimate import format_estimate
from .specs import GPUS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per pipeline step."""
    parser = argparse.ArgumentParser(prog="python -m longmab_utils", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--profile", default="cpu-tiny", choices=sorted(PROFILES), help="settings profile")
    chosen.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile field")
    common = argparse.ArgumentParser(add_help=False, parents=[chosen])
    common.add_argument("--run-dir", required=True, help="folder for this run's artifacts")
    common.add_argument(
        "--force",
        action="store_true",
        help="redo this step although the run folder holds it with other settings or inputs; later steps go stale",
    )
    steps.add_parser("settings", parents=[chosen], help="print every setting with its value and docstring")
    probe = steps.add_parser("probe", parents=[common], help="chunk, probe and write priors.jsonl")
    probe.add_argument("--data", help="training samples JSONL (default: the profile's)")
    rollout = steps.add_parser("rollout", parents=[common], help="MAB rollout over priors.jsonl -> rollout.jsonl")
    rollout.add_argument("--shard", metavar="I/N", help="process only every N-th sample starting at I")
    steps.add_parser("pairs", parents=[common], help="preference pairs from rollout.jsonl -> pairs.jsonl")
    steps.add_parser("train", parents=[common], help="DPO on pairs.jsonl -> adapter/")
    evaluate = steps.add_parser("evaluate", parents=[common], help="base vs trained on LongBench-format sets")
    evaluate.add_argument("--adapter", help="trained adapter folder (default: RUN_DIR/adapter when present)")
    evaluate.add_argument("--data", help="evaluation folder or file (default: the profile's eval_data)")
    course = steps.add_parser("reproduce", parents=[chosen], help="execute the course notebooks with papermill")
    course.add_argument("--run-dir", help="run folder (default: a new one under runs/)")
    course.add_argument("--from", dest="start", metavar="NN", help="restart from notebook NN (needs --run-dir)")
    course.add_argument(
        "--cell-timeout", type=int, help="seconds one notebook cell may run (default: the profile's cell_timeout)"
    )
    course.add_argument("--ablations", action="store_true", help="also run 07_ablations (the policy study)")
    course.add_argument(
        "--stand-ins",
        action="store_true",
        help="run a GPU profile on this CPU: bundled models, small sizes, the real models' checks (printed table)",
    )
    estimate = steps.add_parser("estimate", parents=[chosen], help="a GPU profile's estimated time and its inputs")
    estimate.add_argument("--gpu", choices=sorted(GPUS), help="estimate for this GPU (default: the profile's)")
    build = steps.add_parser(
        "build-data", parents=[chosen], help="long-context training samples from MuSiQue (+ Wikipedia) -> JSONL + card"
    )
    build.add_argument("--musique", required=True, help="MuSiQue train JSONL/parquet, or a datasets id")
    build.add_argument("--musique-split", default="train", help="split of a datasets id (default: train)")
    build.add_argument("--wikipedia", help="Wikipedia JSONL/parquet with title and text, or a datasets id[:config]")
    build.add_argument(
        "--recipe", choices=RECIPES, help="sealong (Wikipedia articles) or paragraphs (default: sealong if --wikipedia)"
    )
    build.add_argument("--samples", type=int, default=2048, help="samples to write (default: 2048)")
    build.add_argument("--min-tokens", type=int, default=8192, help="lower end of the target length (default: 8192)")
    build.add_argument("--max-tokens", type=int, default=16384, help="upper end of the target length (default: 16384)")
    build.add_argument("--seed", type=int, default=42, help="seed of the order and every draw (default: 42)")
    build.add_argument("--tokenizer", help="count tokens with this tokenizer (default: the profile's policy model's)")
    build.add_argument("--out", help="output JSONL (default: data/built/train_SEED_MIN_MAX.jsonl)")
    merge = steps.add_parser("merge", parents=[common], help="merge rollout shards into rollout.jsonl")
    merge.add_argument("--shards", type=int, required=True, help="the N of the --shard I/N runs")
    return parser


def run(args: argparse.Namespace) -> dict | None:
    """Dispatch one parsed command to its pipeline step (the modules that import torch load only here)."""
    overrides = parse_overrides(args.set)
    profile = get_profile(args.profile, overrides)
    if args.step == "settings":
        print(describe(profile))
        return None
    if args.step == "reproduce":
        notebooks = COURSE + ABLATIONS if args.ablations else COURSE
        return reproduce(
            args.profile, overrides, args.run_dir, args.start, notebooks, args.cell_timeout, args.stand_ins
        )["metrics"]
    if args.step == "estimate":
        if not (args.gpu or profile.target_gpu):
            raise UserError(f"profile {args.profile} plans for no GPU; pass --gpu ({', '.join(GPUS)})")
        print(format_estimate(profile, args.gpu))
        return None
    if args.step == "build-data":
        return build(profile, args)
    from . import pipeline

    if args.step == "probe":
        return pipeline.probe(profile, args.run_dir, args.data, args.force)
    if args.step == "rollout":
        return pipeline.rollout(profile, args.run_dir, args.shard, args.force)
    if args.step == "pairs":
        return pipeline.pairs(profile, args.run_dir, args.force)
    if args.step == "train":
        return pipeline.train(profile, args.run_dir, args.force)
    if args.step == "evaluate":
        return pipeline.evaluate(profile, args.run_dir, args.adapter, args.data, args.force)
    return pipeline.merge(profile, args.run_dir, args.shards, args.force)


def build(profile: Profile, args: argparse.Namespace) -> dict:
    """The `build-data` step: settings from the flags, tokens counted with the profile's (or the named) tokenizer."""
    recipe = args.recipe or ("sealong" if args.wikipedia else "paragraphs")
    settings = BuildSettings(recipe, args.samples, args.min_tokens, args.max_tokens, args.seed)
    name = args.tokenizer or profile.policy_model
    out = args.out or default_output(settings)
    counter = policy_counter(profile, name)
    return build_data(args.musique, args.wikipedia, settings, counter, name, out, args.musique_split)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a step and print its summary; a user error exits 2 and a failed notebook 1, each with one line."""
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished batches are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    if summary is not None:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
