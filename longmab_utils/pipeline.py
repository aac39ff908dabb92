"""The pipeline steps as functions: what the CLI runs and what the notebooks call, artifact in, artifact out.

Introduced in notebook 03. Each step reads the previous step's file from the run directory, checks
its inputs before any model loads, records the effective settings in `settings.json`, and writes
its own artifact under a fixed name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .chunking import HFTokenCounter
from .config import Profile, as_dict, project_path
from .data import read_json, read_records, read_samples, write_json
from .errors import UserError

SETTINGS_FILE = "settings.json"


class RunDirConflict(UserError):
    """The run directory holds artifacts made with other settings."""


def load_samples(profile: Profile, data: str | None = None) -> list[dict]:
    """The profile's training samples (validated), cut to `max_samples`."""
    samples = read_samples(project_path(data or profile.data))
    return samples[: profile.max_samples] if profile.max_samples else samples


def record_settings(run_dir: str | os.PathLike, step: str, profile: Profile, **extra: object) -> None:
    """Store the effective settings of a step; resuming a step with different settings is refused."""
    path = Path(run_dir) / SETTINGS_FILE
    settings = read_json(path) if path.exists() else {}
    current = {**as_dict(profile), **extra}
    previous = settings.get(step)
    if previous is not None and previous != current and (Path(run_dir) / f"{step}.jsonl").exists():
        changed = sorted(k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k))
        raise RunDirConflict(
            f"{run_dir} already has a {step} made with other settings ({', '.join(changed)}); use a new --run-dir"
        )
    settings[step] = current
    write_json(path, settings)


def probe(profile: Profile, run_dir: str | os.PathLike, data: str | None = None) -> dict:
    """Chunk, probe and score the samples; writes `priors.jsonl` (METHOD.md section 2)."""
    from .generation import build_generator
    from .models import check_remote_code, load_embedder
    from .probe import generate_probes, run_probe

    samples = load_samples(profile, data)
    check_remote_code(
        {
            "trust_remote_code": (profile.policy_model, profile.trust_remote_code),
            "embedder_trust_remote_code": (profile.embedding_model, profile.embedder_trust_remote_code),
        }
    )
    if (Path(run_dir) / "priors.jsonl").exists() and (Path(run_dir) / "probe_summary.json").exists():
        record_settings(run_dir, "priors", profile, data=str(data or profile.data))
        print(f"{run_dir}/priors.jsonl was made with these settings; reusing it")
        return read_json(Path(run_dir) / "probe_summary.json")
    if (Path(run_dir) / "rollout.jsonl").exists():
        raise RunDirConflict(f"{run_dir} already has a rollout; new priors would not match it. Use a new --run-dir")
    record_settings(run_dir, "priors", profile, data=str(data or profile.data))
    began = time.perf_counter()
    generator = build_generator(profile)
    tokenizer = generator.tokenizer
    try:
        probes = generate_probes(samples, generator, profile)
    finally:
        generator.close()  # the embedder must not load while the policy holds the GPU
    embedder = load_embedder(profile.embedding_model, profile.embedder_trust_remote_code)
    return run_probe(samples, probes, HFTokenCounter(tokenizer), embedder, profile, run_dir, began)


def rollout(profile: Profile, run_dir: str | os.PathLike, shard: str | None = None) -> dict:
    """The batched, resumable MAB rollout over `priors.jsonl`; writes `rollout.jsonl` (METHOD.md section 3)."""
    from .generation import build_generator
    from .rollout import run_rollout
    from .rollout import shard as shard_records

    priors_path = Path(run_dir) / "priors.jsonl"
    if not priors_path.exists():
        raise UserError(f"{priors_path} is missing; run the probe step first")
    records = read_records(priors_path)
    shard_records(records, shard)
    record_settings(run_dir, "rollout", profile)
    return run_rollout(records, build_generator(profile), profile, run_dir, shard)


def merge(profile: Profile, run_dir: str | os.PathLike, shards: int) -> dict:
    """Merge the rollout shards of a run into `rollout.jsonl`."""
    from .rollout import merge_shards

    if shards < 1:
        raise UserError(f"--shards {shards}: give the N of the `rollout --shard I/N` runs (1 or more)")
    return merge_shards(run_dir, read_records(Path(run_dir) / "priors.jsonl"), shards, profile.top_k)


def load_tokenizer(profile: Profile):
    """The policy's tokenizer alone (token budgets and checks need no weights)."""
    from transformers import AutoTokenizer

    from .models import resolve_model

    return AutoTokenizer.from_pretrained(
        resolve_model(profile.policy_model), trust_remote_code=profile.trust_remote_code
    )


def pairs(profile: Profile, run_dir: str | os.PathLike) -> dict:
    """Preference pairs from `rollout.jsonl`; writes `pairs.jsonl`, the TRL and LLaMA-Factory exports (METHOD.md 5)."""
    from .dpo import dpo_settings, llamafactory_yaml
    from .pairs import run_pairs

    rollout_path = Path(run_dir) / "rollout.jsonl"
    if not rollout_path.exists():
        raise UserError(f"{rollout_path} is missing; run the rollout step first")
    rollouts = read_records(rollout_path)
    settings = read_json(Path(run_dir) / SETTINGS_FILE) if (Path(run_dir) / SETTINGS_FILE).exists() else {}
    data = settings.get("priors", {}).get("data", profile.data)
    contexts = {s["id"]: s["context"] for s in read_samples(project_path(data))}
    missing = [r["id"] for r in rollouts if r["id"] not in contexts]
    if missing:
        raise UserError(
            f"{data} has no sample {missing[0]!r} from the rollout ({len(missing)} missing); "
            "restore the training file the probe step read, or start a new --run-dir"
        )
    record_settings(run_dir, "pairs", profile)
    records = [{**r, "context": contexts[r["id"]]} for r in rollouts]
    summary = run_pairs(records, load_tokenizer(profile), profile.seed, profile.max_prompt_length, run_dir)
    folder = (Path(run_dir) / "llamafactory").resolve()
    (folder / "train_dpo.yaml").write_text(llamafactory_yaml(dpo_settings(profile), profile.policy_model, str(folder)))
    return summary


def train(profile: Profile, run_dir: str | os.PathLike) -> dict:
    """DPO on `pairs.jsonl` (QLoRA on CUDA, LoRA on CPU); writes `adapter/`, its curves and `train_summary.json`."""
    from .dpo import dpo_settings, train_dpo
    from .hardware import is_main_process
    from .plots import training_curves

    pairs_path = Path(run_dir) / "pairs.jsonl"
    if not pairs_path.exists():
        raise UserError(f"{pairs_path} is missing; run the pairs step first")
    record_settings(run_dir, "train", profile)
    adapter = str(project_path(profile.policy_adapter)) if profile.policy_adapter else None
    result = train_dpo(pairs_path, profile.policy_model, run_dir, dpo_settings(profile), adapter, profile.dtype)
    steps = [e for e in result["log"] if "loss" in e]
    if not steps:
        print(f"no loss was logged: dpo.logging_steps={profile.dpo.logging_steps} exceeds the training steps")
    checks = {k: v for k, v in result["checks"].items() if k != "token_lengths"}
    summary = {
        "train_pairs": result["train_pairs"],
        "val_pairs": result["val_pairs"],
        "steps": len(steps),
        "checks": checks,
        "first_loss": steps[0]["loss"] if steps else None,
        "last_loss": steps[-1]["loss"] if steps else None,
        "last_reward_margin": steps[-1].get("rewards/margins") if steps else None,
    }
    if is_main_process():  # under `accelerate launch` every rank trains; one writes
        training_curves(result["log"], Path(run_dir) / "adapter" / "training_curves.png")
        write_json(Path(run_dir) / "adapter" / "train_summary.json", summary)
    return summary


def model_limit(profile: Profile) -> int | None:
    """The policy's own context limit (`max_position_embeddings` of its config), None when it does not say."""
    from transformers import AutoConfig

    from .models import resolve_model

    config = AutoConfig.from_pretrained(
        resolve_model(profile.policy_model), trust_remote_code=profile.trust_remote_code
    )
    return getattr(config, "max_position_embeddings", None)


def evaluate(profile: Profile, run_dir: str | os.PathLike, adapter: str | None = None, data: str | None = None) -> dict:
    """Base vs trained on every evaluation set; writes predictions, `metrics.json` and `evaluation.png`.

    One engine serves both: the trained adapter is switched on and off, so only one model is ever on the GPU.
    """
    from .evaluation import EvalSettings, comparison_table, eval_context, eval_files, read_eval_file, record_metrics
    from .evaluation import evaluate as evaluate_model
    from .generation import build_generator
    from .plots import evaluation_bars

    folder = project_path(data or profile.eval_data)
    if not folder.exists():
        raise UserError(f"evaluation data {folder} does not exist; pass --data or --set eval_data=FOLDER_OR_FILE")
    for path in eval_files(folder):
        read_eval_file(path)
    trained = adapter or (str(Path(run_dir) / "adapter") if (Path(run_dir) / "adapter").is_dir() else None)
    record_settings(run_dir, "evaluate", profile, adapter=trained, eval_data=str(folder))
    budget, context = eval_context(profile.eval_max_input_len, profile.eval_max_new_tokens, model_limit(profile))
    settings = EvalSettings(budget, profile.eval_max_new_tokens, profile.presence_penalty, profile.eval_max_items)
    generator = build_generator(profile, trained, max_model_len=context, batch_size=profile.eval_batch_size)
    results = {}
    try:
        for label in ("base", "trained") if trained else ("base",):
            if trained:
                generator.use_adapter(label == "trained")
            results[label] = evaluate_model(generator, generator.tokenizer, folder, settings, run_dir, label)
    finally:
        generator.close()
    document = record_metrics(run_dir, results, settings, {"policy": profile.policy_model, "adapter": trained})
    table = comparison_table(document["scores"])
    evaluation_bars(table, Path(run_dir) / "evaluation.png")
    print(table.to_string())
    return document["scores"]
