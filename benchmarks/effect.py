"""Does the method show at small scale? The trained adapter against the base on fresh held-out items, per seed.

`python benchmarks/effect.py --profile cpu-demo --seeds 42 43 44` runs the pipeline's steps (probe, rollout,
pairs, train, evaluate) once per seed, each in its own process and run folder (`runs/effect-<profile>-seed<S>`),
and writes `benchmarks/results/effect-<profile>.json`: per seed the paired comparison of `metrics.json` over all
items and per set (wins, losses, ties by F1, the two-sided sign test's p, bootstrap 95% intervals of the EM and
F1 differences, the answered shares), and each step's wall time and peak resident memory. The claim it tests is
stated in the README ("What the kit demonstrates") before any run: the adapter ahead with p < 0.05 in every seed.
A finished seed is kept (its run folder's `effect.json`); `--fresh` reruns it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("probe", "rollout", "pairs", "train", "evaluate")
ALPHA = 0.05
"""The sign test's threshold for "the adapter beats the base" (README, "What the kit demonstrates")."""


def timed(command: list[str], what: str) -> dict[str, float]:
    """Run a child process offline from the project root; its wall seconds and peak resident memory in GB."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "agg"}
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2)}  # ru_maxrss: KiB


def run_step(step: str, profile: str, seed: int, run_dir: Path) -> dict[str, float]:
    """Run one pipeline step in a child process; its wall seconds and peak resident memory in GB."""
    command = [sys.executable, "-m", "longmab_utils", step, "--profile", profile, "--run-dir", str(run_dir)]
    return timed(command + ["--set", f"seed={seed}"], f"{step} for seed {seed} in {run_dir}")


def items_for_power(wins: int, losses: int, items: int, power: float = 0.8) -> int | None:
    """Held-out items a sign test at ALPHA would need to detect this seed's win share with `power` (normal
    approximation), at this seed's share of decided items; None when the adapter is not ahead."""
    from statistics import NormalDist

    decided = wins + losses
    if decided == 0 or wins <= losses:
        return None
    share = wins / decided
    z_alpha, z_power = NormalDist().inv_cdf(1 - ALPHA / 2), NormalDist().inv_cdf(power)
    needed = ((z_alpha * 0.5 + z_power * (share * (1 - share)) ** 0.5) / (share - 0.5)) ** 2
    return math.ceil(needed * items / decided)


def outcome(run_dir: Path) -> dict[str, Any]:
    """What a finished seed's `metrics.json` says: the paired comparison and the answered shares."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    paired = metrics["paired"]
    everything = paired["all"]
    return {
        "all": everything,
        "sets": paired["sets"],
        "adapter_ahead": everything["wins"] > everything["losses"] and everything["p"] < ALPHA,
        "items_for_80pct_power": items_for_power(everything["wins"], everything["losses"], everything["n"]),
        "answered": {
            model: {name: scores["answered"] for name, scores in sets.items()}
            for model, sets in metrics["scores"].items()
        },
    }


def paired_line(row: dict[str, Any]) -> str:
    """One paired comparison (a `paired_comparison` row) in a line: the outcomes, p and the F1 difference in points."""
    f1 = {key: 100 * row["f1_difference"][key] for key in ("mean", "low", "high")}
    return (
        f"{row['wins']} wins, {row['losses']} losses, {row['ties']} ties, p = {row['p']:.3g}, "
        f"F1 difference {f1['mean']:+.1f} [{f1['low']:+.1f}, {f1['high']:+.1f}] points"
    )


def run_seed(profile: str, seed: int, fresh: bool) -> dict[str, Any]:
    """Every step for one seed (or the finished seed's record), with its outcome."""
    run_dir = ROOT / "runs" / f"effect-{profile}-seed{seed}"
    record_path = run_dir / "effect.json"
    if record_path.exists() and not fresh:
        return json.loads(record_path.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)
    steps = {}
    for step in STEPS:
        steps[step] = run_step(step, profile, seed, run_dir)
        print(f"seed {seed}: {step} {steps[step]['seconds']:.0f} s, peak {steps[step]['peak_rss_gb']} GB", flush=True)
    record = {
        "seed": seed,
        "run_dir": str(run_dir.relative_to(ROOT)),
        "steps": steps,
        "minutes": round(sum(s["seconds"] for s in steps.values()) / 60, 1),
        "peak_rss_gb": max(s["peak_rss_gb"] for s in steps.values()),
        **outcome(run_dir),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """Run the seeds and write the results file; exit 0 whatever the outcome (the file says it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--fresh", action="store_true", help="rerun seeds that already finished")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    seeds = [run_seed(args.profile, seed, args.fresh) for seed in args.seeds]
    result = {
        "profile": args.profile,
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "claim": f"adapter ahead of the base over all held-out items by F1, two-sided exact sign test p < {ALPHA}",
        "every_seed_shows_it": all(s["adapter_ahead"] for s in seeds),
        "seeds": seeds,
    }
    out = ROOT / "benchmarks" / "results" / f"effect-{args.profile}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for s in seeds:
        print(f"seed {s['seed']}: {paired_line(s['all'])}, {s['minutes']} min, peak {s['peak_rss_gb']} GB")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
