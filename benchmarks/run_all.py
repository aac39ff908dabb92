"""Run every benchmark and print each ratio next to its goal; exits non-zero if a goal is missed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_bandit  # noqa: E402
import bench_chunking  # noqa: E402
import bench_generation  # noqa: E402


def main() -> int:
    """Run the benchmarks and summarise."""
    results = {
        "chunking": bench_chunking.main(),
        "bandit": bench_bandit.main(),
        "generation": bench_generation.main(),
    }
    missed = [name for name, r in results.items() if r["ratio"] < r["goal"]]
    print("all goals met" if not missed else f"goals missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
