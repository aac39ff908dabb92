"""Run the course notebooks end to end with papermill: `python -m longmab_utils reproduce --profile NAME`.

Each notebook executes in its own kernel (the interpreter that runs this command), in
`notebooks/`, with `profile`, `run_dir`, `seed` and the `--set` overrides as parameters, and `solutions=True`
(each exercise is checked with its worked answer). Executed copies go to `RUN_DIR/executed/`;
`RUN_DIR/manifest.json` records the effective profile, package versions, the git commit, per-notebook
wall time and the key metrics of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from statistics import mean

from .. import standins
from ..artifacts import (
    ABLATION,
    ABLATION_MEASURES,
    ADAPTER,
    EXECUTED,
    MANIFEST,
    METRICS,
    PAIRS_SUMMARY,
    PROBE_SUMMARY,
    ROLLOUT_SUMMARY,
    TRAIN_SUMMARY,
)
from ..builddata import check_training_data
from ..config import PROJECT_ROOT, as_dict, get_profile
from ..data import read_json, write_json
from ..errors import UserError
from ..estimate import format_estimate
from ..preflight import preflight
from ..progress import BATCH_RUN

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
COURSE = ("01_chunking", "02_bandit_math", "03_rollout", "04_preference_pairs", "05_qlora_dpo", "06_evaluation")
ABLATIONS = ("07_ablations",)
PACKAGES = ("longmab_utils", "torch", "transformers", "trl", "peft", "sentence-transformers", "papermill", "numpy")
KERNEL_ENV = {"TQDM_MININTERVAL": "20", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
# Figures go into the executed notebooks whatever backend the shell set (the Makefile sets agg).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; the message names the notebook, the cell and the executed copy."""


@dataclass(frozen=True)
class Step:
    """One notebook of a run: where it comes from and where its executed copy goes."""

    name: str
    source: Path
    executed: Path


def new_run_dir(profile: str, seed: int, root: Path = PROJECT_ROOT / "runs") -> Path:
    """A fresh run folder named `<date-time>-<profile>-seed<k>`."""
    return root / f"{datetime.now():%Y%m%d-%H%M%S}-{profile}-seed{seed}"


def plan(run_dir: Path, start: str | None = None, notebooks: tuple[str, ...] = COURSE) -> list[Step]:
    """The notebooks to execute, from the one whose number or name is `start` on."""
    names = list(notebooks)
    if start:
        matches = [i for i, name in enumerate(names) if name == start or name.split("_")[0] == start.zfill(2)]
        if not matches:
            raise UserError(f"--from {start}: no such notebook; choose one of {', '.join(names)}")
        names = names[matches[0] :]
    return [Step(n, NOTEBOOK_DIR / f"{n}.ipynb", run_dir / EXECUTED / f"{n}.ipynb") for n in names]


def check_kernel() -> None:
    """Refuse to run when the `python3` kernel would start another interpreter than this one."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec("python3").argv
    if argv[0] not in ("python", "python3", f"python3.{sys.version_info[1]}", sys.executable):
        raise UserError(
            f"the 'python3' Jupyter kernel runs {argv[0]}, not this interpreter ({sys.executable}); "
            "remove that kernelspec or run from the project's .venv"
        )


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that change results."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    """The checkout's commit (with `+dirty` when it has local changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def key_metrics(run_dir: Path) -> dict:
    """The headline numbers of a run (scalars only), read from the artifacts the notebooks wrote."""
    found: dict = {}
    sources = {
        "probe": run_dir / PROBE_SUMMARY,
        "rollout": run_dir / ROLLOUT_SUMMARY,
        "pairs": run_dir / PAIRS_SUMMARY,
        "train": run_dir / ADAPTER / TRAIN_SUMMARY,
        "ablation": run_dir / ABLATION / ABLATION_MEASURES,
    }
    for key, path in sources.items():
        if path.exists():
            document = read_json(path)
            found[key] = (
                document if key == "ablation" else {k: v for k, v in document.items() if not isinstance(v, list | dict)}
            )
    if (run_dir / METRICS).exists():
        found["evaluation"] = {
            label: {m: round(100 * mean(s[m] for s in sets.values()), 1) for m in ("em", "f1", "subem")}
            for label, sets in read_json(run_dir / METRICS)["scores"].items()
        }
    return found


@contextmanager
def batch_run() -> Iterator[None]:
    """Mark the notebooks executed inside as a batch run (their kernels inherit the environment): quiet bars."""
    before = os.environ.get(BATCH_RUN)
    os.environ[BATCH_RUN] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BATCH_RUN)
        else:
            os.environ[BATCH_RUN] = before


def execute(step: Step, parameters: dict, cell_timeout: int | None) -> float:
    """Execute one notebook with papermill, streaming its output; returns wall seconds or raises NotebookFailed."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    step.executed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        with batch_run():
            pm.execute_notebook(
                step.source,
                step.executed,
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                log_output=True,
                cwd=str(NOTEBOOK_DIR),
                execution_timeout=cell_timeout,
            )
    except pm.PapermillExecutionError as error:
        raise NotebookFailed(
            f"{step.name} failed in cell {error.cell_index}: {error.ename}: {error.evalue}\n"
            f"executed copy: {step.executed}"
        ) from None
    except CellTimeoutError:
        raise NotebookFailed(
            f"{step.name}: a cell ran longer than {cell_timeout} s\nexecuted copy: {step.executed}"
        ) from None
    except DeadKernelError:
        raise NotebookFailed(
            f"{step.name}: the kernel died (usually out of memory)\nexecuted copy: {step.executed}"
        ) from None
    return time.perf_counter() - start


def write_manifest(
    run_dir: Path,
    profile_name: str,
    overrides: dict,
    timings: dict,
    status: str,
    commit: str | None,
    stand_ins: list[dict] | None = None,
) -> dict:
    """Write `manifest.json`: profile, effective parameters, versions, commit, timings, key metrics."""
    manifest = {
        "profile": profile_name,
        "overrides": overrides,
        "stand_ins": stand_ins,
        "parameters": as_dict(get_profile(profile_name, overrides)),
        "status": status,
        "versions": versions(),
        "python": sys.version.split()[0],
        "git_commit": commit,
        "notebook_seconds": timings,
        "metrics": key_metrics(run_dir),
    }
    write_json(run_dir / MANIFEST, manifest)
    return manifest


def summary_table(manifest: dict) -> str:
    """A few lines a person reads at the end of a run."""
    lines = [f"{'notebook':<22}{'seconds':>9}"]
    lines += [f"{name:<22}{seconds:>9.0f}" for name, seconds in manifest["notebook_seconds"].items()]
    lines.append(f"{'total':<22}{sum(manifest['notebook_seconds'].values()):>9.0f}")
    metrics = manifest["metrics"]
    if "pairs" in metrics:
        lines.append(f"pairs: {metrics['pairs']['pairs']} from {metrics['pairs']['samples']} rolled-out samples")
    for label, scores in metrics.get("evaluation", {}).items():
        lines.append(f"{label}: mean over sets EM {scores['em']}, F1 {scores['f1']}, SubEM {scores['subem']}")
    return "\n".join(lines)


def reproduce(
    profile_name: str,
    overrides: dict | None = None,
    run_dir: Path | None = None,
    start: str | None = None,
    notebooks: tuple[str, ...] = COURSE,
    cell_timeout: int | None = None,
    stand_ins: bool = False,
) -> dict:
    """Execute the course notebooks in order into one run folder and return the manifest.

    `cell_timeout` (seconds per cell) overrides the profile's `cell_timeout` and is recorded with the overrides.
    `stand_ins` runs a GPU profile on this CPU with the bundled models and small sizes (`standins.py`).
    """
    overrides = dict(overrides or {})
    if cell_timeout is not None:
        overrides["cell_timeout"] = cell_timeout
    profile = get_profile(profile_name, overrides)
    if start and run_dir is None:
        raise UserError("--from needs the --run-dir of the run to continue")
    run_dir = Path(run_dir or new_run_dir(profile_name, profile.seed)).resolve()
    steps = plan(run_dir, start, notebooks)
    if start is None and not stand_ins:
        check_training_data(profile.data, profile_name)  # a missing built file is named first
    for note in preflight(profile, stand_ins):  # what the profile's real models and GPU would refuse
        print(note)
    if profile.target_gpu:
        print(format_estimate(profile))
    changes = None
    if stand_ins:
        substitutions = standins.prepare(profile, run_dir)
        print(standins.table(profile_name, substitutions))
        overrides = {**overrides, **standins.overrides(substitutions)}
        changes = standins.record(substitutions)
        profile = get_profile(profile_name, overrides)
    if start is None:
        check_training_data(profile.data, profile_name)  # before any notebook starts
    check_kernel()
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    os.environ.setdefault("HF_HUB_OFFLINE", "1" if profile.policy_model.startswith("bundled:") else "0")
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = run_dir / MANIFEST
    timings = read_json(previous)["notebook_seconds"] if start and previous.exists() else {}
    commit = git_commit()  # the code the run started from, even if the checkout changes while it runs
    parameters = {"profile": profile_name, "run_dir": str(run_dir), "seed": profile.seed, "overrides": overrides}
    parameters["solutions"] = True  # batch runs check every exercise with its worked answer
    for step in steps:
        print(f"== {step.name} -> {step.executed}", flush=True)
        try:
            timings[step.name] = execute(step, parameters, profile.cell_timeout)
        except NotebookFailed:
            write_manifest(run_dir, profile_name, overrides, timings, f"failed in {step.name}", commit, changes)
            raise
        write_manifest(run_dir, profile_name, overrides, timings, "running", commit, changes)
    manifest = write_manifest(run_dir, profile_name, overrides, timings, "complete", commit, changes)
    print(summary_table(manifest))
    print(f"run folder: {run_dir}")
    return manifest


EXECUTED_DOCS = PROJECT_ROOT / "docs" / EXECUTED


def publish(run_dir: str | os.PathLike, out: Path = EXECUTED_DOCS) -> list[Path]:
    """Copy a complete cpu-tiny run's executed notebooks 01-07 into `out` (the course with its outputs, for
    readers on GitHub) with a README naming the run's commit and times; refuses any other run."""
    import shutil

    run_dir = Path(run_dir)
    manifest = read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).exists() else {}
    done = list(manifest.get("notebook_seconds", {}))
    if manifest.get("status") != "complete" or done != list(COURSE + ABLATIONS) or manifest["profile"] != "cpu-tiny":
        raise UserError(
            f"{run_dir} is not a complete cpu-tiny run of 01-07 (status {manifest.get('status')!r}, notebooks "
            f"{done}): make reproduce ARGS=--ablations, then make executed RUN=that/run"
        )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    copied = [Path(shutil.copy2(run_dir / EXECUTED / f"{name}.ipynb", out)) for name in done]
    seconds = manifest["notebook_seconds"]
    course, everything = sum(seconds[name] for name in COURSE), sum(seconds.values())
    rows = "\n".join(f"| [{name}]({name}.ipynb) | {took:.0f} |" for name, took in seconds.items())
    (out / "README.md").write_text(
        "# The course, executed\n\n"
        f"Notebooks 01-07 as `make reproduce ARGS=--ablations` executed them (profile cpu-tiny, seed "
        f"{manifest['parameters']['seed']}, commit `{manifest['git_commit']}`), with every output and figure; "
        "`make executed RUN=runs/<run>` refreshes this folder, and `tests/test_docs.py` fails when a notebook's "
        "code no longer matches its executed copy.\n\n| notebook | seconds on 2 CPU cores |\n|---|---|\n"
        f"{rows}\n\nNotebook time, kernel starts excluded: 01-06 {course / 60:.1f} min, "
        f"01-07 {everything / 60:.1f} min. The timed runs of the "
        "whole course are in [docs/results.md](../results.md#the-cpu-tiny-course).\n"
    )
    return copied
