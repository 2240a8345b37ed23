"""Cloze scoring for decoder, encoder (masked LM) and encoder-decoder models.

A cloze is a template with the object slot ``[Y]`` already split into the text before
it (``prefix``), the gold object and the text after it (``suffix``). Two modes, each
defined for every family (exact definitions in docs/benchmarks.md):

* first_token: rank the object's first token among the whole vocabulary (or a given
  word list) at the slot — one forward pass per cloze.
* candidates: rank a candidate set by the log-likelihood of each filled-in object,
  summed over all of its tokens, so multi-token objects count in full.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.core.errors import KnowledgeError

if TYPE_CHECKING:
    import torch

T5_SENTINELS = ("<extra_id_0>", "<extra_id_1>")


@dataclass(frozen=True)
class Cloze:
    prefix: str
    answer: str
    suffix: str = ""
    candidates: tuple[str, ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        """The gold answer first, then the candidates that differ from it."""
        return (self.answer,) + tuple(x for x in self.candidates if x != self.answer)


@dataclass(frozen=True)
class Slot:
    """One row to run through a model and where to read it: predict ``gold`` at ``position``."""

    ids: list[int]
    position: int
    gold: int


@dataclass(frozen=True)
class Seq2SeqRow:
    """An encoder input and a decoder target; ``span`` marks the target tokens that are scored."""

    ids: list[int]
    labels: list[int]
    span: tuple[int, int]


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def pad_rows(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row of this batch only (dynamic padding)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def length_batches(rows: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Batches of row indices, shortest rows first, so padding stays small."""
    return _batches(sorted(range(len(rows)), key=lambda i: len(rows[i])), batch_size)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _join(prefix: str, word: str) -> str:
    """``prefix`` followed by ``word`` with one space between, the way decoders read a sentence."""
    head = prefix.rstrip()
    return f"{head} {word}" if head else word


def _decoder_start(tokenizer, prefix: str) -> list[int]:
    """BOS when the tokenizer adds one; with nothing before the slot, BOS (else EOS) as context."""
    bos = tokenizer.bos_token_id
    if bos is not None and getattr(tokenizer, "add_bos_token", False):
        return [bos]
    if not prefix.strip():
        start = bos if bos is not None else tokenizer.eos_token_id
        if start is None:
            raise KnowledgeError("the object slot opens the sentence, and the tokenizer has no BOS or EOS token "
                                 "to start from")
        return [start]
    return []


def _span(tokenizer, before: str, middle: str, after: str, special: bool) -> tuple[list[int], int, int]:
    """Token ids of ``before + middle + after`` and the token range covering ``middle``.

    Uses the fast tokenizer's character offsets, so it works for WordPiece, BPE and
    SentencePiece alike; a token that straddles a boundary belongs to ``middle``.
    """
    text = before + middle + after
    try:
        encoded = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    except NotImplementedError:
        raise KnowledgeError("cloze scoring needs a fast tokenizer (one with character offsets)") from None
    start, end = len(before), len(before) + len(middle)
    inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > a and a < end and b > start]
    if not inside:
        raise KnowledgeError(f"cannot find {middle!r} among the tokens of {text!r}")
    return encoded["input_ids"], inside[0], inside[-1] + 1


def _mask_id(loaded: LoadedModel) -> int:
    tok = loaded.tokenizer
    if tok.mask_token is None:
        raise KnowledgeError(f"model {loaded.name!r} has no mask token; it cannot answer cloze probes as an encoder")
    return tok.mask_token_id


# -- first token ------------------------------------------------------------------------


def _decoder_slots(loaded: LoadedModel, clozes: Sequence[Cloze]) -> list[Slot]:
    tok = loaded.tokenizer
    slots = []
    for c in clozes:
        start = _decoder_start(tok, c.prefix)
        prompt = start + _encode(tok, c.prefix.rstrip()) if c.prefix.strip() else start
        full = start + _encode(tok, _join(c.prefix, c.answer))
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise KnowledgeError(f"cannot align answer {c.answer!r} after {c.prefix!r} in the tokenizer")
        slots.append(Slot(prompt, len(prompt) - 1, full[len(prompt)]))
    return slots


def _encoder_slots(loaded: LoadedModel, clozes: Sequence[Cloze]) -> list[Slot]:
    """The object's tokens replaced by one mask token; the gold is the object's first token."""
    mask = _mask_id(loaded)
    slots = []
    for c in clozes:
        ids, a, b = _span(loaded.tokenizer, c.prefix, c.answer, c.suffix, special=True)
        slots.append(Slot(ids[:a] + [mask] + ids[b:], a, ids[a]))
    return slots


def _sentinel_style(loaded: LoadedModel) -> bool:
    """True for T5-style span infilling (sentinel tokens), False for BART-style (mask token)."""
    tok = loaded.tokenizer
    vocab = tok.get_vocab()
    if all(s in vocab for s in T5_SENTINELS):
        return True
    if tok.mask_token is not None:
        return False
    raise KnowledgeError(
        f"model {loaded.name!r} has neither T5 sentinel tokens ({', '.join(T5_SENTINELS)}) nor a mask token; "
        "it cannot fill in a cloze as an encoder-decoder"
    )


def _seq2seq_row(tok, sentinels: bool, cloze: Cloze, answer: str) -> Seq2SeqRow:
    """T5 (``sentinels``): input with ``<extra_id_0>`` at the slot, target ``<extra_id_0> answer
    <extra_id_1></s>``. BART: input with the mask token at the slot, target the whole filled-in sentence."""
    if sentinels:
        first, second = T5_SENTINELS
        ids = tok(cloze.prefix + first + cloze.suffix)["input_ids"]
        labels, a, b = _span(tok, first + " ", answer, " " + second, special=True)
        return Seq2SeqRow(ids, labels, (a, b))
    ids = tok(cloze.prefix + tok.mask_token + cloze.suffix)["input_ids"]
    labels, a, b = _span(tok, cloze.prefix, answer, cloze.suffix, special=True)
    return Seq2SeqRow(ids, labels, (a, b))


def _seq2seq_logits(loaded: LoadedModel, rows: list[Seq2SeqRow]) -> torch.Tensor:
    """Decoder logits aligned with the labels: position j predicts ``labels[j]``."""
    tok = loaded.tokenizer
    ids, mask = pad_rows([r.ids for r in rows], tok.pad_token_id, loaded.device)
    labels, _ = pad_rows([r.labels for r in rows], -100, loaded.device)
    return loaded.model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).logits.float()


def _rank_among(logits: torch.Tensor, gold: torch.Tensor, allowed: list[int] | None) -> list[tuple[int, int]]:
    """Per row: (1 + the number of (allowed) tokens scoring strictly above the gold token,
    the top-scoring allowed token — the model's own answer)."""
    import torch

    above = logits > logits.gather(1, gold[:, None])
    if allowed is not None:
        keep = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        keep[allowed] = True
        above &= keep
        logits = logits.masked_fill(~keep, float("-inf"))
    return list(zip((above.sum(1) + 1).tolist(), logits.argmax(1).tolist()))


def _first_token_causal_or_masked(loaded: LoadedModel, slots: list[Slot], batch_size: int,
                                  allowed: list[int] | None) -> list[tuple[int, int]]:
    import torch

    ranks = [(0, 0)] * len(slots)
    for batch in length_batches([s.ids for s in slots], batch_size):
        ids, mask = pad_rows([slots[i].ids for i in batch], loaded.tokenizer.pad_token_id, loaded.device)
        kwargs = {"use_cache": False} if loaded.family == "decoder" else {}
        logits = loaded.model(input_ids=ids, attention_mask=mask, **kwargs).logits.float()
        at = logits[torch.arange(len(batch)), torch.tensor([slots[i].position for i in batch])]
        gold = torch.tensor([slots[i].gold for i in batch], device=at.device)
        for i, r in zip(batch, _rank_among(at, gold, allowed)):
            ranks[i] = r
    return ranks


def _first_token_seq2seq(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int,
                         allowed: list[int] | None) -> list[tuple[int, int]]:
    import torch

    sentinels = _sentinel_style(loaded)
    rows = [_seq2seq_row(loaded.tokenizer, sentinels, c, c.answer) for c in clozes]
    ranks = [(0, 0)] * len(rows)
    for batch in length_batches([r.ids for r in rows], batch_size):
        logits = _seq2seq_logits(loaded, [rows[i] for i in batch])
        starts = [rows[i].span[0] for i in batch]
        at = logits[torch.arange(len(batch)), torch.tensor(starts)]
        gold = torch.tensor([rows[i].labels[s] for i, s in zip(batch, starts)], device=at.device)
        for i, r in zip(batch, _rank_among(at, gold, allowed)):
            ranks[i] = r
    return ranks


def _first_token_ids(loaded: LoadedModel, words: Sequence[str]) -> list[int]:
    """The token each word starts with when it fills a slot, read exactly like a gold answer."""
    probes = [Cloze("The answer is ", w, ".") for w in words]
    if loaded.family == "decoder":
        return [s.gold for s in _decoder_slots(loaded, probes)]
    if loaded.family == "encoder":
        return [s.gold for s in _encoder_slots(loaded, probes)]
    sentinels = _sentinel_style(loaded)
    rows = [_seq2seq_row(loaded.tokenizer, sentinels, p, p.answer) for p in probes]
    return [r.labels[r.span[0]] for r in rows]


def _first_token(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int,
                 vocabulary: Sequence[str] | None) -> list[tuple[int, int]]:
    allowed = None if vocabulary is None else _first_token_ids(loaded, vocabulary)
    if loaded.family == "decoder":
        return _first_token_causal_or_masked(loaded, _decoder_slots(loaded, clozes), batch_size, allowed)
    if loaded.family == "encoder":
        return _first_token_causal_or_masked(loaded, _encoder_slots(loaded, clozes), batch_size, allowed)
    return _first_token_seq2seq(loaded, clozes, batch_size, allowed)


# -- candidates: sequence log-likelihood -------------------------------------------------

Scores = list[list[float]]  # per cloze, per option (gold first)


def _empty_scores(clozes: Sequence[Cloze]) -> Scores:
    return [[0.0] * len(c.options) for c in clozes]


def _decoder_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int) -> Scores:
    """log p(option + suffix | prefix): every token after the prefix, the suffix included."""
    import torch

    tok = loaded.tokenizer
    rows: list[tuple[list[int], int]] = []
    keys: list[tuple[int, int]] = []
    for n, c in enumerate(clozes):
        start = _decoder_start(tok, c.prefix)
        context = start + _encode(tok, c.prefix.rstrip()) if c.prefix.strip() else start
        for o, option in enumerate(c.options):
            full = start + _encode(tok, _join(c.prefix, option) + c.suffix)
            first = len(context) if full[: len(context)] == context else len(context) - 1
            rows.append((full, max(first, 1)))
            keys.append((n, o))
    scores = _empty_scores(clozes)
    for batch in length_batches([r[0] for r in rows], batch_size):
        ids, mask = pad_rows([rows[i][0] for i in batch], tok.pad_token_id, loaded.device)
        logits = loaded.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        token_lp = torch.log_softmax(logits, -1)[:, :-1].gather(2, ids[:, 1:, None]).squeeze(2)
        for row, i in enumerate(batch):
            full, first = rows[i]
            n, o = keys[i]
            scores[n][o] = float(token_lp[row, first - 1 : len(full) - 1].sum())
    return scores


def _encoder_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int) -> Scores:
    """Left-to-right infilling: object token i is read with the tokens before it filled in
    and itself and the tokens after it masked (one mask per object token)."""
    import torch

    mask = _mask_id(loaded)
    slots: list[Slot] = []
    keys: list[tuple[int, int]] = []
    for n, c in enumerate(clozes):
        for o, option in enumerate(c.options):
            ids, a, b = _span(loaded.tokenizer, c.prefix, option, c.suffix, special=True)
            for i in range(a, b):
                slots.append(Slot(ids[:i] + [mask] * (b - i) + ids[b:], i, ids[i]))
                keys.append((n, o))
    scores = _empty_scores(clozes)
    for batch in length_batches([s.ids for s in slots], batch_size):
        ids, attention = pad_rows([slots[i].ids for i in batch], loaded.tokenizer.pad_token_id, loaded.device)
        logits = loaded.model(input_ids=ids, attention_mask=attention).logits.float()
        at = torch.log_softmax(logits[torch.arange(len(batch)), torch.tensor([slots[i].position for i in batch])], -1)
        gold = torch.tensor([slots[i].gold for i in batch], device=at.device)
        for i, value in zip(batch, at.gather(1, gold[:, None]).squeeze(1).tolist()):
            n, o = keys[i]
            scores[n][o] += value
    return scores


def _seq2seq_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int) -> Scores:
    """log p(target | input with the slot masked), summed over every target token."""
    import torch

    sentinels = _sentinel_style(loaded)
    rows: list[Seq2SeqRow] = []
    keys: list[tuple[int, int]] = []
    for n, c in enumerate(clozes):
        for o, option in enumerate(c.options):
            rows.append(_seq2seq_row(loaded.tokenizer, sentinels, c, option))
            keys.append((n, o))
    scores = _empty_scores(clozes)
    for batch in length_batches([r.ids + r.labels for r in rows], batch_size):
        logits = _seq2seq_logits(loaded, [rows[i] for i in batch])
        labels, _ = pad_rows([rows[i].labels for i in batch], 0, logits.device)
        token_lp = torch.log_softmax(logits, -1).gather(2, labels[:, :, None]).squeeze(2)
        for row, i in enumerate(batch):
            n, o = keys[i]
            scores[n][o] = float(token_lp[row, : len(rows[i].labels)].sum())
    return scores


def _ranks_from_scores(scores: Scores) -> list[int]:
    """1 + the number of wrong options scoring at least as high as the gold one (ties count against it)."""
    return [1 + sum(s >= options[0] for s in options[1:]) for options in scores]


_LOGLIKELIHOODS: dict[str, Callable[[LoadedModel, Sequence[Cloze], int], Scores]] = {
    "decoder": _decoder_loglikelihoods,
    "encoder": _encoder_loglikelihoods,
    "encoder-decoder": _seq2seq_loglikelihoods,
}


def option_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int = 32) -> Scores:
    """Each cloze's options (gold first) scored by their sequence log-likelihood under ``loaded``'s family."""
    import torch

    if loaded.family not in _LOGLIKELIHOODS:
        raise KnowledgeError(f"no cloze scorer for {loaded.family} models")
    with torch.inference_mode():
        return _LOGLIKELIHOODS[loaded.family](loaded, clozes, batch_size)


@dataclass(frozen=True)
class Predictions:
    """Per cloze: the 1-based rank of the gold answer and the model's own top answer."""

    ranks: list[int]
    answers: list[str]


def cloze_predictions(loaded: LoadedModel, clozes: Sequence[Cloze], mode: str, batch_size: int = 32,
                      vocabulary: Sequence[str] | None = None) -> Predictions:
    """Rank each cloze's answer under ``mode`` ('first_token' or 'candidates').

    ``vocabulary`` restricts first-token ranking to the tokens those words start with
    (LAMA's common vocabulary); in candidates mode a cloze without candidates ranks 1.
    The top answer is the best first token (decoded) or the best-scoring option.
    """
    import torch

    if mode == "first_token":
        if loaded.family not in _LOGLIKELIHOODS:
            raise KnowledgeError(f"no cloze scorer for {loaded.family} models")
        with torch.inference_mode():
            ranked = _first_token(loaded, clozes, batch_size, vocabulary)
        answers = [loaded.tokenizer.decode([top]).strip() for _, top in ranked]
        return Predictions([rank for rank, _ in ranked], answers)
    if mode == "candidates":
        scores = option_loglikelihoods(loaded, clozes, batch_size)
        answers = [c.options[max(range(len(row)), key=row.__getitem__)] for c, row in zip(clozes, scores)]
        return Predictions(_ranks_from_scores(scores), answers)
    raise KnowledgeError(f"unknown scoring mode {mode!r} (first_token or candidates)")


def cloze_ranks(loaded: LoadedModel, clozes: Sequence[Cloze], mode: str, batch_size: int = 32,
                vocabulary: Sequence[str] | None = None) -> list[int]:
    """Only the ranks of ``cloze_predictions``."""
    return cloze_predictions(loaded, clozes, mode, batch_size, vocabulary).ranks


# -- metrics ------------------------------------------------------------------------------


def rank_metrics(ranks: Sequence[int], k: int) -> dict[str, float]:
    """P@1, P@k and MRR (1-based ranks: a top-1 hit scores 1)."""
    n = len(ranks)
    return {
        "p_at_1": sum(r == 1 for r in ranks) / n,
        f"p_at_{k}": sum(r <= k for r in ranks) / n,
        "mrr": sum(1.0 / r for r in ranks) / n,
    }


def grouped_rank_metrics(ranks: Sequence[int], groups: Sequence[str], k: int) -> dict[str, float]:
    """Rank metrics macro-averaged over groups (relations), as LAMA reports them.

    With one group this is exactly ``rank_metrics``. With several it adds the micro
    averages (``<metric>.micro``, over all examples) and each group's P@1 and size.
    """
    by_group: dict[str, list[int]] = defaultdict(list)
    for rank, group in zip(ranks, groups, strict=True):
        by_group[group].append(rank)
    per_group = {g: rank_metrics(r, k) for g, r in by_group.items()}
    if len(per_group) == 1:
        return next(iter(per_group.values()))
    micro = rank_metrics(ranks, k)
    metrics = {key: sum(m[key] for m in per_group.values()) / len(per_group) for key in micro}
    metrics.update({f"{key}.micro": value for key, value in micro.items()})
    for group, values in per_group.items():
        metrics[f"p_at_1.{group}"] = values["p_at_1"]
        metrics[f"n.{group}"] = float(len(by_group[group]))
    return metrics
