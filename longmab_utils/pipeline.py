"""The pipeline steps as functions: what the CLI runs and what the notebooks call, artifact in, artifact out.

Introduced in notebook 03. The probe step copies the validated training samples into the run folder
(`samples.jsonl`); every later step reads only the run folder's artifacts. Each step checks its
inputs before any model loads, records the settings it reads and the SHA-256 of its inputs in
`settings.json` (`runfolder.py`), refuses to replace work made with other settings unless `force`,
and writes its own artifact under a fixed name.
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from pathlib import Path

from .artifacts import (
    ADAPTER,
    EVALUATION_FIGURE,
    LLAMAFACTORY,
    METRICS,
    PAIRS,
    PREDICTIONS,
    PRIORS,
    PROBE_SUMMARY,
    ROLLOUT,
    TRAIN_SUMMARY,
    TRAINING_CURVES,
)
from .builddata import check_training_data
from .chunking import HFTokenCounter
from .config import Profile, project_path
from .data import import_samples, read_json, read_records, read_samples, write_json
from .errors import UserError
from .runfolder import SAMPLES, adapter_sha256, begin, sha256
from .runlock import writes_run_dir


def training_data(profile: Profile, data: str | os.PathLike | None = None) -> Path:
    """The training file to read (the profile's by default); a missing built file names the command that makes it."""
    check_training_data(data or profile.data, profile.name)
    return project_path(data or profile.data)


def load_samples(profile: Profile, data: str | os.PathLike | None = None) -> list[dict]:
    """The training samples of a file (the profile's by default), validated and cut to `max_samples`."""
    return read_samples(training_data(profile, data))[: profile.max_samples]


def artifact(run_dir: str | os.PathLike, name: str, step: str) -> Path:
    """The path of a run-folder artifact, or a UserError naming the step that writes it."""
    path = Path(run_dir) / name
    if not path.exists():
        raise UserError(f"{path} is missing; run the {step} step first")
    return path


@writes_run_dir("probe")
def probe(profile: Profile, run_dir: str | os.PathLike, data: str | None = None, force: bool = False) -> dict:
    """Copy the validated samples into `samples.jsonl`, then probe and score them into `priors.jsonl` (METHOD.md 2)."""
    from .generation import build_generator
    from .models import check_remote_code, load_embedder
    from .probe import generate_probes, run_probe

    source = training_data(profile, data)  # a missing file stops before the run folder is made
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    staged = run / f".{SAMPLES}.new"
    import_samples(source, staged)  # validates the whole file; nothing is written if a line is bad
    try:
        check_remote_code(
            {
                "trust_remote_code": (profile.policy_model, profile.trust_remote_code),
                "embedder_trust_remote_code": (profile.embedding_model, profile.embedder_trust_remote_code),
            }
        )
        matched = begin(run, "probe", profile, {SAMPLES: sha256(staged)}, force, data=str(source.resolve()))
    except BaseException:
        staged.unlink()
        raise
    os.replace(staged, run / SAMPLES)
    if matched and (run / PRIORS).exists() and (run / PROBE_SUMMARY).exists():
        print(f"{run}/priors.jsonl was made with these settings and samples; reusing it")
        return read_json(run / PROBE_SUMMARY)
    samples = load_samples(profile, run / SAMPLES)
    began = time.perf_counter()
    generator = build_generator(profile)
    tokenizer = generator.tokenizer
    try:
        probes = generate_probes(samples, generator, profile)
    finally:
        generator.close()  # the embedder must not load while the policy holds the GPU
    embedder = load_embedder(profile.embedding_model, profile.embedder_trust_remote_code)
    return run_probe(samples, probes, HFTokenCounter(tokenizer), embedder, profile, run_dir, began)


@writes_run_dir("rollout")
def rollout(profile: Profile, run_dir: str | os.PathLike, shard: str | None = None, force: bool = False) -> dict:
    """The batched, resumable MAB rollout over `priors.jsonl` into `rollout.jsonl` or a shard's file (METHOD.md 3)."""
    from .generation import build_generator
    from .rollout import rollout_path, run_rollout
    from .rollout import shard as shard_records

    priors_path = artifact(run_dir, PRIORS, "probe")
    records = read_records(priors_path)
    shard_records(records, shard)
    shard_file = rollout_path(run_dir, shard).name if shard else None
    begin(run_dir, "rollout", profile, {PRIORS: sha256(priors_path)}, force, shard=shard_file)
    with closing(build_generator(profile)) as generator:  # also on Ctrl-C: an engine left behind holds the GPU
        return run_rollout(records, generator, profile, run_dir, shard)


@writes_run_dir("merge")
def merge(profile: Profile, run_dir: str | os.PathLike, shards: int, force: bool = False) -> dict:
    """Merge the rollout shards of a run, all made with this profile's rollout settings, into `rollout.jsonl`."""
    from .rollout import merge_shards, rollout_path
    from .runfolder import check_shards

    if shards < 1:
        raise UserError(f"--shards {shards}: give the N of the `rollout --shard I/N` runs (1 or more)")
    priors_path = artifact(run_dir, PRIORS, "probe")
    inputs = {PRIORS: sha256(priors_path)}
    check_shards(run_dir, [rollout_path(run_dir, f"{i}/{shards}").name for i in range(shards)], profile, inputs)
    begin(run_dir, "rollout", profile, inputs, force)
    return merge_shards(run_dir, read_records(priors_path), shards, profile.top_k)


@writes_run_dir("pairs")
def pairs(profile: Profile, run_dir: str | os.PathLike, force: bool = False) -> dict:
    """Preference pairs from `rollout.jsonl` and `samples.jsonl`, with TRL and LLaMA-Factory exports (METHOD.md 5)."""
    from .dpo import dpo_settings, llamafactory_yaml
    from .models import load_tokenizer
    from .pairs import run_pairs

    rollout_path = artifact(run_dir, ROLLOUT, "rollout")
    samples_path = artifact(run_dir, SAMPLES, "probe")
    rollouts = read_records(rollout_path)
    contexts = {s["id"]: s["context"] for s in read_records(samples_path)}
    missing = [r["id"] for r in rollouts if r["id"] not in contexts]
    if missing:
        raise UserError(
            f"{samples_path} has no sample {missing[0]!r} from the rollout ({len(missing)} missing); "
            "the run folder was mixed by hand: start a new --run-dir"
        )
    inputs = {ROLLOUT: sha256(rollout_path), SAMPLES: sha256(samples_path)}
    begin(run_dir, "pairs", profile, inputs, force)
    records = [{**r, "context": contexts[r["id"]]} for r in rollouts]
    summary = run_pairs(records, load_tokenizer(profile), profile.seed, profile.max_prompt_length, run_dir)
    folder = (Path(run_dir) / LLAMAFACTORY).resolve()
    (folder / "train_dpo.yaml").write_text(llamafactory_yaml(dpo_settings(profile), profile.policy_model, str(folder)))
    return summary


@writes_run_dir("train")
def train(profile: Profile, run_dir: str | os.PathLike, force: bool = False) -> dict:
    """DPO on `pairs.jsonl` (QLoRA on CUDA, LoRA on CPU); writes `adapter/`, its curves and `train_summary.json`.

    A finished adapter made with the same settings and pairs is reused; a crashed one resumes from its checkpoint.
    """
    import matplotlib.pyplot as plt

    from .dpo import dpo_settings, train_dpo
    from .hardware import is_main_process
    from .modelcard import write_model_card
    from .plots import training_curves

    pairs_path = artifact(run_dir, PAIRS, "pairs")
    done = Path(run_dir) / ADAPTER / TRAIN_SUMMARY
    if begin(run_dir, "train", profile, {PAIRS: sha256(pairs_path)}, force) and done.exists():
        print(f"{done.parent} was trained with these settings and pairs; reusing it (--force retrains)")
        return read_json(done)
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
        **{k: result[k] for k in ("trainable_params", "total_params", "peak_memory_gb", "peak_memory_of")},
    }
    if is_main_process():  # under `accelerate launch` every rank trains; one writes
        plt.close(training_curves(result["log"], done.parent / TRAINING_CURVES))  # notebook 05 draws it once
        write_json(done, summary)
        write_model_card(done.parent, profile)  # evaluate adds the paired comparison
    return summary


@writes_run_dir("evaluate")
def evaluate(
    profile: Profile,
    run_dir: str | os.PathLike,
    adapter: str | None = None,
    data: str | None = None,
    force: bool = False,
) -> dict:
    """Base vs trained on every evaluation set; writes predictions, `metrics.json` and `evaluation.png` (the
    item-level outcomes when there is a trained model, the base's scores alone otherwise).

    Metrics made with the same settings, evaluation files and adapter are reused (`force` evaluates again).

    One engine serves both: the trained adapter is switched on and off, so only one model is ever on the GPU.
    """
    import matplotlib.pyplot as plt

    from .evaluation import EvalSettings, comparison_table, eval_context, eval_files, read_eval_file, record_metrics
    from .evaluation import evaluate as evaluate_model
    from .generation import build_generator
    from .modelcard import write_model_card
    from .models import model_limit
    from .plots import evaluation_bars, paired_outcomes
    from .runfolder import stale_steps

    folder = project_path(data or profile.eval_data)
    if not folder.exists():
        raise UserError(f"evaluation data {folder} does not exist; pass --data or --set eval_data=FOLDER_OR_FILE")
    files = eval_files(folder)
    for path in files:
        read_eval_file(path)
    own = Path(run_dir) / ADAPTER
    trained = adapter or (str(own) if own.is_dir() else None)
    inputs = {f"eval_data/{path.name}": sha256(path) for path in files}
    if trained:
        inputs[ADAPTER if Path(trained).resolve() == own.resolve() else str(Path(trained).resolve())] = adapter_sha256(
            trained
        )
    run = Path(run_dir)
    old = stale_steps(run).get("evaluate")
    matched = begin(run, "evaluate", profile, inputs, force)
    if matched and (run / METRICS).exists() and (run / PREDICTIONS).is_dir():
        print(f"{run / METRICS} matches these settings, sets and adapter; reusing it (force=True evaluates again)")
        document = read_json(run / METRICS)
    else:
        if old:
            print(f"the metrics in {run} were stale ({old}); evaluating again")
        budget, context = eval_context(profile.eval_max_input_len, profile.eval_max_new_tokens, model_limit(profile))
        settings = EvalSettings(budget, profile.eval_max_new_tokens, profile.presence_penalty, profile.eval_max_items)
        generator = build_generator(profile, trained, max_model_len=context, batch_size=profile.eval_batch_size)
        results = {}
        try:
            for label in ("base", "trained") if trained else ("base",):
                if trained:
                    generator.use_adapter(label == "trained")
                results[label] = evaluate_model(generator, generator.tokenizer, folder, settings, run, label)
        finally:
            generator.close()
        document = record_metrics(run, results, settings, {"policy": profile.policy_model, "adapter": trained})
    scores = document["scores"]
    if "paired" in document and trained and Path(trained).resolve() == own.resolve() and (own / TRAIN_SUMMARY).exists():
        write_model_card(own, profile, document["paired"])
    table = comparison_table(scores)
    figure = paired_outcomes(document["paired"], run / EVALUATION_FIGURE) if "paired" in document else None
    plt.close(figure or evaluation_bars(table, run / EVALUATION_FIGURE))  # saved, not shown: notebook 06 shows it
    print(table.to_string())
    return scores
