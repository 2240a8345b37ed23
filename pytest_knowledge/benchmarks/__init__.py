"""Knowledge benchmarks, registered by the name suites use. One module per benchmark."""

from pytest_knowledge.benchmarks import facts, lama, lm_eval_tasks, perplexity  # noqa: F401  (registration side effect)
from pytest_knowledge.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkResult,
    register_benchmark,
)

__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkResult", "register_benchmark"]
