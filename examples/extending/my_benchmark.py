"""A benchmark in one file: does the model complete a prompt with the expected words?

Reads ``{"prompt": ..., "answer": ...}`` rows from a JSON Lines file, lets the model
continue each prompt greedily for a few tokens, and counts a hit when the answer appears
in the continuation. Registered as ``completion``, so a suite can say
``benchmark: completion``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pytest_knowledge import BenchmarkResult, KnowledgeError, LoadedModel, digest, encode_outcomes, register_benchmark


@dataclass(frozen=True)
class CompletionConfig:
    """The keys a suite may set on this benchmark, with their defaults."""

    path: str = "landmarks.jsonl"  # relative to the folder pytest runs in
    max_new_tokens: int = 4

    def validate(self) -> str | None:
        """Optional: None when the values are fine, else what was expected (shown as a suite error)."""
        return None if self.max_new_tokens >= 1 else "max_new_tokens >= 1"


@register_benchmark("completion", CompletionConfig)
class CompletionBenchmark:
    metric = "accuracy"
    higher_is_better = True
    version = "1"  # part of the result cache key: bump it when evaluate() changes

    def __init__(self, config: CompletionConfig):
        """Built once per process and reused for every case: read the data here."""
        self.config = config
        lines = Path(config.path).read_text(encoding="utf-8").splitlines()
        self.rows = [json.loads(line) for line in lines if line.strip()]

    def data_fingerprint(self) -> str:
        """Hash of the examples: baselines measured on other data are never compared."""
        return digest(self.rows)

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        if loaded.family != "decoder":
            raise KnowledgeError(f"benchmark completion: {loaded.name!r} is not a decoder model")
        tokenizer, model = loaded.tokenizer, loaded.model
        hits, examples = [], []
        with torch.inference_mode():
            for row in self.rows:
                ids = tokenizer(row["prompt"], return_tensors="pt")["input_ids"].to(loaded.device)
                start = ids.shape[1]
                for _ in range(self.config.max_new_tokens):  # greedy decoding
                    next_id = model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
                    ids = torch.cat([ids, next_id], dim=1)
                said = tokenizer.decode(ids[0, start:], skip_special_tokens=True)
                hits.append(row["answer"] in said)
                examples.append({"relation": "completion", "subject": row["prompt"],
                                 "expected": row["answer"], "answer": said.strip()})
        return BenchmarkResult(
            metric=self.metric,
            value=sum(hits) / len(hits),
            n=len(hits),
            higher_is_better=True,
            outcomes=encode_outcomes(hits),  # per-example 0/1: baseline diffs name what changed
            examples=tuple(examples),  # listed as lost or gained facts in failure messages
        )
