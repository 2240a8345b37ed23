"""Cloze scoring on causal and masked LMs, shared by every fact-style probe.

A cloze is a template with the object slot ``[Y]`` already split into the text before
it (``prefix``), the gold object and the text after it (``suffix``). Two modes:

* first-token: rank the object's first token among the whole vocabulary at the slot —
  one forward pass per cloze.
* candidates: rank a candidate set by the log-likelihood of the filled-in continuation
  (object + suffix) given the prefix — multi-token objects count in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import KnowledgeError
from .models import LoadedModel


@dataclass(frozen=True)
class Cloze:
    prefix: str
    answer: str
    suffix: str = ""
    candidates: tuple[str, ...] = ()


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row of this batch only (dynamic padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _decoder_prompt(tokenizer, text: str) -> list[int]:
    bos = tokenizer.bos_token_id
    ids = _encode(tokenizer, text)
    return ([bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []) + ids


def _first_token_decoder(loaded: LoadedModel, clozes: list[Cloze], batch_size: int) -> list[int]:
    tok = loaded.tokenizer
    prompts, golds = [], []
    for c in clozes:
        prompt = _decoder_prompt(tok, c.prefix.rstrip())
        full = _decoder_prompt(tok, c.prefix.rstrip() + " " + c.answer)
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise KnowledgeError(f"cannot align answer {c.answer!r} after {c.prefix!r} in the tokenizer")
        prompts.append(prompt)
        golds.append(full[len(prompt)])
    ranks = [0] * len(clozes)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for batch in _batches(order, batch_size):
        ids, mask = _pad([prompts[i] for i in batch], tok.pad_token_id, loaded.device)
        logits = loaded.model(input_ids=ids, attention_mask=mask).logits.float()
        last = mask.sum(1) - 1
        final = logits[torch.arange(len(batch)), last]
        gold = torch.tensor([golds[i] for i in batch], device=final.device)
        gold_logit = final.gather(1, gold[:, None])
        batch_ranks = (final > gold_logit).sum(1) + 1
        for i, r in zip(batch, batch_ranks.tolist()):
            ranks[i] = r
    return ranks


def _first_token_encoder(loaded: LoadedModel, clozes: list[Cloze], batch_size: int) -> list[int]:
    tok = loaded.tokenizer
    if tok.mask_token is None:
        raise KnowledgeError(f"model {loaded.name!r} has no mask token; it cannot answer cloze probes as an encoder")
    rows, positions, golds = [], [], []
    for c in clozes:
        masked = tok(c.prefix + tok.mask_token + c.suffix)["input_ids"]
        filled = tok(c.prefix + c.answer + c.suffix)["input_ids"]
        position = masked.index(tok.mask_token_id)
        rows.append(masked)
        positions.append(position)
        golds.append(filled[position])
    ranks = [0] * len(clozes)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for batch in _batches(order, batch_size):
        ids, mask = _pad([rows[i] for i in batch], tok.pad_token_id, loaded.device)
        logits = loaded.model(input_ids=ids, attention_mask=mask).logits.float()
        at = logits[torch.arange(len(batch)), torch.tensor([positions[i] for i in batch])]
        gold = torch.tensor([golds[i] for i in batch], device=at.device)
        batch_ranks = (at > at.gather(1, gold[:, None])).sum(1) + 1
        for i, r in zip(batch, batch_ranks.tolist()):
            ranks[i] = r
    return ranks


def _continuation_logprobs(loaded: LoadedModel, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
    """Sum of log p(continuation tokens | prefix) for each (prefix, continuation)."""
    tok = loaded.tokenizer
    rows, starts = [], []
    for prefix, continuation in pairs:
        context = _decoder_prompt(tok, prefix.rstrip())
        full = _decoder_prompt(tok, prefix.rstrip() + continuation)
        start = len(context) if full[: len(context)] == context else len(context) - 1
        rows.append(full)
        starts.append(max(start, 1))
    scores = [0.0] * len(pairs)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for batch in _batches(order, batch_size):
        ids, mask = _pad([rows[i] for i in batch], tok.pad_token_id, loaded.device)
        logprobs = torch.log_softmax(loaded.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        token_lp = logprobs[:, :-1].gather(2, ids[:, 1:, None]).squeeze(2)
        for row, i in enumerate(batch):
            scores[i] = float(token_lp[row, starts[i] - 1 : len(rows[i]) - 1].sum())
    return scores


def _candidate_ranks_decoder(loaded: LoadedModel, clozes: list[Cloze], batch_size: int) -> list[int]:
    pairs, spans = [], []
    for c in clozes:
        options = (c.answer,) + tuple(x for x in c.candidates if x != c.answer)
        spans.append((len(pairs), len(options)))
        pairs.extend((c.prefix, " " + o + c.suffix) for o in options)
    scores = _continuation_logprobs(loaded, pairs, batch_size)
    ranks = []
    for start, count in spans:
        gold, others = scores[start], scores[start + 1 : start + count]
        ranks.append(1 + sum(s >= gold for s in others))  # ties count against the answer
    return ranks


def cloze_ranks(loaded: LoadedModel, clozes: list[Cloze], mode: str, batch_size: int = 32) -> list[int]:
    """1-based rank of each cloze's answer under ``mode`` ('first_token' or 'candidates')."""
    with torch.inference_mode():
        if mode == "first_token":
            if loaded.family == "decoder":
                return _first_token_decoder(loaded, clozes, batch_size)
            if loaded.family == "encoder":
                return _first_token_encoder(loaded, clozes, batch_size)
        elif mode == "candidates" and loaded.family == "decoder":
            return _candidate_ranks_decoder(loaded, clozes, batch_size)
    raise KnowledgeError(f"scoring mode {mode!r} is not available for {loaded.family} models")


def rank_metrics(ranks: list[int], k: int) -> dict[str, float]:
    """P@1, P@k and MRR (1-based ranks: a top-1 hit scores 1)."""
    n = len(ranks)
    return {
        "p_at_1": sum(r == 1 for r in ranks) / n,
        f"p_at_{k}": sum(r <= k for r in ranks) / n,
        "mrr": sum(1.0 / r for r in ranks) / n,
    }
