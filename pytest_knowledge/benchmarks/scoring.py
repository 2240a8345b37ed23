"""Cloze scoring for decoder, encoder (masked LM) and encoder-decoder models.

A cloze is a template with the object slot ``[Y]`` already split into the text before
it (``prefix``), the gold object and the text after it (``suffix``). Two modes, each
defined for every family (exact definitions in docs/benchmarks.md):

* first_token: rank the object's first token among the whole vocabulary (or a given
  word list) at the slot — one forward pass per cloze.
* candidates: rank a candidate set by the log-likelihood of each filled-in object,
  summed over all of its tokens, so multi-token objects count in full.

A cloze may accept several answers (a country with two capitals): the rank is that of
the best-scoring accepted answer among everything that is not accepted, so a hit on
any of them counts, in both modes.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.core.errors import KnowledgeError

if TYPE_CHECKING:
    import torch

T5_SENTINELS = ("<extra_id_0>", "<extra_id_1>")
Bos = Literal["auto", "always", "never"]  # what a decoder reads before the prefix (see _decoder_start)


@dataclass(frozen=True)
class Cloze:
    prefix: str
    answer: str
    suffix: str = ""
    candidates: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()  # other correct answers: a hit on any of them counts

    @property
    def answers(self) -> tuple[str, ...]:
        """The gold answer first, then the other accepted answers."""
        return tuple(dict.fromkeys((self.answer, *self.accepted)))

    @property
    def options(self) -> tuple[str, ...]:
        """The accepted answers first, then the candidates that are not accepted."""
        answers = self.answers
        return answers + tuple(dict.fromkeys(x for x in self.candidates if x not in answers))


@dataclass(frozen=True)
class Slot:
    """One row to run through a model and where to read it: the accepted tokens ``golds``
    (the gold answer's first) at ``position``."""

    ids: list[int]
    position: int
    golds: tuple[int, ...]


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


def position_batches(positions: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of row indices that are all read at one position (shortest first)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i in sorted(range(len(positions)), key=lambda i: positions[i]):
        groups[positions[i]].append(i)
    return [batch for group in groups.values() for batch in _batches(group, batch_size)]


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _join(prefix: str, word: str) -> str:
    """``prefix`` followed by ``word`` with one space between, the way decoders read a sentence."""
    head = prefix.rstrip()
    return f"{head} {word}" if head else word


def _decoder_start(tokenizer, prefix: str, bos: Bos) -> list[int]:
    """The tokens a decoder reads before ``prefix``. ``always``: BOS. ``never``: nothing, so
    a slot that opens the sentence has no context and is an error. ``auto``: BOS when the
    tokenizer adds one itself; else nothing, except BOS (or EOS) when the slot opens the sentence."""
    token = tokenizer.bos_token_id
    if bos == "always":
        if token is None:
            raise KnowledgeError("bos: always, but the tokenizer has no BOS token (expected bos: auto or never)")
        return [token]
    if bos == "never":
        if not prefix.strip():
            raise KnowledgeError("bos: never, but the object slot opens the sentence, so nothing precedes it "
                                 "(expected bos: auto or always for such clozes)")
        return []
    if token is not None and getattr(tokenizer, "add_bos_token", False):
        return [token]
    if not prefix.strip():
        start = token if token is not None else tokenizer.eos_token_id
        if start is None:
            raise KnowledgeError("the object slot opens the sentence, and the tokenizer has no BOS or EOS token "
                                 "to start from")
        return [start]
    return []


def _decoder_tokens(tokenizer, cloze: Cloze, answer: str, bos: Bos) -> tuple[list[int], list[int]]:
    """The prompt (start tokens and prefix) and the prompt followed by ``answer``."""
    start = _decoder_start(tokenizer, cloze.prefix, bos)
    prompt = start + _encode(tokenizer, cloze.prefix.rstrip()) if cloze.prefix.strip() else start
    full = start + _encode(tokenizer, _join(cloze.prefix, answer))
    if full[: len(prompt)] != prompt or len(full) == len(prompt):
        raise KnowledgeError(f"cannot align answer {answer!r} after {cloze.prefix!r} in the tokenizer")
    return prompt, full


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


def _decoder_slots(loaded: LoadedModel, clozes: Sequence[Cloze], bos: Bos) -> list[Slot]:
    slots = []
    for c in clozes:
        golds = []
        for answer in c.answers:
            prompt, full = _decoder_tokens(loaded.tokenizer, c, answer, bos)
            golds.append(full[len(prompt)])
        slots.append(Slot(prompt, len(prompt) - 1, tuple(golds)))
    return slots


def _encoder_slots(loaded: LoadedModel, clozes: Sequence[Cloze]) -> list[Slot]:
    """The gold object's tokens replaced by one mask token; each accepted answer is judged by its first token."""
    mask = _mask_id(loaded)
    slots = []
    for c in clozes:
        ids, a, b = _span(loaded.tokenizer, c.prefix, c.answer, c.suffix, special=True)
        golds = [ids[a]]
        for other in c.answers[1:]:
            other_ids, start, _ = _span(loaded.tokenizer, c.prefix, other, c.suffix, special=True)
            golds.append(other_ids[start])
        slots.append(Slot(ids[:a] + [mask] + ids[b:], a, tuple(golds)))
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


def _rank_among(logits: torch.Tensor, golds: Sequence[Sequence[int]],
                allowed: list[int] | None) -> list[tuple[int, int]]:
    """Per row: (1 + the number of (allowed) tokens that are not accepted and score strictly
    above the best accepted token, the top-scoring allowed token — the model's own answer)."""
    import torch

    accepted = torch.zeros_like(logits, dtype=torch.bool)
    for row, ids in enumerate(golds):
        accepted[row, list(ids)] = True
    best = logits.masked_fill(~accepted, float("-inf")).amax(1)
    above = (logits > best[:, None]) & ~accepted
    if allowed is not None:
        keep = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        keep[allowed] = True
        above &= keep
        logits = logits.masked_fill(~keep, float("-inf"))
    return list(zip((above.sum(1) + 1).tolist(), logits.argmax(1).tolist()))


@functools.lru_cache(maxsize=8)
def _keeps_logits_type(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def _keeps_logits(model: object) -> bool:
    """Whether the model computes logits only at given positions (transformers' causal LMs do)."""
    return _keeps_logits_type(type(model))


def _first_token_causal_or_masked(loaded: LoadedModel, slots: list[Slot], batch_size: int,
                                  allowed: list[int] | None) -> list[tuple[int, int]]:
    import torch

    ranks = [(0, 0)] * len(slots)
    keep = _keeps_logits(loaded.model)
    rows = [s.ids for s in slots]
    # Where the model can compute its LM head at chosen positions only, batch rows that are read at
    # the same position: one vocabulary-wide row per cloze instead of one per token of every row.
    batches = position_batches([s.position for s in slots], batch_size) if keep else length_batches(rows, batch_size)
    for batch in batches:
        ids, mask = pad_rows([rows[i] for i in batch], loaded.tokenizer.pad_token_id, loaded.device)
        kwargs: dict[str, object] = {"use_cache": False} if loaded.family == "decoder" else {}
        positions = torch.tensor([slots[i].position for i in batch])
        if keep:
            kwargs["logits_to_keep"] = positions[:1].to(ids.device)
            positions = torch.zeros_like(positions)
        logits = loaded.model(input_ids=ids, attention_mask=mask, **kwargs).logits.float()
        at = logits[torch.arange(len(batch)), positions]
        for i, r in zip(batch, _rank_among(at, [slots[i].golds for i in batch], allowed)):
            ranks[i] = r
    return ranks


def _first_token_seq2seq(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int,
                         allowed: list[int] | None) -> list[tuple[int, int]]:
    import torch

    sentinels = _sentinel_style(loaded)
    rows = [_seq2seq_row(loaded.tokenizer, sentinels, c, c.answer) for c in clozes]
    golds = [tuple(r.labels[r.span[0]] for r in (_seq2seq_row(loaded.tokenizer, sentinels, c, a) for a in c.answers))
             for c in clozes]
    ranks = [(0, 0)] * len(rows)
    for batch in length_batches([r.ids for r in rows], batch_size):
        logits = _seq2seq_logits(loaded, [rows[i] for i in batch])
        at = logits[torch.arange(len(batch)), torch.tensor([rows[i].span[0] for i in batch])]
        for i, r in zip(batch, _rank_among(at, [golds[i] for i in batch], allowed)):
            ranks[i] = r
    return ranks


def _first_token_ids(loaded: LoadedModel, words: Sequence[str], bos: Bos) -> list[int]:
    """The token each word starts with when it fills a slot, read exactly like a gold answer."""
    probes = [Cloze("The answer is ", w, ".") for w in words]
    if loaded.family == "decoder":
        return [s.golds[0] for s in _decoder_slots(loaded, probes, bos)]
    if loaded.family == "encoder":
        return [s.golds[0] for s in _encoder_slots(loaded, probes)]
    sentinels = _sentinel_style(loaded)
    rows = [_seq2seq_row(loaded.tokenizer, sentinels, p, p.answer) for p in probes]
    return [r.labels[r.span[0]] for r in rows]


def _first_token(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int,
                 vocabulary: Sequence[str] | None, bos: Bos) -> list[tuple[int, int]]:
    allowed = None if vocabulary is None else _first_token_ids(loaded, vocabulary, bos)
    if loaded.family == "decoder":
        return _first_token_causal_or_masked(loaded, _decoder_slots(loaded, clozes, bos), batch_size, allowed)
    if loaded.family == "encoder":
        return _first_token_causal_or_masked(loaded, _encoder_slots(loaded, clozes), batch_size, allowed)
    return _first_token_seq2seq(loaded, clozes, batch_size, allowed)


def object_pieces(loaded: LoadedModel, clozes: Sequence[Cloze], bos: Bos = "auto") -> list[int]:
    """Per cloze, how many tokens its gold object spans in the slot — first-token mode judges
    only the first of them, so callers can count or drop the others."""
    tok = loaded.tokenizer
    if loaded.family == "decoder":
        return [len(full) - len(prompt) for prompt, full in (_decoder_tokens(tok, c, c.answer, bos) for c in clozes)]
    if loaded.family == "encoder":
        return [b - a for _, a, b in (_span(tok, c.prefix, c.answer, c.suffix, special=True) for c in clozes)]
    if loaded.family not in _FAMILIES:
        raise KnowledgeError(f"no cloze scorer for {loaded.family} models")
    sentinels = _sentinel_style(loaded)
    return [r.span[1] - r.span[0] for r in (_seq2seq_row(tok, sentinels, c, c.answer) for c in clozes)]


# -- candidates: sequence log-likelihood -------------------------------------------------

Scores = list[list[float]]  # per cloze, per option (gold first)


def _empty_scores(clozes: Sequence[Cloze]) -> Scores:
    return [[0.0] * len(c.options) for c in clozes]


def _decoder_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int, bos: Bos) -> Scores:
    """log p(option + suffix | prefix): every token after the prefix, the suffix included."""
    import torch

    tok = loaded.tokenizer
    rows: list[tuple[list[int], int]] = []
    keys: list[tuple[int, int]] = []
    for n, c in enumerate(clozes):
        start = _decoder_start(tok, c.prefix, bos)
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
                slots.append(Slot(ids[:i] + [mask] * (b - i) + ids[b:], i, (ids[i],)))
                keys.append((n, o))
    scores = _empty_scores(clozes)
    for batch in length_batches([s.ids for s in slots], batch_size):
        ids, attention = pad_rows([slots[i].ids for i in batch], loaded.tokenizer.pad_token_id, loaded.device)
        logits = loaded.model(input_ids=ids, attention_mask=attention).logits.float()
        at = torch.log_softmax(logits[torch.arange(len(batch)), torch.tensor([slots[i].position for i in batch])], -1)
        gold = torch.tensor([slots[i].golds[0] for i in batch], device=at.device)
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


def _ranks_from_scores(clozes: Sequence[Cloze], scores: Scores) -> list[int]:
    """1 + the number of wrong options scoring at least as high as the best accepted one
    (ties count against the answer)."""
    ranks = []
    for cloze, options in zip(clozes, scores):
        accepted = len(cloze.answers)
        best = max(options[:accepted])
        ranks.append(1 + sum(s >= best for s in options[accepted:]))
    return ranks


_FAMILIES = ("decoder", "encoder", "encoder-decoder")


def option_loglikelihoods(loaded: LoadedModel, clozes: Sequence[Cloze], batch_size: int = 32,
                          bos: Bos = "auto") -> Scores:
    """Each cloze's options (accepted answers first) scored by their sequence log-likelihood
    under ``loaded``'s family; ``bos`` applies to decoders."""
    import torch

    if loaded.family not in _FAMILIES:
        raise KnowledgeError(f"no cloze scorer for {loaded.family} models")
    with torch.inference_mode():
        if loaded.family == "decoder":
            return _decoder_loglikelihoods(loaded, clozes, batch_size, bos)
        if loaded.family == "encoder":
            return _encoder_loglikelihoods(loaded, clozes, batch_size)
        return _seq2seq_loglikelihoods(loaded, clozes, batch_size)


@dataclass(frozen=True)
class Predictions:
    """Per cloze: the 1-based rank of the gold answer and the model's own top answer."""

    ranks: list[int]
    answers: list[str]


def cloze_predictions(loaded: LoadedModel, clozes: Sequence[Cloze], mode: str, batch_size: int = 32,
                      vocabulary: Sequence[str] | None = None, bos: Bos = "auto") -> Predictions:
    """Rank each cloze's answer under ``mode`` ('first_token' or 'candidates').

    ``vocabulary`` restricts first-token ranking to the tokens those words start with
    (LAMA's common vocabulary). In candidates mode a cloze without a wrong candidate is an
    error: with nothing competing, its rank 1 would be a hit the model never earned.
    The top answer is the best first token (decoded) or the best-scoring option.
    """
    import torch

    if mode == "first_token":
        if loaded.family not in _FAMILIES:
            raise KnowledgeError(f"no cloze scorer for {loaded.family} models")
        with torch.inference_mode():
            ranked = _first_token(loaded, clozes, batch_size, vocabulary, bos)
        answers = [loaded.tokenizer.decode([top]).strip() for _, top in ranked]
        return Predictions([rank for rank, _ in ranked], answers)
    if mode == "candidates":
        lonely = [c for c in clozes if len(c.options) == len(c.answers)]
        if lonely:
            raise KnowledgeError(f"{len(lonely)} of {len(clozes)} clozes have no wrong candidate to rank against, "
                                 f"e.g. {lonely[0].prefix!r} with answer {lonely[0].answer!r} "
                                 "(expected at least one candidate that is not an accepted answer)")
        scores = option_loglikelihoods(loaded, clozes, batch_size, bos)
        answers = [c.options[max(range(len(row)), key=row.__getitem__)] for c, row in zip(clozes, scores)]
        return Predictions(_ranks_from_scores(clozes, scores), answers)
    raise KnowledgeError(f"unknown scoring mode {mode!r} (first_token or candidates)")


def cloze_ranks(loaded: LoadedModel, clozes: Sequence[Cloze], mode: str, batch_size: int = 32,
                vocabulary: Sequence[str] | None = None, bos: Bos = "auto") -> list[int]:
    """Only the ranks of ``cloze_predictions``."""
    return cloze_predictions(loaded, clozes, mode, batch_size, vocabulary, bos).ranks


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
