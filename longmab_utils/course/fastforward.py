"""Start any notebook first: copy the shipped `cpu-tiny` artifacts of the earlier steps into the run folder.

Introduced in notebooks 03-07 (`fast_forward` parameter). `data/cpu-tiny-run/` holds what a `make reproduce`
run wrote (seed 42): samples, priors, rollout, pairs and the trained adapter, with that run's step records
from `settings.json`; `python -m longmab_utils.course.fastforward RUN_DIR` makes it again from a finished run.
Only steps the run folder lacks are copied; a run folder that made an earlier step itself is never mixed
with shipped later ones.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..artifacts import (
    ADAPTER,
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    DPO_SETTINGS,
    MANIFEST,
    PAIRS,
    PAIRS_SUMMARY,
    PAIRS_TRL,
    PRIORS,
    PROBE_SUMMARY,
    PROVENANCE,
    ROLLOUT,
    ROLLOUT_SUMMARY,
    SAMPLES,
    TRAIN_SUMMARY,
    TRAINING_LOG,
)
from ..config import PROJECT_ROOT, Profile, get_profile
from ..data import read_json, write_json
from ..errors import UserError
from ..runfolder import PRODUCERS, SETTINGS, STEPS, adapter_sha256, read_settings, sha256

SHIPPED = PROJECT_ROOT / "data" / "cpu-tiny-run"
"""The artifacts of the shipped cpu-tiny run."""

MAIN_ARTIFACT = {step: name for name, step in PRODUCERS.items()}
"""The artifact that shows a step has run, by step, in pipeline order: the last one it writes for later steps
(the probe: `priors.jsonl`, written after `samples.jsonl`)."""

SHIPPED_FILES = (SAMPLES, PRIORS, PROBE_SUMMARY, ROLLOUT, ROLLOUT_SUMMARY)
SHIPPED_FILES += (PAIRS, PAIRS_TRL, PAIRS_SUMMARY)
SHIPPED_ADAPTER = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, TRAIN_SUMMARY, TRAINING_LOG)
SHIPPED_ADAPTER += (DPO_SETTINGS,)
"""What is shipped: the steps' artifacts, without exports that hold absolute paths, checkpoints or figures."""

COMMAND = "make reproduce; python -m longmab_utils.course.fastforward runs/<that run>"
"""How the shipped run was made."""

WRITER = {"probe": "03_rollout", "rollout": "03_rollout", "pairs": "04_preference_pairs", "train": "05_qlora_dpo"}
"""The notebook that runs each step."""


def _fingerprint(path: Path) -> str:
    """SHA-256 of a step's main artifact (an adapter: of its weights and config)."""
    return adapter_sha256(path) if path.is_dir() else sha256(path)


def steps_up_to(step: str) -> list[str]:
    """The steps from the probe up to and including `step`."""
    if step not in MAIN_ARTIFACT:
        raise ValueError(f"fast-forward step {step!r}: choose one of {', '.join(MAIN_ARTIFACT)}")
    order = list(MAIN_ARTIFACT)
    return order[: order.index(step) + 1]


def ensure(
    run_dir: str | os.PathLike, step: str, fast_forward: bool, profile: str | Profile, shipped: Path = SHIPPED
) -> list[str]:
    """Make sure `run_dir` holds every step up to `step`, copying the shipped ones it lacks when `fast_forward`.

    Returns the steps copied. Without `fast_forward`, a missing artifact is a UserError naming the notebook
    that writes it.
    """
    run = Path(run_dir)
    chain = steps_up_to(step)
    missing = [s for s in chain if not (run / MAIN_ARTIFACT[s]).exists()]
    if not missing:
        return []
    first = missing[0]
    if not fast_forward:
        raise UserError(
            f"{run / MAIN_ARTIFACT[first]} is missing: run notebook {WRITER[first]} first with this run_dir, "
            "or set fast_forward = True to copy the shipped cpu-tiny artifacts"
        )
    profile = get_profile(profile) if isinstance(profile, str) else profile
    records = read_json(shipped / SETTINGS)
    shipped_model = records["probe"]["settings"]["policy_model"]
    if profile.policy_model != shipped_model:
        raise UserError(
            f"fast_forward copies artifacts made with {shipped_model}; profile {profile.name!r} uses "
            f"{profile.policy_model}: run the earlier notebooks with this profile instead"
        )
    own = [s for s in chain if s not in missing]
    for earlier in own:
        if _fingerprint(run / MAIN_ARTIFACT[earlier]) != _fingerprint(shipped / MAIN_ARTIFACT[earlier]):
            raise UserError(
                f"{run} has its own {earlier} but no {first}: run notebook {WRITER[first]} with this run_dir, "
                "or choose an empty run_dir to fast-forward"
            )
    run.mkdir(parents=True, exist_ok=True)
    document = read_settings(run)
    for name in missing:
        for output in STEPS[name].outputs:
            source, target = shipped / output, run / output
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.exists():
                shutil.copy2(source, target)
        document[name] = records[name]
    write_json(run / SETTINGS, {**document, "stale": document.get("stale", {})})
    print(f"fast_forward: copied {', '.join(missing)} from the shipped cpu-tiny run ({shipped}) into {run}")
    return missing


def ship(run_dir: str | os.PathLike, target: str | os.PathLike = SHIPPED) -> Path:
    """Copy a finished cpu-tiny run's artifacts and step records into `target` (the shipped run)."""
    run, target = Path(run_dir), Path(target)
    records = read_settings(run)
    missing = [s for s in MAIN_ARTIFACT if s not in records or not (run / MAIN_ARTIFACT[s]).exists()]
    if (
        missing
        or records.get("stale")
        or records["probe"]["settings"]["policy_model"] != get_profile("cpu-tiny").policy_model
    ):
        raise UserError(
            f"{run} is not a finished, fresh cpu-tiny run (missing or stale: {missing or records['stale']})"
        )
    if target.exists():
        shutil.rmtree(target)
    (target / ADAPTER).mkdir(parents=True)
    for name in SHIPPED_FILES:
        shutil.copy2(run / name, target / name)
    for name in SHIPPED_ADAPTER:
        shutil.copy2(run / ADAPTER / name, target / ADAPTER / name)
    kept = {step: records[step] for step in MAIN_ARTIFACT}
    kept["probe"]["data"] = os.path.relpath(kept["probe"]["data"], PROJECT_ROOT)
    write_json(target / SETTINGS, {**kept, "stale": {}})
    manifest = read_json(run / MANIFEST) if (run / MANIFEST).exists() else {}
    provenance = {key: manifest.get(key) for key in ("profile", "git_commit", "versions")}
    write_json(target / PROVENANCE, {"run": run.name, **provenance, "command": COMMAND})
    return target


if __name__ == "__main__":
    print(f"shipped into {ship(sys.argv[1])}")
