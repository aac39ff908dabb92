"""The paper's downstream comparison at small scale: adapters trained on the pairs of three chunk-selection
policies, each evaluated against the base and against each other on the same held-out items.

`python benchmarks/downstream.py --profile cpu-downstream` works in `runs/downstream-<profile>`:

1. `probe`: every sample of the profile's training file (invalid probes kept, so none is dropped);
2. the ablation study (notebook 07's code) on every probed sample under the arms of ARMS, with common random
   numbers, its per-sample measures and their bootstrap intervals (`ablation/differences.json`);
3. per arm, a run folder `<arm>/` holding that arm's rollout, then the `pairs` and `train` steps;
4. the base and the three adapters on the held-out items (greedy, as `evaluate`): each adapter against the base,
   and the paper's adapter against each other adapter, item by item (wins, losses, ties by F1, the two-sided
   exact sign test, bootstrap 95% intervals of the EM and F1 differences).

It writes `benchmarks/results/downstream-<profile>.json` (every phase's wall time and peak memory included) and
two figures under `docs/figures/`. Each phase runs in its own process; a rerun reuses what the pipeline's steps
reuse (same settings and inputs) and the finished evaluation (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from effect import ROOT, paired_line, timed  # noqa: E402

from longmab_utils.ablation import STUDY, run_ablation, split_by_arm  # noqa: E402
from longmab_utils.artifacts import (  # noqa: E402
    ABLATION,
    ABLATION_DIFFERENCES,
    ABLATION_MEASURES,
    ADAPTER,
    PAIRS_SUMMARY,
    ROLLOUT,
    SAMPLES,
    TRAIN_SUMMARY,
)
from longmab_utils.config import get_profile, project_path  # noqa: E402
from longmab_utils.data import read_json, read_records, write_json, write_jsonl  # noqa: E402

ARMS = ("ucb_probe_prior", "random_k", "full_context")
"""The policies whose pairs train an adapter each: the paper's first, then the two baselines its Table 3 compares."""
COMPARISONS = "comparisons.json"
"""The evaluation phase's result in the run folder: scores per model and the paired comparisons."""


def split_arms(run_dir: Path, arms: tuple[str, ...] = ARMS) -> None:
    """Give each arm its own run folder: the shared `samples.jsonl` and that arm's records of the study's rollout."""
    by_arm = split_by_arm(read_records(run_dir / ABLATION / ROLLOUT))
    for arm in arms:
        folder = run_dir / arm
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / SAMPLES, folder / SAMPLES)
        write_jsonl(folder / ROLLOUT, by_arm[arm])


def compare(rows: dict[str, dict[str, list[dict]]], arms: tuple[str, ...] = ARMS) -> dict[str, dict]:
    """Each adapter against the base (`vs_base`) and the paper's adapter against each other (`paper_vs`), from
    every model's prediction rows per evaluation set."""
    from longmab_utils.evaluation import paired_section

    paper = arms[0]
    return {
        "vs_base": {arm: paired_section(rows["base"], rows[arm]) for arm in arms},
        "paper_vs": {arm: paired_section(rows[arm], rows[paper]) for arm in arms[1:]},
    }


def evaluate_adapters(profile_name: str, run_dir: Path, arms: tuple[str, ...] = ARMS) -> dict[str, Any]:
    """The base and every arm's adapter on the profile's evaluation sets; writes their predictions and COMPARISONS."""
    from longmab_utils.evaluation import EvalSettings, eval_context, evaluate
    from longmab_utils.generation import build_generator
    from longmab_utils.models import model_limit

    profile = get_profile(profile_name)
    budget, context = eval_context(profile.eval_max_input_len, profile.eval_max_new_tokens, model_limit(profile))
    settings = EvalSettings(budget, profile.eval_max_new_tokens, profile.presence_penalty, profile.eval_max_items)
    results: dict[str, dict] = {}
    for arm in arms:
        adapter = str(run_dir / arm / ADAPTER)
        generator = build_generator(profile, adapter, max_model_len=context, batch_size=profile.eval_batch_size)
        try:
            for label in (arm,) if results else ("base", arm):  # the base once, from the first engine
                generator.use_adapter(label != "base")
                data = project_path(profile.eval_data)
                results[label] = evaluate(generator, generator.tokenizer, data, settings, run_dir, label)
        finally:
            generator.close()
    document = {
        "scores": {label: result["scores"] for label, result in results.items()},
        **compare({label: result["rows"] for label, result in results.items()}, arms),
    }
    write_json(run_dir / COMPARISONS, document)
    return document


def run_phase(phase: str, profile_name: str, run_dir: Path, figures: Path) -> None:
    """One phase inside this (child) process: the ablation study with its figure, or the evaluation."""
    if phase == "ablation":
        import matplotlib.pyplot as plt

        from longmab_utils.plots import ablation_differences

        profile = get_profile(profile_name)
        result = run_ablation(profile, run_dir, profile.ablation_samples, {arm: STUDY[arm] for arm in ARMS})
        figure = figures / f"downstream-ablation-{profile_name}.png"
        plt.close(ablation_differences(result["differences"], figure))
    else:
        evaluate_adapters(profile_name, run_dir)


def phase_command(phase: str, profile: str, run_dir: Path, figures: Path) -> list[str]:
    """The command that runs one phase in a child process."""
    command = [sys.executable, __file__, "--profile", profile, "--run-dir", str(run_dir), "--phase", phase]
    return command + ["--figures", str(figures)]


def step_command(step: str, profile: str, run_dir: Path) -> list[str]:
    """The command that runs one pipeline step in a child process."""
    return [sys.executable, "-m", "longmab_utils", step, "--profile", profile, "--run-dir", str(run_dir)]


def headline(comparisons: dict[str, dict]) -> dict[str, dict]:
    """The comparisons over all items, labelled: each adapter vs the base, then the paper's vs each other."""
    rows = {f"{arm} vs base": comparisons["vs_base"][arm]["all"] for arm in ARMS}
    return rows | {f"{ARMS[0]} vs {arm}": comparisons["paper_vs"][arm]["all"] for arm in ARMS[1:]}


def training(run_dir: Path, arm: str) -> dict[str, Any]:
    """An arm's pairs and training, as its run folder's summaries record them."""
    pairs = read_json(run_dir / arm / PAIRS_SUMMARY)
    train = read_json(run_dir / arm / ADAPTER / TRAIN_SUMMARY)
    keep = ("train_pairs", "val_pairs", "steps", "first_loss", "last_loss", "last_reward_margin")
    return {"pairs_summary": pairs, **{key: train[key] for key in keep}}


def run(profile: str, run_dir: Path, figures: Path, fresh: bool = False) -> dict[str, Any]:
    """Every phase in order, each timed in its own process, in `run_dir`; the results document (figures saved in
    `figures`)."""
    import matplotlib.pyplot as plt

    from longmab_utils.plots import outcome_bars

    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    phases: dict[str, dict[str, float]] = {}

    def phase(name: str, command: list[str]) -> None:
        """Time one phase and report it."""
        phases[name] = timed(command, f"{name} in {run_dir}")
        print(f"{name}: {phases[name]['seconds']:.0f} s, peak {phases[name]['peak_rss_gb']} GB", flush=True)

    phase("probe", step_command("probe", profile, run_dir))
    phase("ablation", phase_command("ablation", profile, run_dir, figures))
    split_arms(run_dir)
    for arm in ARMS:
        phase(f"pairs {arm}", step_command("pairs", profile, run_dir / arm))
        phase(f"train {arm}", step_command("train", profile, run_dir / arm))
    if not (run_dir / COMPARISONS).exists():
        phase("evaluate", phase_command("evaluate", profile, run_dir, figures))
    comparisons = read_json(run_dir / COMPARISONS)
    figure = figures / f"downstream-{profile}.png"
    title = "each adapter against the base, and the paper's against the others (F1, all items)"
    plt.close(outcome_bars(headline(comparisons), figure, title))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "profile": profile,
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "samples": len(read_records(run_dir / SAMPLES)),
        "arms": {arm: list(STUDY[arm]) for arm in ARMS},
        "phases": phases,
        "minutes": round(sum(p["seconds"] for p in phases.values()) / 60, 1),
        "peak_rss_gb": max(p["peak_rss_gb"] for p in phases.values()),
        "ablation": {
            "measures": read_json(run_dir / ABLATION / ABLATION_MEASURES),
            "differences": read_json(run_dir / ABLATION / ABLATION_DIFFERENCES),
        },
        "training": {arm: training(run_dir, arm) for arm in ARMS},
        **comparisons,
        "figures": [figure.name, f"downstream-ablation-{profile}.png"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run every phase (or, in a child, one) and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-downstream")
    parser.add_argument("--fresh", action="store_true", help="start over in a new run folder")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/downstream-<profile>)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="results file's folder")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures", help="the figures' folder")
    parser.add_argument("--phase", choices=("ablation", "evaluate"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    run_dir = (args.run_dir or ROOT / "runs" / f"downstream-{args.profile}").resolve()
    if args.phase:
        run_phase(args.phase, args.profile, run_dir, args.figures)
        return 0
    result = run(args.profile, run_dir, args.figures.resolve(), args.fresh)
    out = args.results / f"downstream-{args.profile}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for label, row in headline(result).items():
        print(f"{label}: {paired_line(row)}")
    print(f"{result['minutes']} min, peak {result['peak_rss_gb']} GB; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
