"""Notebook 07's six arms on every sample of the downstream comparison: its study's three arms plus the other three,
rolled out on the same priors and seeds.

`python benchmarks/ablation_arms.py --profile cpu-downstream` reads `runs/downstream-<profile>` (made by
benchmarks/downstream.py) and works in its `other_arms/` folder, where notebook 07's `run_study` rolls out the arms
that the downstream study lacks, over the same probed samples. Common random numbers make an arm's responses depend
only on its own chunks and the seeds of sample and round, never on the other arms (tests/test_ablation.py and
tests/test_ablation_arms.py), so the two studies together are one six-arm study, up to the float rounding of other
batch shapes. It measures all six arms (per-sample measures; the paper's arm minus each other, with bootstrap
intervals) and writes `benchmarks/results/ablation-<profile>.json`, with the roll-out's wall time and peak memory,
and two figures under `docs/figures/`.
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

from downstream import ARMS  # noqa: E402
from effect import ROOT, timed  # noqa: E402

from longmab_utils.ablation import STUDY, measure, run_study, split_by_arm  # noqa: E402
from longmab_utils.artifacts import ABLATION, PRIORS, ROLLOUT  # noqa: E402
from longmab_utils.config import get_profile  # noqa: E402
from longmab_utils.data import read_records  # noqa: E402

OTHERS = "other_arms"
"""The folder, inside the downstream run, of the study of the arms that the downstream comparison lacks."""


def missing_arms(done: tuple[str, ...] = ARMS) -> dict[str, tuple[str, str]]:
    """Notebook 07's arms that `done` lacks, in the study's order."""
    return {arm: spec for arm, spec in STUDY.items() if arm not in done}


def roll_out_others(profile_name: str, run_dir: Path) -> list[dict]:
    """Roll the missing arms out over the downstream run's priors, in `run_dir/OTHERS` (reused when unchanged)."""
    folder = run_dir / OTHERS
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / PRIORS, folder / PRIORS)
    profile = get_profile(profile_name)
    return run_study(profile, folder, profile.ablation_samples, missing_arms(tuple(downstream_arms(run_dir))))


def downstream_arms(run_dir: Path) -> dict[str, list[dict]]:
    """The downstream study's rollouts by arm."""
    return split_by_arm(read_records(run_dir / ABLATION / ROLLOUT))


def six_arms(run_dir: Path) -> list[dict]:
    """Both studies' rollout records in the study's arm order (the paper's arm first: the differences' reference)."""
    records = read_records(run_dir / ABLATION / ROLLOUT) + read_records(run_dir / OTHERS / ABLATION / ROLLOUT)
    order = list(STUDY)
    return sorted(records, key=lambda r: order.index(r["id"].split("/")[0]))  # stable: samples keep their order


def run(profile: str, run_dir: Path, figures: Path) -> dict[str, Any]:
    """Roll out the missing arms in a child process (timed), measure all six, save the figures; the results."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from longmab_utils.models import load_embedder
    from longmab_utils.plots import ablation_bars, ablation_differences

    command = [sys.executable, __file__, "--profile", profile, "--run-dir", str(run_dir), "--phase", "rollout"]
    rollout = timed(command, f"the other arms' rollout in {run_dir / OTHERS}")
    settings = get_profile(profile)
    result = measure(six_arms(run_dir), load_embedder(settings.embedding_model, settings.embedder_trust_remote_code))
    names = [f"ablation-{profile}.png", f"ablation-differences-{profile}.png"]
    plt.close(ablation_bars(pd.DataFrame(result["table"]).T, figures / names[0]))  # policies as rows
    plt.close(ablation_differences(result["differences"], figures / names[1]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    reused = downstream_arms(run_dir)
    return {
        "profile": profile,
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "samples": len(next(iter(reused.values()))),
        "arms": {arm: list(spec) for arm, spec in STUDY.items()},
        "reused_from_downstream": list(reused),
        "rolled_out": list(missing_arms(tuple(reused))),
        "rollout": rollout,
        "measures": result["table"],
        "differences": result["differences"],
        "figures": names,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the missing arms (or, in a child, only roll them out) and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-downstream")
    parser.add_argument("--run-dir", type=Path, help="the downstream run folder (default: runs/downstream-<profile>)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="results file's folder")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures", help="the figures' folder")
    parser.add_argument("--phase", choices=("rollout",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    run_dir = (args.run_dir or ROOT / "runs" / f"downstream-{args.profile}").resolve()
    if not (run_dir / ABLATION / ROLLOUT).exists():
        raise SystemExit(f"{run_dir / ABLATION / ROLLOUT} is missing: run benchmarks/downstream.py first")
    if args.phase:
        roll_out_others(args.profile, run_dir)
        return 0
    result = run(args.profile, run_dir, args.figures.resolve())
    out = args.results / f"ablation-{args.profile}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for arm, row in result["differences"].items():
        shown = [f"{m} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" for m, d in row.items()]
        print(f"{next(iter(STUDY))} - {arm}: " + "; ".join(shown))
    print(
        f"rollout {result['rollout']['seconds'] / 60:.1f} min, peak {result['rollout']['peak_rss_gb']} GB; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
