"""How the tiny fixture checkpoints under ``checkpoints/`` were made, and how to make them again.

No English pretrained masked-LM or seq2seq weights are available offline, so two tiny models
are trained on sentences of the built-in facts probe: a BERT-style masked LM and a T5-style
span-infilling model, both with a word-level tokenizer. They are test fixtures: they know a
few hundred country facts and nothing else, and are never to be read as pretrained models.

Training is seeded and deterministic on one machine, but floating-point results differ between
CPUs, so a model trained here is not bit-identical to one trained elsewhere. That is why the
checkpoints are shipped and this recipe only regenerates them (``python -m pytest_knowledge.testing``).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from pytest_knowledge.benchmarks.facts import (
    RELATIONS,
    FactsConfig,
    fill,
    relation_facts,
)
from pytest_knowledge.benchmarks.scoring import T5_SENTINELS

if TYPE_CHECKING:
    import torch

@dataclass(frozen=True)
class Recipe:
    """Everything that determines a fixture's weights (on one machine)."""

    architecture: Literal["bert", "t5"]
    relations: tuple[str, ...] = ("capital", "continent", "currency", "official_language")
    min_population: int = 3_000_000
    single_token_objects: bool = False
    width: int = 128
    layers: int = 2
    heads: int = 4
    steps: int = 400
    batch_size: int = 64
    learning_rate: float = 3e-3  # decays linearly to zero over the steps
    seed: int = 0


RECIPES: dict[str, Recipe] = {
    "tiny-bert-facts": Recipe("bert", single_token_objects=True, steps=800),
    "tiny-t5-facts": Recipe("t5", steps=300, learning_rate=2e-3),
}


@dataclass(frozen=True)
class TrainingFact:
    prefix: str
    object: str
    suffix: str


def _words(text: str) -> list[str]:
    from tokenizers.pre_tokenizers import Whitespace

    return [w for w, _ in Whitespace().pre_tokenize_str(text)]


def training_facts(recipe: Recipe) -> list[TrainingFact]:
    """The facts a fixture learns: each relation's facts at ``min_population``, as template sentences."""
    config = FactsConfig(relations=recipe.relations, min_population=recipe.min_population)
    facts = []
    for name in recipe.relations:
        for fact in relation_facts(name, config):
            if recipe.single_token_objects and len(_words(fact.object)) != 1:
                continue
            prefix, suffix = fill(RELATIONS[name].template, fact.subject)
            facts.append(TrainingFact(prefix, fact.object, suffix))
    return facts


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, deterministic kernels, one thread: the same weights on any CPU count (and faster
    than two threads for a model this small)."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def _tokenizer(recipe: Recipe, facts: list[TrainingFact]):
    """A word-level tokenizer over the facts' words, wrapped so ``AutoTokenizer`` can load it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if recipe.architecture == "bert":
        specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                    "mask_token": "[MASK]"}
        extra: list[str] = []
    else:
        specials = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
        extra = list(T5_SENTINELS)
    words = sorted({w for f in facts for w in _words(f.prefix + f.object + f.suffix)})
    vocab = {token: i for i, token in enumerate([*specials.values(), *extra, *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens([*specials.values(), *extra])
    if recipe.architecture == "bert":
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    else:
        core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, **specials, extra_special_tokens=extra)


def _model(recipe: Recipe, tokenizer):
    import transformers

    if recipe.architecture == "bert":
        config = transformers.BertConfig(
            vocab_size=len(tokenizer), hidden_size=recipe.width, num_hidden_layers=recipe.layers,
            num_attention_heads=recipe.heads, intermediate_size=2 * recipe.width, max_position_embeddings=64,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id,
        )
        return transformers.BertForMaskedLM(config)
    config = transformers.T5Config(
        vocab_size=len(tokenizer), d_model=recipe.width, d_kv=recipe.width // recipe.heads, d_ff=2 * recipe.width,
        num_layers=recipe.layers, num_decoder_layers=recipe.layers, num_heads=recipe.heads,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.0,
    )
    return transformers.T5ForConditionalGeneration(config)


def _examples(recipe: Recipe, facts: list[TrainingFact], tokenizer) -> dict[str, torch.Tensor]:
    """Every fact as one padded training row: the object masked (BERT) or to be infilled (T5)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    rows, targets = [], []
    for fact in facts:
        if recipe.architecture == "bert":
            filled = tokenizer(fact.prefix + fact.object + fact.suffix)["input_ids"]
            masked = tokenizer(fact.prefix + tokenizer.mask_token + fact.suffix)["input_ids"]
            position = masked.index(tokenizer.mask_token_id)
            rows.append(masked)
            targets.append([-100] * position + [filled[position]] + [-100] * (len(masked) - position - 1))
        else:
            rows.append(tokenizer(fact.prefix + T5_SENTINELS[0] + fact.suffix)["input_ids"])
            targets.append(tokenizer(f"{T5_SENTINELS[0]} {fact.object} {T5_SENTINELS[1]}")["input_ids"])
    ids = pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=tokenizer.pad_token_id)
    mask = pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True)
    labels = pad_sequence([torch.tensor(t) for t in targets], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _exact(model, data: dict[str, torch.Tensor]) -> float:
    """Share of facts whose every target token is the model's top prediction (teacher forcing)."""
    import torch

    with torch.inference_mode():
        logits = model(**data).logits
    labels = data["labels"]
    right = (logits.argmax(-1) == labels) | (labels == -100)
    return float(right.all(1).float().mean())


def train(recipe: Recipe, facts: list[TrainingFact], directory: Path) -> dict:
    """Train a fixture from scratch and save model, tokenizer and a training report in ``directory``."""
    import torch

    started = time.perf_counter()
    with _deterministic(recipe.seed):
        tokenizer = _tokenizer(recipe, facts)
        model = _model(recipe, tokenizer)
        data = _examples(recipe, facts, tokenizer)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / recipe.steps)
        order = random.Random(recipe.seed)
        model.train()
        for _ in range(recipe.steps):
            batch = order.sample(range(len(facts)), min(recipe.batch_size, len(facts)))
            loss = model(**{k: v[batch] for k, v in data.items()}).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        accuracy = _exact(model, data)
    report = {
        "fixture": "test fixture trained on built-in facts only; not a pretrained model",
        "recipe": asdict(recipe),
        "facts": len(facts),
        "exact_match": accuracy,
        "seconds": round(time.perf_counter() - started, 1),
    }
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def facts_p_at_1(name: str, directory: Path) -> float:
    """P@1 of the fixture in ``directory`` on the facts it was trained on, as the default suite probes them."""
    from pytest_knowledge.benchmarks.facts import FactsBenchmark
    from pytest_knowledge.engine.loading import load

    recipe = RECIPES[name]
    probe = FactsBenchmark(FactsConfig(relations=recipe.relations, min_population=recipe.min_population))
    return probe.evaluate(load(f"{name}@{directory}", str(directory))).value
