"""Perplexity of a causal LM on offline English Wikipedia lead sections, in strided windows.

Compression that erases knowledge usually shows up here first as a rise in perplexity,
and unlike a cloze probe it needs no templates. Text: the articles of
``pytest_knowledge.data.wikitext`` in a seeded order, joined by blank lines; each model
scores the first ``max_tokens`` tokens of it. Lower is better.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.base import BenchmarkResult, digest, register_benchmark
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.data.wikitext import articles

CHARS_PER_TOKEN_BOUND = 8  # text is cut at this many characters per budgeted token, before tokenizing


@dataclass(frozen=True)
class PerplexityConfig:
    max_tokens: int = 4096
    window: int = 1024
    stride: int = 512
    seed: int = 0
    batch_size: int = 4

    def validate(self) -> str | None:
        if self.max_tokens < 2 or self.window < 2 or self.batch_size < 1:
            return "max_tokens >= 2, window >= 2, batch_size >= 1"
        if not 1 <= self.stride <= self.window:
            return "1 <= stride <= window"
        return None


def windows(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) per window: each scores only the tokens no earlier window scored.

    The first window scores all but its first token (nothing predicts it); later ones
    see ``window - stride`` tokens of context before their new ones.
    """
    spans = []
    previous_end = 0
    for begin in range(0, length, stride):
        end = min(begin + window, length)
        scored = min(end - max(previous_end, 1), end - begin - 1)  # a window's first token has no context
        if scored > 0:
            spans.append((begin, end, scored))
        previous_end = end
        if end == length:
            break
    return spans


@register_benchmark("perplexity", PerplexityConfig)
class PerplexityBenchmark:
    metric = "perplexity"
    higher_is_better = False

    def __init__(self, config: PerplexityConfig):
        self.config = config
        order = articles()
        random.Random(config.seed).shuffle(order)
        budget = config.max_tokens * CHARS_PER_TOKEN_BOUND
        parts, size = [], 0
        for _, extract in order:
            if size >= budget:
                break
            parts.append(extract)
            size += len(extract) + 2
        self.text = "\n\n".join(parts)[:budget]

    def data_fingerprint(self) -> str:
        return digest(self.text, self.config.max_tokens, self.config.window, self.config.stride)

    def _token_ids(self, loaded: LoadedModel) -> list[int]:
        tok = loaded.tokenizer
        ids = tok(self.text, add_special_tokens=False)["input_ids"]
        if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False):
            ids = [tok.bos_token_id] + ids
        return ids[: self.config.max_tokens]

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        import torch

        if loaded.family != "decoder":
            raise KnowledgeError(
                f"benchmark perplexity: model {loaded.name!r} is an {loaded.family} model; perplexity is defined "
                "for decoder (causal) models only — probe it with the lama or facts benchmark instead"
            )
        ids = torch.tensor(self._token_ids(loaded))
        limit = getattr(loaded.model.config, "max_position_embeddings", None) or self.config.window
        window = min(self.config.window, limit)
        spans = windows(len(ids), window, min(self.config.stride, window))
        total, count = 0.0, 0
        with torch.inference_mode():
            for i in range(0, len(spans), self.config.batch_size):
                batch = spans[i : i + self.config.batch_size]
                width = max(end - begin for begin, end, _ in batch)
                rows = torch.full((len(batch), width), loaded.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (begin, end, _) in enumerate(batch):
                    rows[row, : end - begin] = ids[begin:end]
                    mask[row, : end - begin] = 1
                logits = loaded.model(input_ids=rows.to(loaded.device), attention_mask=mask.to(loaded.device),
                                      use_cache=False).logits.float()
                token_lp = torch.log_softmax(logits[:, :-1], -1).gather(2, rows[:, 1:, None].to(logits.device)).squeeze(2)
                for row, (begin, end, scored) in enumerate(batch):
                    length = end - begin
                    total -= float(token_lp[row, length - 1 - scored : length - 1].sum())
                    count += scored
        if count == 0:
            raise KnowledgeError(f"benchmark perplexity: the text gives model {loaded.name!r} no token to score")
        nll = total / count
        return BenchmarkResult(
            metric=self.metric,
            value=math.exp(nll),
            n=count,
            higher_is_better=False,
            extra={"nll": nll, "windows": float(len(spans))},
        )
