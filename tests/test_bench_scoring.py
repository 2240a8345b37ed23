"""Cloze scorers of every family and mode against hand-computed values on fixed-logit fake models.

Each fake model's next-token distribution depends on one token only (a bigram table), and
its rows are log-probabilities chosen by hand, so every expected rank and log-likelihood
below is a product of the listed probabilities.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.scoring import (
    Cloze,
    cloze_ranks,
    grouped_rank_metrics,
    object_pieces,
    option_loglikelihoods,
    rank_metrics,
)
from pytest_knowledge.core.errors import KnowledgeError

WORDS = ["capital", "is", "Paris", "New", "York", "Lyon", "."]


def word_tokenizer(specials: dict[str, str], extra: tuple[str, ...] = (), template: str | None = None):
    """A real fast tokenizer (with character offsets) over WORDS, one token per word."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    names = list(dict.fromkeys([*specials.values(), *extra, *WORDS]))
    vocab = {w: i for i, w in enumerate(names)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens([*specials.values(), *extra])
    if template:
        used = [t for t in template.split() if t != "$A"]
        core.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(t, vocab[t]) for t in used])
    return PreTrainedTokenizerFast(tokenizer_object=core, **specials, extra_special_tokens=list(extra))


def table(tokenizer, rows: dict[str, dict[str, float]]) -> torch.Tensor:
    """Logits whose softmax gives the listed probabilities; the rest of each row shares what is left."""
    size = len(tokenizer)
    logits = torch.zeros(size, size, dtype=torch.float64)
    for given, probs in rows.items():
        rest = (1.0 - sum(probs.values())) / (size - len(probs))
        row = torch.full((size,), math.log(rest), dtype=torch.float64)
        for token, p in probs.items():
            row[tokenizer.convert_tokens_to_ids(token)] = math.log(p)
        logits[tokenizer.convert_tokens_to_ids(given)] = row
    return logits


class Bigram(nn.Module):
    """Causal LM: the logits at position t are the table row of the token at t."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.config = SimpleNamespace(max_position_embeddings=64)

    def forward(self, input_ids, attention_mask=None, use_cache=None):
        return SimpleNamespace(logits=self.logits[input_ids])


class PreviousToken(nn.Module):
    """Masked LM: the logits at position t are the table row of the token at t - 1."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logits[torch.roll(input_ids, 1, dims=1)])


class DecoderBigram(nn.Module):
    """Encoder-decoder: ignores the input; the logits at target position j are the row of the
    decoder input there (the target shifted right behind the start token, as T5 and BART do)."""

    def __init__(self, logits: torch.Tensor, start: int):
        super().__init__()
        self.logits = logits
        self.start = start

    def forward(self, input_ids, attention_mask=None, labels=None, use_cache=None):
        shifted = torch.cat([torch.full_like(labels[:, :1], self.start), labels[:, :-1]], 1)
        return SimpleNamespace(logits=self.logits[shifted.clamp(min=0)])


def loaded(model: nn.Module, tokenizer, family: str) -> LoadedModel:
    return LoadedModel("fake", model, tokenizer, family, "fake", torch.device("cpu"))


# The model's beliefs after "is": New 0.5, Paris 0.4, Lyon 0.05.
AFTER_IS = {"New": 0.5, "Paris": 0.4, "Lyon": 0.05}
CLOZE = Cloze("capital is ", "Paris", " .", candidates=("New York", "Lyon"))


@pytest.fixture(scope="module")
def decoder() -> LoadedModel:
    tok = word_tokenizer({"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"})
    rows = table(tok, {"is": AFTER_IS, "Paris": {".": 0.9}, "New": {"York": 0.6}, "York": {".": 0.5},
                       "Lyon": {".": 0.9}, "<s>": {"Paris": 0.2, "New": 0.1}})
    return loaded(Bigram(rows), tok, "decoder")


@pytest.fixture(scope="module")
def encoder() -> LoadedModel:
    tok = word_tokenizer({"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                          "mask_token": "[MASK]"}, template="[CLS] $A [SEP]")
    rows = table(tok, {"is": AFTER_IS, "New": {"York": 0.6}})
    return loaded(PreviousToken(rows), tok, "encoder")


@pytest.fixture(scope="module")
def t5() -> LoadedModel:
    tok = word_tokenizer({"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "</s>"},
                         extra=("<extra_id_0>", "<extra_id_1>"), template="$A </s>")
    rows = table(tok, {"<pad>": {"<extra_id_0>": 0.9}, "<extra_id_0>": AFTER_IS, "Paris": {"<extra_id_1>": 0.5},
                       "New": {"York": 0.6}, "York": {"<extra_id_1>": 0.8}, "Lyon": {"<extra_id_1>": 0.5},
                       "<extra_id_1>": {"</s>": 0.7}})
    return loaded(DecoderBigram(rows, tok.pad_token_id), tok, "encoder-decoder")


@pytest.fixture(scope="module")
def bart() -> LoadedModel:
    tok = word_tokenizer({"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
                          "mask_token": "<mask>"}, template="<s> $A </s>")
    rows = table(tok, {"</s>": {"<s>": 0.9}, "<s>": {"capital": 0.8}, "capital": {"is": 0.9}, "is": AFTER_IS,
                       "Paris": {".": 0.5}, "New": {"York": 0.6}, "York": {".": 0.5}, "Lyon": {".": 0.5},
                       ".": {"</s>": 0.9}})
    return loaded(DecoderBigram(rows, tok.eos_token_id), tok, "encoder-decoder")


def test_decoder_first_token_ranks_the_object_start_over_the_vocabulary(decoder):
    assert cloze_ranks(decoder, [CLOZE], "first_token") == [2]  # "New" (0.5) beats "Paris" (0.4)
    assert cloze_ranks(decoder, [Cloze("capital is ", "Lyon", " .")], "first_token") == [3]


def test_first_token_vocabulary_restricts_the_ranking(decoder):
    assert cloze_ranks(decoder, [CLOZE], "first_token", vocabulary=["Paris", "Lyon"]) == [1]
    assert cloze_ranks(decoder, [Cloze("capital is ", "Lyon", " .")], "first_token", vocabulary=["Paris", "Lyon"]) == [2]


def test_decoder_candidates_score_the_whole_object_and_the_rest_of_the_sentence(decoder):
    (scores,) = option_loglikelihoods(decoder, [CLOZE])
    # Paris: p(Paris|is) p(.|Paris); New York: p(New|is) p(York|New) p(.|York); Lyon: p(Lyon|is) p(.|Lyon)
    assert scores == pytest.approx([math.log(0.4 * 0.9), math.log(0.5 * 0.6 * 0.5), math.log(0.05 * 0.9)])
    assert cloze_ranks(decoder, [CLOZE], "candidates") == [1]
    wrong = Cloze("capital is ", "Lyon", " .", candidates=("Paris", "New York"))
    assert cloze_ranks(decoder, [wrong], "candidates") == [3]


def test_decoder_scores_an_object_that_opens_the_sentence_after_bos(decoder):
    cloze = Cloze("", "Paris", " is", candidates=("New York",))
    unlisted = 1 / (len(decoder.tokenizer) - 1)  # "is" is not listed after Paris or York: shares the rest
    (scores,) = option_loglikelihoods(decoder, [cloze])
    assert scores == pytest.approx([math.log(0.2 * 0.1 * unlisted), math.log(0.1 * 0.6 * 0.5 * unlisted)])
    assert cloze_ranks(decoder, [cloze], "candidates") == [2]
    assert cloze_ranks(decoder, [Cloze("", "Paris", " is")], "first_token") == [1]  # read after <s>


def test_candidate_ties_count_against_the_answer(decoder):
    tie = Cloze("capital ", "Paris", "", candidates=("Lyon",))  # nothing listed after "capital": uniform
    assert option_loglikelihoods(decoder, [tie])[0] == pytest.approx([-math.log(len(decoder.tokenizer))] * 2)
    assert cloze_ranks(decoder, [tie], "candidates") == [2]


@pytest.mark.parametrize("candidates", [(), ("Paris",), ("New York",)])
def test_a_cloze_with_nothing_to_compete_against_is_an_error_not_a_hit(decoder, candidates):
    cloze = Cloze("capital is ", "Paris", " .", candidates=candidates, accepted=("New York",))
    with pytest.raises(KnowledgeError, match=r"1 of 1 clozes have no wrong candidate to rank against, e\.g\. "
                                             r"'capital is ' with answer 'Paris'"):
        cloze_ranks(decoder, [cloze], "candidates")


@pytest.mark.parametrize("family", ["decoder", "encoder", "t5"])
def test_any_accepted_answer_counts_in_first_token_mode(family, request):
    model = request.getfixturevalue(family)
    # after "is": New 0.5, Paris 0.4, Lyon 0.05 — accepted tokens never count against the answer
    assert cloze_ranks(model, [Cloze("capital is ", "Lyon", " .")], "first_token") == [3]
    assert cloze_ranks(model, [Cloze("capital is ", "Lyon", " .", accepted=("Paris",))], "first_token") == [2]
    assert cloze_ranks(model, [Cloze("capital is ", "Lyon", " .", accepted=("Paris", "New York"))], "first_token") == [1]
    assert cloze_ranks(model, [Cloze("capital is ", "Lyon", " .", accepted=("Paris",))], "first_token",
                       vocabulary=["Lyon", "Paris"]) == [1]


@pytest.mark.parametrize("family", ["decoder", "encoder", "t5", "bart"])
def test_any_accepted_answer_counts_in_candidates_mode(family, request):
    model = request.getfixturevalue(family)
    alone = Cloze("capital is ", "Lyon", " .", candidates=("Paris", "New York"))
    assert cloze_ranks(model, [alone], "candidates") == [3]
    # Paris outscores New York under every fake model but T5's; Lyon never beats either
    with_paris = Cloze("capital is ", "Lyon", " .", candidates=("Paris", "New York"), accepted=("Paris",))
    assert with_paris.options == ("Lyon", "Paris", "New York")
    assert cloze_ranks(model, [with_paris], "candidates") == [2 if family == "t5" else 1]


def test_bos_option_decides_what_a_decoder_reads_first(decoder):
    seen: list[list[int]] = []

    class Recording(nn.Module):
        def forward(self, input_ids, attention_mask=None, use_cache=None):
            seen.extend(row[: int(mask.sum())].tolist() for row, mask in zip(input_ids, attention_mask))
            return decoder.model(input_ids)

    recording = loaded(Recording(), decoder.tokenizer, "decoder")
    bos, capital = decoder.tokenizer.bos_token_id, decoder.tokenizer.convert_tokens_to_ids("capital")
    for option, first in [("auto", capital), ("never", capital), ("always", bos)]:
        seen.clear()
        cloze_ranks(recording, [CLOZE], "first_token", bos=option)
        cloze_ranks(recording, [CLOZE], "candidates", bos=option)
        assert seen and {row[0] for row in seen} == {first}, option
    with pytest.raises(KnowledgeError, match="bos: never, but the object slot opens the sentence"):
        cloze_ranks(decoder, [Cloze("", "Paris", " is")], "first_token", bos="never")
    no_bos = word_tokenizer({"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "</s>"})
    with pytest.raises(KnowledgeError, match="bos: always, but the tokenizer has no BOS token"):
        cloze_ranks(loaded(decoder.model, no_bos, "decoder"), [CLOZE], "first_token", bos="always")


@pytest.mark.parametrize("family", ["decoder", "encoder", "t5", "bart"])
def test_object_pieces_count_the_tokens_first_token_mode_does_not_read(family, request):
    model = request.getfixturevalue(family)
    clozes = [CLOZE, Cloze("capital is ", "New York", " ."), Cloze("", "New York", " is")]
    assert object_pieces(model, clozes) == [1, 2, 2]


def test_encoder_first_token_reads_the_mask(encoder):
    assert cloze_ranks(encoder, [CLOZE], "first_token") == [2]
    assert cloze_ranks(encoder, [CLOZE], "first_token", vocabulary=["Paris", "York"]) == [1]


def test_encoder_candidates_fill_multi_token_objects_left_to_right(encoder):
    (scores,) = option_loglikelihoods(encoder, [CLOZE])
    # New York: p(New | is, [MASK] [MASK]) * p(York | New filled in)
    assert scores == pytest.approx([math.log(0.4), math.log(0.5 * 0.6), math.log(0.05)])
    assert cloze_ranks(encoder, [CLOZE], "candidates") == [1]


def test_t5_scores_the_sentinel_infilling_target(t5):
    (scores,) = option_loglikelihoods(t5, [CLOZE])
    # target: <extra_id_0> object <extra_id_1> </s>
    frame = 0.9 * 0.7
    assert scores == pytest.approx([math.log(frame * 0.4 * 0.5), math.log(frame * 0.5 * 0.6 * 0.8), math.log(frame * 0.05 * 0.5)])
    assert cloze_ranks(t5, [CLOZE], "candidates") == [2]  # New York (0.24) beats Paris (0.2)
    assert cloze_ranks(t5, [CLOZE], "first_token") == [2]
    assert cloze_ranks(t5, [CLOZE], "first_token", vocabulary=["Paris", "Lyon"]) == [1]


def test_bart_scores_the_whole_reconstructed_sentence(bart):
    (scores,) = option_loglikelihoods(bart, [CLOZE])
    frame = 0.9 * 0.8 * 0.9 * 0.9  # <s> capital is ... </s>
    assert scores == pytest.approx([math.log(frame * 0.4 * 0.5), math.log(frame * 0.5 * 0.6 * 0.5), math.log(frame * 0.05 * 0.5)])
    assert cloze_ranks(bart, [CLOZE], "candidates") == [1]
    assert cloze_ranks(bart, [CLOZE], "first_token") == [2]


def test_models_without_a_mask_cannot_be_probed_as_encoders(decoder):
    as_encoder = loaded(decoder.model, decoder.tokenizer, "encoder")
    with pytest.raises(KnowledgeError, match="no mask token"):
        cloze_ranks(as_encoder, [CLOZE], "first_token")
    with pytest.raises(KnowledgeError, match="neither T5 sentinel"):
        cloze_ranks(loaded(decoder.model, decoder.tokenizer, "encoder-decoder"), [CLOZE], "candidates")
    with pytest.raises(KnowledgeError, match="unknown scoring mode"):
        cloze_ranks(decoder, [CLOZE], "beam")


def test_rank_metrics_use_one_based_ranks():
    assert rank_metrics([1, 2, 4, 20], k=3) == pytest.approx({"p_at_1": 0.25, "p_at_3": 0.5, "mrr": (1 + 0.5 + 0.25 + 0.05) / 4})


def test_grouped_metrics_macro_average_relations_and_report_micro():
    metrics = grouped_rank_metrics([1, 1, 1, 2, 1, 5], ["a", "a", "a", "a", "b", "b"], k=2)
    assert metrics["p_at_1"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert metrics["p_at_1.micro"] == pytest.approx(4 / 6)
    assert metrics["p_at_2"] == pytest.approx((1 + 1 / 2) / 2)
    assert metrics["mrr"] == pytest.approx(((3 + 0.5) / 4 + (1 + 0.2) / 2) / 2)
    assert (metrics["p_at_1.a"], metrics["n.a"], metrics["p_at_1.b"], metrics["n.b"]) == (0.75, 4.0, 0.5, 2.0)
    assert grouped_rank_metrics([1, 2], ["a", "a"], k=10) == rank_metrics([1, 2], k=10)


def test_the_head_only_at_scored_positions_gives_the_same_ranks(tiny_llama, monkeypatch):
    """logits_to_keep is a speed-up only: ranks and answers equal those from full logits."""
    from pytest_knowledge.benchmarks import scoring
    from pytest_knowledge.engine.loading import load

    loaded = load("tiny", str(tiny_llama))
    clozes = [Cloze(f"The capital of {c} is", a) for c, a in
              [("France", "Paris"), ("Peru", "Lima"), ("the United Kingdom", "London"), ("Chad", "N'Djamena")]]
    assert scoring._keeps_logits(loaded.model)
    fast = scoring.cloze_predictions(loaded, clozes, "first_token", batch_size=3)
    monkeypatch.setattr(scoring, "_keeps_logits", lambda model: False)
    full = scoring.cloze_predictions(loaded, clozes, "first_token", batch_size=3)
    assert fast.ranks == full.ranks and fast.answers == full.answers
