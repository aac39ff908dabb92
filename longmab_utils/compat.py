"""What changes between the library versions the kit supports: the one place that knows.

CI runs the CPU pins (constraints/cpu.txt) and the GPU pins' transformers/TRL/PEFT (constraints/cuda.txt);
code that depends on a name that exists in one release and not another asks here.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def field_names(config_class: type) -> set[str]:
    """The dataclass fields of a (TrainingArguments-derived) config class."""
    return {f.name for f in dataclasses.fields(config_class)}


def checkpointing_kwargs(config_class: type, enabled: bool) -> dict[str, Any]:
    """Activation checkpointing for a trainer config: `activation_checkpointing` from transformers 5.23 on, the
    older `gradient_checkpointing` before (TRL chooses the reentrant mode itself)."""
    names = field_names(config_class)
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def fp32_trainable(model: Any) -> int:
    """Cast trainable parameters to float32 and return how many were cast.

    TRL 1.x casts the LoRA weights of a 4-bit model to bf16 when it builds the trainer; fp16 mixed precision (T4
    and other cards below compute capability 8) keeps fp32 master weights and cannot unscale bf16 gradients
    ("_amp_foreach_non_finite_check_and_unscale_cuda not implemented for 'BFloat16'", seen on an H200 under
    trl 1.16.0). Call it after the trainer is built and before it trains.
    """
    import torch

    cast = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
            cast += 1
    return cast
