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
from typing import TYPE_CHECKING, Sequence

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.scoring import length_batches, pad_rows
from pytest_knowledge.data.wikitext import articles

if TYPE_CHECKING:
    import torch

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


def _log_probs(loaded: LoadedModel, texts: list[str], batch_size: int = 16) -> torch.Tensor:
    """Log-probabilities at every real position of every text, in text order (positions x vocab).

    Texts are batched by length with dynamic right padding; padded positions are dropped.
    """
    import torch

    tok = loaded.tokenizer
    rows = [tok(text, truncation=True, max_length=MAX_TOKENS)["input_ids"] for text in texts]
    out: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for batch in length_batches(rows, batch_size):
            ids, mask = pad_rows([rows[i] for i in batch], tok.pad_token_id, loaded.device)
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits
            for row, i in enumerate(batch):
                out[i] = torch.log_softmax(logits[row, : len(rows[i])].float(), -1).cpu()
    return torch.cat([out[i] for i in range(len(rows))])


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
