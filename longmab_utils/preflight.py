"""Checks a GPU profile's real models would trigger, run before anything loads: remote code, gated access, context
limits and memory per batch.

`reproduce` runs them on the profile as given, so a profile that would stop on its GPU stops here first; under
`--stand-ins` they still see the real names and shapes (specs.py) while small models do the work, and a gated model
without a token is reported instead of refused (CI has no token).
"""

from __future__ import annotations

from .builddata import built_token_range
from .config import Profile
from .errors import UserError
from .prompts import COT_ANSWER_TEMPLATE, PROBE_TEMPLATE
from .specs import GPUS, HubModel, hub_model

FRAME_TOKENS = 300  # chat template, question and gold answer around a context (upper bound)


class PreflightError(UserError):
    """A profile that its real models or its target GPU would refuse."""


def has_token() -> bool:
    """True when a Hugging Face token is configured (HF_TOKEN or a `hf auth login` file)."""
    from huggingface_hub import get_token

    return get_token() is not None


def gated_models(profile: Profile) -> list[str]:
    """The profile's models that the hub serves only with accepted terms and a token, when no token is set."""
    names = [profile.policy_model, profile.embedding_model]
    gated = [name for name in names if (facts := hub_model(name)) is not None and facts.gated]
    return gated if gated and not has_token() else []


def prompt_lengths(profile: Profile) -> dict[str, int]:
    """Longest prompt of the probe and of a rollout round, in policy tokens (templates counted at 4 chars a token)."""
    built = built_token_range(profile.data)
    context = built[1] if built else 0
    return {
        "probe": context + len(PROBE_TEMPLATE) // 4 + FRAME_TOKENS,
        "rollout": profile.top_k * profile.chunk_size + len(COT_ANSWER_TEMPLATE) // 4 + FRAME_TOKENS,
    }


def context_problems(profile: Profile, model: HubModel) -> list[str]:
    """Prompts plus answers that exceed the model's context or the profile's `max_model_len`."""
    limit = min(filter(None, (model.max_positions, profile.max_model_len)))
    new = {"probe": profile.probe_max_new_tokens, "rollout": profile.max_new_tokens}
    return [
        f"{step} prompts of up to {tokens:,} tokens + {new[step]:,} new exceed the {limit:,}-token context of "
        f"{profile.policy_model} (max_model_len={profile.max_model_len})"
        for step, tokens in prompt_lengths(profile).items()
        if tokens + new[step] > limit
    ]


def memory_problems(profile: Profile, model: HubModel) -> list[str]:
    """transformers batches whose estimated peak exceeds the target GPU (`estimate.hf_memory_gib`)."""
    from .estimate import hf_memory_gib

    gpu = GPUS[profile.target_gpu]
    lengths = prompt_lengths(profile)
    budget = min(profile.eval_max_input_len, model.max_positions or profile.eval_max_input_len)
    batches = {
        "gen_batch_size (probe)": (profile.gen_batch_size, lengths["probe"], profile.probe_max_new_tokens, False),
        "gen_batch_size (rollout)": (profile.gen_batch_size, lengths["rollout"], profile.max_new_tokens, False),
        "eval_batch_size": (
            profile.eval_batch_size or profile.gen_batch_size,
            budget + FRAME_TOKENS,
            profile.eval_max_new_tokens,
            True,
        ),
    }
    problems = []
    for setting, (batch, prompt, new, adapter) in batches.items():
        peak = hf_memory_gib(model, batch, prompt, new, adapter)
        if peak > gpu.memory_gib:
            fits = max((b for b in range(1, batch) if hf_memory_gib(model, b, prompt, new, adapter) <= gpu.memory_gib),
                       default=0)  # fmt: skip
            problems.append(
                f"{setting}={batch} at {prompt:,}-token prompts needs about {peak:.0f} GiB of the {gpu.label}'s "
                f"{gpu.memory_gib:g} GiB with the transformers backend; {fits or 'no batch'} fits"
            )
    return problems


def preflight(profile: Profile, stand_ins: bool = False) -> list[str]:
    """Raise PreflightError for what the profile's real models or GPU would refuse; return notes for the rest."""
    from .models import check_remote_code

    check_remote_code(
        {
            "trust_remote_code": (profile.policy_model, profile.trust_remote_code),
            "embedder_trust_remote_code": (profile.embedding_model, profile.embedder_trust_remote_code),
        }
    )
    notes, problems = [], []
    for name in gated_models(profile):
        message = f"{name} is gated: accept its terms on the Hugging Face hub and set HF_TOKEN"
        notes.append(f"a real run would stop here: {message}") if stand_ins else problems.append(message)
    model = hub_model(profile.policy_model)
    if model is not None and model.layers:
        problems += context_problems(profile, model)
        if profile.target_gpu and profile.backend in ("hf", "auto"):  # auto is transformers without vLLM (Colab)
            problems += memory_problems(profile, model)
    if problems:
        raise PreflightError(f"profile {profile.name}: " + "; ".join(problems))
    return notes
