"""`reproduce --stand-ins`: a GPU profile's course on this CPU, only models and sizes changed, the real checks kept."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from longmab_utils import standins
from longmab_utils.config import Profile, get_profile
from longmab_utils.course import reproduce
from longmab_utils.data import read_json, read_records
from longmab_utils.sources import parse_question

ROOT = Path(__file__).resolve().parents[1]
GPU_PROFILES = ["gpu-16gb", "paper"]


def flat(profile: Profile) -> dict:
    """Every setting of a profile by its dotted key."""
    values = dataclasses.asdict(profile)
    dpo = values.pop("dpo")
    return {**values, **{f"dpo.{key}": value for key, value in dpo.items()}}


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_only_models_precision_and_sizes_change(name, tmp_path):
    profile = get_profile(name)
    changes = standins.substitutions(profile, tmp_path / "train.jsonl")
    stand_in = flat(get_profile(name, standins.overrides(changes)))
    changed = {key for key, value in flat(profile).items() if stand_in[key] != value}
    assert changed == {c.key for c in changes if c.was != c.now}
    sizes = {c.key for c in changes if c.why.startswith("size")}
    assert sizes <= set(standins.SIZES)
    for key in ("trust_remote_code", "embedder_trust_remote_code", "backend", "prior", "policy", "top_k",
                "reward_subem_on", "eval_data", "dpo.beta", "dpo.sft_weight", "dpo.precompute_ref",
                "dpo.gradient_checkpointing", "keep_invalid_probes", "name"):  # fmt: skip
        assert stand_in[key] == flat(profile)[key], key


def test_the_table_names_every_substitution_with_its_reason(tmp_path):
    changes = standins.substitutions(get_profile("paper"), tmp_path / "train.jsonl")
    text = standins.table("paper", changes)
    for change in changes:
        line = next(row for row in text.splitlines() if row.strip().startswith(change.key + " "))
        assert change.why in line
    assert {"policy_model", "embedding_model", "dpo.quantization", "data"} <= {c.key for c in changes}


def test_the_fixture_is_musique_whose_supporting_paragraphs_hold_the_evidence(tmp_path):
    path = standins.musique_fixture(tmp_path / "musique.jsonl")
    source = read_records(standins.FIXTURE_SOURCE)
    for line, (record, sample) in enumerate(zip(read_records(path), source, strict=True), 1):
        question = parse_question(path, line, record)
        supporting = " ".join(p.text for p in question.paragraphs if p.supporting)
        assert all(fact in supporting for fact in sample["evidence"]) and question.answer == sample["answer"]


def test_a_refused_embedder_stops_the_stand_in_run_before_any_notebook(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "longmab_utils", "reproduce", "--profile", "paper", "--stand-ins",
               "--run-dir", str(run_dir), "--set", "embedding_model=openbmb/MiniCPM-Embedding"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "embedder_trust_remote_code" in done.stderr
    assert not (run_dir / "executed").exists()


@pytest.mark.models
@pytest.mark.standins
@pytest.mark.parametrize("name", GPU_PROFILES)
def test_the_gpu_profile_course_runs_with_stand_ins(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    run_dir = tmp_path / "run"
    manifest = reproduce.reproduce(name, {}, run_dir, stand_ins=True)
    printed = capsys.readouterr().out
    assert manifest["status"] == "complete" and list(manifest["notebook_seconds"]) == list(reproduce.COURSE)
    assert "estimated time of notebooks 03-06" in printed and f"stand-ins for profile {name}" in printed
    parameters = read_json(run_dir / "manifest.json")["parameters"]
    assert parameters["name"] == name and parameters["backend"] == get_profile(name).backend
    assert {row["key"] for row in manifest["stand_ins"]} >= {"policy_model", "dpo.quantization"}
    built = run_dir / "stand-ins" / Path(get_profile(name).data).name
    assert built.exists() and built.with_suffix(".card.md").exists()
    assert_every_artifact(run_dir, parameters["rounds"], parameters["top_k"])
    assert_plots_shown_without_widget_state(run_dir)


def assert_every_artifact(run_dir: Path, rounds: int, top_k: int) -> None:
    """Each step's artifact is there and well formed: priors per chunk, every round logged, distinct scored pairs,
    a finite training loss and a saved adapter, and base and trained scores on the same sets."""
    assert read_json(run_dir / "chunking_summary.json")["chunks"] > 0
    priors = read_records(run_dir / "priors.jsonl")
    assert priors and all(len(r["priors"]) == len(r["chunks"]) for r in priors)
    for record in read_records(run_dir / "rollout.jsonl"):
        assert [r["round"] for r in record["rounds"]] == list(range(1, rounds + 1))
        assert all(len(r["selected"]) == top_k and 0 <= r["reward"] <= 1 for r in record["rounds"])
        assert all(len(r["values"]) == record["n_chunks"] for r in record["rounds"])
    pairs = read_records(run_dir / "pairs.jsonl")
    assert pairs and all(p["chosen"] != p["rejected"] and p["chosen_score"] > p["rejected_score"] for p in pairs)
    train = read_json(run_dir / "adapter" / "train_summary.json")
    assert math.isfinite(train["first_loss"]) and math.isfinite(train["last_loss"])
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    scores = read_json(run_dir / "metrics.json")["scores"]
    assert set(scores) == {"base", "trained"} and set(scores["base"]) == set(scores["trained"])


def assert_plots_shown_without_widget_state(run_dir: Path) -> None:
    """Every executed notebook shows at least one figure and saves no widget state."""
    for name in reproduce.COURSE:
        notebook = json.loads((run_dir / "executed" / f"{name}.ipynb").read_text())
        images = [o for c in notebook["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{name} shows no plot"
        assert "widgets" not in notebook["metadata"]
    assert len(list(run_dir.glob("*.png"))) >= 10
