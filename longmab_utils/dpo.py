"""DPO on the preference pairs with TRL and PEFT: QLoRA on a CUDA box, LoRA in fp32 on a CPU.

Introduced in notebook 05 (METHOD.md section 6). The loss is DPO's sigmoid loss plus an SFT term
on the chosen response (TRL 1.x: `loss_type=["sigmoid", "sft"]` with `loss_weights=[1, ftx]`).
Before training, `check_pairs` looks for the faults that leave a DPO loss stuck at log 2 = 0.693.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from .artifacts import ADAPTER, DPO_SETTINGS, TRAINING_LOG
from .compat import checkpointing_kwargs, fp32_trainable
from .config import DPOSettings, project_path
from .data import read_records, write_json
from .errors import UserError
from .hardware import Precision, cuda_capability, device_map, is_main_process, peak_memory_gb, world_size
from .hardware import precision as precision_for
from .pairs import DEFAULT_SEED, to_trl
from .progress import progress
from .seeds import derive_seed


def lora_config(settings: DPOSettings) -> Any:
    """PEFT LoraConfig on all linear layers."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def quantization_config(settings: DPOSettings, compute_dtype: torch.dtype | None) -> Any:
    """bitsandbytes 4-bit NF4 config for QLoRA (compute in the device's dtype), None for plain LoRA.

    `compute_dtype` None means no CUDA device: 4-bit is then an error, not a silent fallback.
    """
    if settings.quantization == "none":
        return None
    if settings.quantization != "4bit":
        raise ValueError(f"quantization must be '4bit' or 'none', got {settings.quantization!r}")
    if compute_dtype is None:
        raise UserError("4-bit QLoRA needs a CUDA GPU and bitsandbytes; on a CPU use --set dpo.quantization=none")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype if compute_dtype != torch.float32 else torch.float16,
    )


def interval(requested: int | None, total_steps: int, times: int = 10) -> int:
    """Steps between evaluations or checkpoints: the request, else about `times` over the run."""
    return requested if requested else max(1, total_steps // times)


def total_steps(train_pairs: int, settings: DPOSettings, world_size: int = 1) -> int:
    """Optimizer steps of a run (the trainer's own count: batches per epoch over accumulation, times epochs)."""
    batches = math.ceil(train_pairs / (settings.batch_size * world_size))
    return max(1, math.ceil(math.ceil(batches / settings.grad_accum) * settings.epochs))


def dpo_config_kwargs(
    settings: DPOSettings,
    output_dir: str,
    precision: Precision,
    cuda: bool,
    has_eval: bool,
    steps: int,
    config_class: type | None = None,
) -> dict[str, Any]:
    """Our settings as TRL DPOConfig arguments (`config_class` picks the checkpointing name its release knows)."""
    if config_class is None:
        from trl import DPOConfig as config_class
    return {
        "output_dir": output_dir,
        "beta": settings.beta,
        "loss_type": ["sigmoid", "sft"],  # notebook 05, equation (2): the DPO term plus the weighted SFT term
        "loss_weights": [1.0, settings.sft_weight],
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.epochs,
        "lr_scheduler_type": "cosine",
        "warmup_steps": settings.warmup,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "max_length": settings.max_length,
        "bf16": precision.bf16,
        "fp16": precision.fp16,
        **checkpointing_kwargs(config_class, settings.gradient_checkpointing),
        "precompute_ref_log_probs": settings.precompute_ref,
        "use_cpu": not cuda,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": interval(settings.eval_steps, steps),
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps",
        "save_steps": interval(settings.save_steps, steps),
        "save_total_limit": 2,
        "report_to": settings.report_to,
        "seed": settings.seed,
        "dataloader_num_workers": 0,
        **({"deepspeed": settings.deepspeed} if settings.deepspeed else {}),
    }


def split_pairs(pairs: Sequence[dict], val_size: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded hold-out split; at least one training pair, validation only when there are enough pairs."""
    import random

    order = list(range(len(pairs)))
    random.Random(derive_seed(seed, "dpo-split")).shuffle(order)
    n_val = math.floor(len(pairs) * val_size) if len(pairs) >= 10 else 0
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def _template_ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a conversation after the chat template."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def leading_bos(ids: Sequence[int], bos: int | None) -> int:
    """How many BOS tokens open a sequence (more than one means the template and tokenizer both added it)."""
    count = 0
    while bos is not None and count < len(ids) and ids[count] == bos:
        count += 1
    return count


def check_pairs(pairs: Sequence[dict], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """What a DPO run needs of its pairs: distinct responses, a positive score gap, lengths, one BOS.

    A pair whose prompt alone fills `max_length` has no completion token left, and TRL drops it; when every pair
    would go, this stops with the numbers instead of TRL's empty-batch crash.
    """
    if not pairs:
        raise UserError("no preference pairs to train on; check pairs_summary.json for why samples were skipped")
    lengths, prompts, bos = [], [], []
    for pair in pairs:
        messages = to_trl(pair)
        prompts.append(len(_template_ids(tokenizer, messages["prompt"], add_generation_prompt=True)))
        chosen = _template_ids(tokenizer, messages["prompt"] + messages["chosen"])
        rejected = _template_ids(tokenizer, messages["prompt"] + messages["rejected"])
        lengths.append(max(len(chosen), len(rejected)))
        bos.append(leading_bos(chosen, tokenizer.bos_token_id))
    return {
        "pairs": len(pairs),
        "identical_responses": sum(p["chosen"] == p["rejected"] for p in pairs),
        "non_positive_gap": sum(p["chosen_score"] <= p["rejected_score"] for p in pairs),
        "over_max_length": sum(n > max_length for n in lengths),
        "prompt_fills_max_length": sum(n >= max_length for n in prompts),
        "max_tokens": max(lengths),
        "token_lengths": lengths,
        "prompt_tokens": prompts,
        "double_bos": sum(n > 1 for n in bos),
    }


@contextmanager
def quiet_training() -> Iterator[None]:
    """Training without `datasets` progress bars (one per preprocessing pass) or the deprecation warning PEFT
    triggers in transformers 5 (`is_gradient_checkpointing`); the bars' setting is restored afterwards."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars:
            datasets.enable_progress_bars()


def plain_progress(handler: Any) -> None:
    """Swap a trainer's progress display (in a notebook, a live table of every logged metric; in a terminal, every
    log line) for a bare bar over the steps; notebook 05 shows the log itself afterwards."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class StepBar(ProgressCallback):
        """The trainer's step bar without its log lines."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """Open the step bar (on the main process), quiet in a batch run like every other bar of the kit."""
            if state.is_world_process_zero:
                self.training_bar = progress(total=state.max_steps, desc="train", unit="step")
            self.current_step = 0

        def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            """No bar for the held-out evaluation: a few pairs, done in seconds, would leave a stale bar each time."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            """Print nothing: the log is in `trainer.state.log_history`."""

    for callback in list(handler.callbacks):
        if isinstance(callback, PrinterCallback) or type(callback).__name__.endswith("ProgressCallback"):
            handler.remove_callback(callback)
    handler.add_callback(StepBar())


def completion_logps(model: Any, ids: Sequence[int], prompt_length: int) -> torch.Tensor:
    """Log-probability of each token after the first `prompt_length` under `model`, as DPO sums them into the
    log-ratios of notebook 05's equation (1).

    Only the positions that predict a completion token get logits (`logits_to_keep`): the whole sequence's
    full-vocabulary logits in fp32 would be 8 GB at 6.7k tokens and a 152k vocabulary.
    """
    completion = len(ids) - prompt_length
    with torch.no_grad():
        output = model(torch.tensor([list(ids)], device=model.device), logits_to_keep=completion + 1)
    logits = output.logits[0, :-1].float()  # row j predicts completion token j; the last position predicts none
    targets = torch.tensor(list(ids[prompt_length:]), device=logits.device)
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0].cpu()


def load_for_training(
    policy_model: str, policy_adapter: str | None, precision: Precision, settings: DPOSettings, cuda: bool
) -> tuple[Any, Any]:
    """The policy to train: full precision with any warm-start adapter merged, or 4-bit for QLoRA, on this rank's
    device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import from_hub, load_policy, resolve_model

    quantized = quantization_config(settings, precision.dtype if cuda else None)
    if quantized is None:
        model, tokenizer = load_policy(policy_model, policy_adapter, precision.dtype)
    else:
        from peft import prepare_model_for_kbit_training

        if policy_adapter:
            raise UserError(
                "QLoRA starts from the base model; merge the policy adapter first or use dpo.quantization=none"
            )
        path = resolve_model(policy_model)
        with from_hub(path):
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(
                path,
                quantization_config=quantized,
                dtype=precision.dtype,
                use_safetensors=True,
                device_map=device_map(cuda),
            )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def last_checkpoint(trainer_dir: Path) -> str | None:
    """The newest `checkpoint-N` folder a crashed run left, or None."""
    found = sorted(trainer_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rpartition("-")[2]))
    return str(found[-1]) if found else None


def shared_dataset(rows: list[dict], folder: Path, args: Any) -> Any:
    """`rows` as a dataset stored in `folder`, written by rank 0 before the other ranks read it.

    TRL caches precomputed reference log-probs next to the dataset's own files, and only rank 0 writes them; an
    in-memory dataset would put that cache in a temporary folder of each process, so the other ranks of a
    distributed launch would look for a file that only rank 0 has.
    """
    from datasets import Dataset, load_from_disk

    with args.main_process_first(local=False, desc=f"storing {folder.name}"):
        if is_main_process():
            Dataset.from_list(rows).save_to_disk(str(folder))
        return load_from_disk(str(folder))


def check_report_to(report_to: str) -> None:
    """Refuse a logger whose package is missing before any model loads (transformers would fail after)."""
    from transformers.integrations.integration_utils import is_tensorboard_available

    if report_to == "tensorboard" and not is_tensorboard_available():
        raise UserError("dpo.report_to=tensorboard needs TensorBoard's writer: pip install tensorboard")


def train_dpo(
    pairs_path: str | os.PathLike,
    policy_model: str,
    out_dir: str | os.PathLike,
    settings: DPOSettings,
    policy_adapter: str | None = None,
    dtype: str = "auto",
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train a LoRA (or QLoRA) adapter with TRL's DPOTrainer; save adapter, tokenizer, settings and log.

    Checkpoints go to `out_dir/_trainer`; a run that crashed resumes from the newest one, and a finished run
    removes them.
    """
    import shutil

    from trl import DPOConfig, DPOTrainer

    settings = seeded(settings)  # a caller's own settings without a seed get the default run seed's
    pairs = read_records(pairs_path)
    out_dir = Path(out_dir)
    check_report_to(settings.report_to)
    capability = cuda_capability()
    precision = precision_for(dtype, capability)
    model, tokenizer = load_for_training(policy_model, policy_adapter, precision, settings, capability is not None)
    report = check_pairs(pairs, tokenizer, settings.max_length)
    if report["prompt_fills_max_length"] == len(pairs):
        raise UserError(
            f"{pairs_path}: every pair's prompt has at least dpo.max_length={settings.max_length} tokens (the shortest "
            f"has {min(report['prompt_tokens'])}), so no completion token would be trained on; raise dpo.max_length "
            "or lower max_prompt_length"
        )
    train, val = split_pairs(pairs, settings.val_size, settings.seed)
    trainer_dir = out_dir / "_trainer"
    steps = total_steps(len(train), settings, world_size())
    kwargs = dpo_config_kwargs(settings, str(trainer_dir), precision, capability is not None, bool(val), steps)
    with quiet_training():
        args = DPOConfig(**kwargs)
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=shared_dataset([to_trl(p) for p in train], trainer_dir / "train_pairs", args),
            eval_dataset=shared_dataset([to_trl(p) for p in val], trainer_dir / "val_pairs", args) if val else None,
            processing_class=tokenizer,
            peft_config=lora_config(settings),
            callbacks=list(callbacks),
        )
        plain_progress(trainer.callback_handler)
        if precision.fp16:
            fp32_trainable(trainer.model)
        trainer.train(resume_from_checkpoint=last_checkpoint(trainer_dir))
    trainable, total = trainer.model.get_nb_trainable_parameters()
    peak, measured = peak_memory_gb()
    adapter_dir = out_dir / ADAPTER
    if is_main_process():  # every rank of a distributed launch trains; one writes
        trainer.model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        write_json(adapter_dir / DPO_SETTINGS, {**asdict(settings), "policy_model": policy_model})
        write_json(adapter_dir / TRAINING_LOG, trainer.state.log_history)
        if (trainer_dir / "runs").exists():  # TensorBoard's event files (dpo.report_to), kept with the adapter
            shutil.copytree(trainer_dir / "runs", adapter_dir / "runs", dirs_exist_ok=True)
        shutil.rmtree(trainer_dir, ignore_errors=True)
    return {
        "train_pairs": len(train),
        "val_pairs": len(val),
        "checks": report,
        "log": trainer.state.log_history,
        "trainable_params": trainable,
        "total_params": total,
        "peak_memory_gb": round(peak, 3),
        "peak_memory_of": measured,
    }


TRAINER_SEEDS = 2**32
"""The trainer seeds numpy's legacy generator, which takes 32-bit seeds only."""


def seeded(settings: DPOSettings, run_seed: int = DEFAULT_SEED) -> DPOSettings:
    """The settings with the trainer's seed: `seed` when set, else one derived from the run's seed (32 bits)."""
    if settings.seed is not None:
        return settings
    return replace(settings, seed=derive_seed(run_seed, "dpo") % TRAINER_SEEDS)


def dpo_settings(profile: Any) -> DPOSettings:
    """The DPO settings of a run profile, with the trainer's seed and the DeepSpeed path resolved."""
    deepspeed = str(project_path(profile.dpo.deepspeed)) if profile.dpo.deepspeed else None
    return replace(seeded(profile.dpo, profile.seed), deepspeed=deepspeed)


LLAMAFACTORY_TEMPLATES = {"llama-3": "llama3", "qwen2": "qwen", "smollm": "chatml"}


def llamafactory_yaml(settings: DPOSettings, policy_model: str, dataset_dir: str, name: str = "longmab_dpo") -> str:
    """A LLaMA-Factory DPO training config equivalent to our settings, for users who prefer that trainer.

    A `bundled:` policy becomes the local safetensors folder it was converted to, which LLaMA-Factory can load.
    """
    import yaml

    header = "# LLaMA-Factory DPO config written by longmab_utils from the run's settings.\n"
    if policy_model.startswith("bundled:"):
        from .models import resolve_model

        header += f"# {policy_model} is the kit's CPU policy, converted to safetensors in the folder below;\n"
        header += "# for your own model, put its Hugging Face id or local folder in model_name_or_path.\n"
        policy_model = resolve_model(policy_model)
    lowered = policy_model.lower().replace("llama-3.1", "llama-3").replace("qwen2.5", "qwen2")
    template = next((t for key, t in LLAMAFACTORY_TEMPLATES.items() if key in lowered), "default")
    config = {
        "model_name_or_path": policy_model,
        "stage": "dpo",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "lora_rank": settings.lora_rank,
        "lora_alpha": settings.lora_alpha,
        "lora_dropout": settings.lora_dropout,
        "pref_beta": settings.beta,
        "pref_loss": "sigmoid",
        "pref_ftx": settings.sft_weight,
        "quantization_bit": 4 if settings.quantization == "4bit" else None,
        "dataset": name,
        "dataset_dir": dataset_dir,
        "template": template,
        "cutoff_len": settings.max_length,
        "val_size": settings.val_size,
        "output_dir": f"saves/{name}",
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.epochs,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": settings.warmup,
        "bf16": True,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "seed": settings.seed,
        "deepspeed": settings.deepspeed,
    }
    return header + yaml.safe_dump({k: v for k, v in config.items() if v is not None}, sort_keys=False)
