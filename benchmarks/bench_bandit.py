"""BatchUCB against a loop of per-sample UCBChunkSamplers: 1,000 samples x 30 rounds x 12 arms."""

from __future__ import annotations

import numpy as np
from timing import best_of

from longmab_utils.bandit import BatchUCB, UCBChunkSampler

GOAL = 30.0
SAMPLES, ROUNDS, ARMS, TOP_K = 1000, 30, 12, 4


def run_loop(priors: np.ndarray, rewards: np.ndarray) -> list[np.ndarray]:
    """One sampler per sample, advanced in a Python loop."""
    samplers = [UCBChunkSampler(p) for p in priors]
    for r in range(ROUNDS):
        for sampler, reward in zip(samplers, rewards[r]):
            sampler.update(sampler.select(TOP_K), reward)
    return [s.values for s in samplers]


def run_batch(priors: np.ndarray, rewards: np.ndarray) -> list[np.ndarray]:
    """One BatchUCB for all samples."""
    batch = BatchUCB(priors)
    for r in range(ROUNDS):
        batch.update(batch.select(TOP_K), rewards[r])
    return [batch.sample_values(i) for i in range(SAMPLES)]


def main() -> dict[str, float]:
    """Time both, check they agree, print the ratio."""
    rng = np.random.default_rng(0)
    priors, rewards = rng.random((SAMPLES, ARMS)), rng.random((ROUNDS, SAMPLES))
    loop_s, looped = best_of(3, lambda: run_loop(priors, rewards))
    batch_s, batched = best_of(5, lambda: run_batch(priors, rewards))
    assert all(np.array_equal(a, b) for a, b in zip(looped, batched)), "BatchUCB diverged from the loop"
    ratio = loop_s / batch_s
    print(
        f"bandit: {SAMPLES} samples x {ROUNDS} rounds x {ARMS} arms; loop {loop_s * 1000:.0f} ms, "
        f"BatchUCB {batch_s * 1000:.1f} ms; ratio {ratio:.1f}x (goal >= {GOAL:.0f}x)"
    )
    return {"ratio": ratio, "goal": GOAL}


if __name__ == "__main__":
    main()
