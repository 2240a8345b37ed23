"""Agreement with the dense model, beyond accuracy.

Two models can score the same P@1 while answering different questions right, so every
compressed case also measures how far its predictions moved from the dense model's on
a fixed set of texts: a few offline Wikipedia lead sections and the benchmark's own
prompts. At every real token position of those texts:

* top-1 agreement — the share of positions where both models predict the same token;
* KL divergence — mean KL(dense || compressed) of the output distributions, in nats.

Decoders and encoders (masked LMs, read at every position) are measured; encoder-decoder
models need decoder inputs and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .models import LoadedModel
from .wikitext import articles

WIKI_TEXTS = 8
MAX_TOKENS = 64
PROMPTS = 32


@dataclass(frozen=True)
class Agreement:
    top1: float
    kl: float


def agreement_texts(prompts: Sequence[str]) -> list[str]:
    """The fixed texts: seeded Wikipedia leads plus up to PROMPTS benchmark prompts."""
    return [text for _, text in articles(WIKI_TEXTS, seed=0)] + list(prompts[:PROMPTS])


def _log_probs(loaded: LoadedModel, texts: list[str]) -> torch.Tensor:
    """Log-probabilities at every real position of every text, stacked (positions x vocab)."""
    tok = loaded.tokenizer
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tok(text, return_tensors="pt", truncation=True, max_length=MAX_TOKENS).to(loaded.device)
            logits = loaded.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
            rows.append(torch.log_softmax(logits[0].float(), -1).cpu())
    return torch.cat(rows)


def supported(loaded: LoadedModel) -> bool:
    return loaded.family in ("decoder", "encoder")


def reference(loaded: LoadedModel, texts: list[str]) -> torch.Tensor:
    """The dense model's distributions; computed once per model and benchmark."""
    return _log_probs(loaded, texts)


def compare(loaded: LoadedModel, texts: list[str], dense: torch.Tensor) -> Agreement:
    current = _log_probs(loaded, texts)
    top1 = (current.argmax(-1) == dense.argmax(-1)).float().mean()
    kl = (dense.exp() * (dense - current)).sum(-1).clamp_min(0).mean()
    return Agreement(float(top1), float(kl))
