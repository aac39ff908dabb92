"""What the machine can run: the CUDA device torch sees, and the dtypes that follow from its compute capability.

Introduced in notebook 05. One function, `precision`, decides the model dtype, the 4-bit compute dtype and
the trainer's bf16/fp16 flags, so that generation, QLoRA and the trainer never disagree. A T4 (compute
capability 7.5) reports bf16 as supported through emulation, so the rule reads the capability itself.
"""

from __future__ import annotations

import gc
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class GPUUnusable(UserError):
    """An NVIDIA GPU is present but the installed torch cannot use it."""


@dataclass(frozen=True)
class Precision:
    """Model dtype plus the trainer's mixed-precision flags."""

    dtype: torch.dtype
    bf16: bool
    fp16: bool


def nvidia_gpu_present() -> bool:
    """True when the machine has an NVIDIA driver (whether or not torch can use it)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def cuda_capability() -> tuple[int, int] | None:
    """The compute capability of the first CUDA device, None on a CPU-only machine; an unusable GPU is an error."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_capability(0)
    if nvidia_gpu_present() and os.environ.get("LONGMAB_ALLOW_CPU") != "1":
        raise GPUUnusable(
            f"an NVIDIA GPU is present but torch {torch.__version__} cannot use it (torch.cuda.is_available() is "
            "False): the pinned torch needs a newer driver, see docs/gpu.md, 'Running on a cloud GPU'; set "
            "LONGMAB_ALLOW_CPU=1 to run on the CPU anyway"
        )
    return None


def precision(name: str = "auto", capability: tuple[int, int] | None = None) -> Precision:
    """Dtype and trainer flags for a dtype name: `auto` is bf16 from compute capability 8, fp16 below, fp32 on CPU."""
    if name == "auto":
        if capability is None:
            return Precision(torch.float32, bf16=False, fp16=False)
        name = "bfloat16" if capability[0] >= 8 else "float16"
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}; got {name!r}")
    dtype = DTYPES[name]
    on_gpu = capability is not None
    return Precision(dtype, bf16=on_gpu and dtype == torch.bfloat16, fp16=on_gpu and dtype == torch.float16)


def device_precision(name: str = "auto") -> Precision:
    """`precision` for the device this process actually runs on."""
    return precision(name, cuda_capability())


def world_size() -> int:
    """Processes of this run (`accelerate launch`/torchrun set WORLD_SIZE), 1 when launched plainly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def device_map(cuda: bool) -> dict[str, int] | str | None:
    """Where `from_pretrained` puts the weights: the rank's own GPU under a distributed launch (accelerate refuses
    `auto` there), all GPUs of a plain process, or the CPU."""
    if not cuda:
        return None
    if world_size() > 1:
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return "auto"


def is_main_process() -> bool:
    """True in a plain process and on rank 0 of a distributed launch (the one that writes shared files)."""
    return int(os.environ.get("RANK", "0")) == 0


def peak_memory_gb() -> tuple[float, str]:
    """(GB, what was measured): the peak GPU memory torch allocated on CUDA, else this process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9, "peak GPU memory allocated by torch"
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9, "peak resident memory of this process"


def free_gpu_memory() -> None:
    """Collect garbage and return cached CUDA blocks, so the next model finds the memory free."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
