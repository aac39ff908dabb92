"""Chunks as arms: the UCB sampler of LongMab-PO, a vectorised batch version, baselines and a regret simulator.

Introduced in notebook 02 and driven by the rollout in notebook 03. The update rule is the
reference's (METHOD.md section 3): an arm's value starts at its prior, which counts as one
pseudo-observation, so after c pulls `value == (prior + sum of its rewards) / (c + 1)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BONUS_EPS = 1e-6
POLICIES = ("ucb", "greedy", "epsilon_greedy", "thompson", "random", "full_context")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores in ascending index order; ties go to the lower index (as BatchUCB's)."""
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def ucb_bonus(t: int | np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The exploration bonus sqrt(2 ln t / (c + 1e-6)) of notebook 02's equation (2); zero at t = 1, huge for
    unpulled arms afterwards."""
    return np.sqrt(2 * np.log(t) / (counts + BONUS_EPS))


class ChunkPolicy:
    """A chunk-selection policy: per-arm values (prior as one pseudo-observation), pull counts and round t."""

    def __init__(self, priors: Sequence[float], rng: np.random.Generator | None = None):
        self.values = np.array(priors, dtype=np.float64)
        if self.values.ndim != 1 or self.values.size == 0:
            raise ValueError(f"priors must be a non-empty 1-D sequence, got shape {self.values.shape}")
        self.counts = np.zeros_like(self.values)
        self.t = 0
        self.rng = rng if rng is not None else np.random.default_rng(0)

    @property
    def n_arms(self) -> int:
        """Number of arms (chunks)."""
        return self.values.size

    def select(self, k: int) -> np.ndarray:
        """Advance one round and return the ascending indices of the min(k, n) arms to pull."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.t += 1
        return self._choose(min(k, self.n_arms))

    def _choose(self, k: int) -> np.ndarray:
        """Pick k arms for the current round."""
        raise NotImplementedError

    def update(self, indices: Sequence[int] | np.ndarray, reward: float) -> None:
        """Credit the same reward to every selected arm: c += 1, v += (r - v) / (c + 1) (notebook 02, equation (5))."""
        idx = np.asarray(indices, dtype=np.intp)
        if np.unique(idx).size != idx.size:
            raise ValueError(f"selected indices must be distinct, got {idx.tolist()}")
        self.counts[idx] += 1
        self.values[idx] += (reward - self.values[idx]) / (self.counts[idx] + 1)


class UCBChunkSampler(ChunkPolicy):
    """The paper's sampler: top-k arms by value + sqrt(2 ln t / (c + 1e-6))."""

    def scores(self) -> np.ndarray:
        """UCB score of every arm at the current round t."""
        return self.values + ucb_bonus(self.t, self.counts)

    def _choose(self, k: int) -> np.ndarray:
        return top_k(self.scores(), k)


class GreedyPolicy(ChunkPolicy):
    """Exploit only: top-k arms by value, no exploration bonus."""

    def _choose(self, k: int) -> np.ndarray:
        return top_k(self.values, k)


class EpsilonGreedyPolicy(ChunkPolicy):
    """With probability epsilon a uniformly random k-subset, otherwise the greedy top-k."""

    def __init__(self, priors: Sequence[float], rng: np.random.Generator | None = None, epsilon: float = 0.1):
        super().__init__(priors, rng)
        self.epsilon = epsilon

    def _choose(self, k: int) -> np.ndarray:
        if self.rng.random() < self.epsilon:
            return np.sort(self.rng.choice(self.n_arms, size=k, replace=False))
        return top_k(self.values, k)


class ThompsonPolicy(ChunkPolicy):
    """Thompson sampling with Beta posteriors; the prior p counts as one observation (alpha 1 + p, beta 2 - p)."""

    def __init__(self, priors: Sequence[float], rng: np.random.Generator | None = None):
        super().__init__(priors, rng)
        clipped = np.clip(self.values, 0.0, 1.0)
        self.alpha, self.beta = 1.0 + clipped, 2.0 - clipped

    def _choose(self, k: int) -> np.ndarray:
        return top_k(self.rng.beta(self.alpha, self.beta), k)

    def update(self, indices: Sequence[int] | np.ndarray, reward: float) -> None:
        """Update the running values as every policy does, and the Beta posteriors with a fractional reward."""
        super().update(indices, reward)
        idx = np.asarray(indices, dtype=np.intp)
        self.alpha[idx] += reward
        self.beta[idx] += 1.0 - reward


class RandomKPolicy(ChunkPolicy):
    """A uniformly random k-subset every round (the random-chunks baseline)."""

    def _choose(self, k: int) -> np.ndarray:
        return np.sort(self.rng.choice(self.n_arms, size=k, replace=False))


class FullContextPolicy(ChunkPolicy):
    """Every arm every round, whatever k is (the full-context, self-consistency baseline)."""

    def select(self, k: int) -> np.ndarray:
        """Advance one round and return all arm indices."""
        self.t += 1
        return np.arange(self.n_arms)


_POLICY_CLASSES: dict[str, type[ChunkPolicy]] = {
    "ucb": UCBChunkSampler,
    "greedy": GreedyPolicy,
    "epsilon_greedy": EpsilonGreedyPolicy,
    "thompson": ThompsonPolicy,
    "random": RandomKPolicy,
    "full_context": FullContextPolicy,
}


def make_policy(name: str, priors: Sequence[float], rng: np.random.Generator | None = None) -> ChunkPolicy:
    """Build a policy by name (one of POLICIES)."""
    if name not in _POLICY_CLASSES:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    return _POLICY_CLASSES[name](priors, rng)


class Selections(list):
    """BatchUCB's per-sample selections: a list of index arrays that also keeps them flattened for `update`."""

    def __init__(self, flat: np.ndarray, lengths: np.ndarray):
        offsets = np.cumsum(lengths)[:-1]
        uniform = bool((lengths == lengths[0]).all())
        super().__init__(flat.reshape(-1, lengths[0]) if uniform else np.split(flat, offsets))
        self.flat, self.lengths = flat, lengths


class BatchUCB:
    """UCB for a batch of samples with different arm counts, on padded arrays; same trajectories as one sampler each."""

    def __init__(self, priors: Sequence[Sequence[float]]):
        lengths = np.array([len(p) for p in priors], dtype=np.intp)
        if lengths.size == 0 or lengths.min() == 0:
            raise ValueError("BatchUCB needs at least one sample and at least one arm per sample")
        width = int(lengths.max())
        self.n_arms = lengths
        self.mask = np.arange(width) < lengths[:, None]
        self.values = np.zeros((lengths.size, width))
        self.values[self.mask] = np.concatenate([np.asarray(p, dtype=np.float64) for p in priors])
        self.counts = np.zeros_like(self.values)
        self.t = 0

    def scores(self) -> np.ndarray:
        """UCB scores of every arm of every sample at round t; padding arms score -inf."""
        return np.where(self.mask, self.values + ucb_bonus(self.t, self.counts), -np.inf)

    def select(self, k: int) -> Selections:
        """Advance all samples one round; per sample the ascending indices of its min(k, n) top arms."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.t += 1
        take = np.minimum(k, self.n_arms)
        width = self.values.shape[1]
        order = np.argsort(-self.scores(), axis=1, kind="stable")[:, : min(k, width)]
        valid = np.arange(order.shape[1]) < take[:, None]
        chosen = np.sort(np.where(valid, order, width), axis=1)
        return Selections(chosen[valid], take)

    def update(self, selections: Sequence[np.ndarray], rewards: Sequence[float]) -> None:
        """Credit each sample's reward to its selected arms, all samples at once."""
        if len(selections) != self.values.shape[0] or len(rewards) != len(selections):
            raise ValueError(f"need one selection and one reward per sample ({self.values.shape[0]})")
        if not isinstance(selections, Selections):
            selections = Selections(np.concatenate(selections).astype(np.intp), np.array([len(s) for s in selections]))
        rows = np.repeat(np.arange(len(selections)), selections.lengths)
        flat = rows * self.values.shape[1] + selections.flat
        counts, values = self.counts.reshape(-1), self.values.reshape(-1)
        counts[flat] += 1
        values[flat] += (np.asarray(rewards, dtype=np.float64)[rows] - values[flat]) / (counts[flat] + 1)

    def sample_values(self, i: int) -> np.ndarray:
        """The current values of sample i's arms (without padding)."""
        return self.values[i, : self.n_arms[i]].copy()


@dataclass(frozen=True)
class BernoulliArms:
    """Arms with Bernoulli rewards; a k-subset pays a Bernoulli draw with the mean of its arms' means."""

    means: np.ndarray

    def expected_reward(self, selection: np.ndarray) -> float:
        """Expected reward of a selection."""
        return float(np.mean(self.means[selection]))

    def best_expected(self, k: int) -> float:
        """Expected reward of the best fixed k-subset in hindsight."""
        return float(np.mean(np.sort(self.means)[-k:]))


@dataclass(frozen=True)
class MultiHopArms:
    """A multi-hop chunk environment: the answer is found (probability p_hit) only when every gold chunk is selected."""

    n_arms: int
    gold: tuple[int, ...]
    p_hit: float = 0.9
    p_miss: float = 0.1

    def expected_reward(self, selection: np.ndarray) -> float:
        """p_hit if the selection holds every gold chunk, else p_miss."""
        return self.p_hit if set(self.gold) <= set(np.asarray(selection).tolist()) else self.p_miss

    def best_expected(self, k: int) -> float:
        """Expected reward of the best fixed k-subset (p_hit when k can hold all gold chunks)."""
        return self.p_hit if k >= len(self.gold) else self.p_miss


Environment = BernoulliArms | MultiHopArms


def simulate_regret(
    make: Callable[[np.random.Generator], ChunkPolicy], env: Environment, k: int, rounds: int, runs: int, seed: int = 0
) -> np.ndarray:
    """Cumulative (pseudo-)regret per round against the best fixed k-subset (notebook 02, equation (3)), one row per
    run."""
    rng = np.random.default_rng(seed)
    best = env.best_expected(k)
    regret = np.zeros((runs, rounds))
    for run in range(runs):
        policy = make(np.random.default_rng(rng.integers(2**32)))
        for r in range(rounds):
            selection = policy.select(k)
            expected = env.expected_reward(selection)
            policy.update(selection, float(rng.random() < expected))
            regret[run, r] = best - expected
    return np.cumsum(regret, axis=1)
