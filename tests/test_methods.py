"""Every compression method on tiny randomly initialised models: scopes per family,
effect, determinism, and exact undo through the workbench's DenseSnapshot."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers as tf
from torch import nn

from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import KnowledgeError, SuiteError, Unavailable
from pytest_knowledge.engine.workbench import DenseSnapshot
from pytest_knowledge.methods import METHODS, CompressionContext, MethodReport
from pytest_knowledge.methods.scopes import is_conv1d, linear_layers

VOCAB = 256  # the byte-level tokenizer below


def byte_tokenizer() -> tf.PreTrainedTokenizerFast:
    """A real fast tokenizer with one token per byte, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer)


TINY: dict[str, tuple[type, Any, str]] = {
    "bert": (tf.BertForMaskedLM, lambda: tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48), "encoder"),
    "roberta": (tf.RobertaForMaskedLM, lambda: tf.RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48), "encoder"),
    "albert": (tf.AlbertForMaskedLM, lambda: tf.AlbertConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48), "encoder"),
    "distilbert": (tf.DistilBertForMaskedLM, lambda: tf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=48), "encoder"),
    "gpt2": (tf.GPT2LMHeadModel, lambda: tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0), "decoder"),
    "llama": (tf.LlamaForCausalLM, lambda: tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=48, tie_word_embeddings=True), "decoder"),
    "t5": (tf.T5ForConditionalGeneration, lambda: tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=48, num_layers=2, num_heads=2), "encoder-decoder"),
    "bart": (tf.BartForConditionalGeneration, lambda: tf.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=48), "encoder-decoder"),
}


def tiny(family: str) -> tuple[nn.Module, str]:
    model_class, config, kind = TINY[family]
    torch.manual_seed(0)
    return model_class(config()).eval(), kind


def outputs(model: nn.Module) -> torch.Tensor:
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 64]])
    extra = {"decoder_input_ids": ids} if model.config.is_encoder_decoder else {}
    with torch.no_grad():
        return model(input_ids=ids, **extra).logits


def compress(model: nn.Module, kind: str, method: str, params: dict[str, Any], ratio: float | None, seed: int = 7) -> MethodReport:
    entry = METHODS.lookup(method, "method")
    config = build(entry.config, params, "methods[0]")
    return entry.apply(model, config, ratio, CompressionContext(kind, seed, byte_tokenizer()))


# (family, label) → expected number of linear layers; the head is separate.
SCOPES = {
    "bert": {"attention": 8, "ffn": 4, "other": 1},  # other: cls.predictions.transform.dense
    "roberta": {"attention": 8, "ffn": 4, "other": 1},  # other: lm_head.dense
    "albert": {"attention": 4, "ffn": 2, "other": 2},  # one shared layer; embedding projection, predictions.dense
    "distilbert": {"attention": 8, "ffn": 4, "other": 1},  # other: vocab_transform
    "gpt2": {"attention": 4, "ffn": 4},
    "llama": {"attention": 8, "ffn": 6},
    "t5": {"attention": 24, "ffn": 8},  # decoder blocks have SelfAttention and EncDecAttention
    "bart": {"attention": 12, "ffn": 4},
}
HEADS = {"bert": "cls.predictions.decoder", "roberta": "lm_head.decoder", "albert": "predictions.decoder",
         "distilbert": "vocab_projector", "gpt2": "lm_head", "llama": "lm_head", "t5": "lm_head", "bart": "lm_head"}
FFN_NAMES = {"bert": "intermediate.dense", "roberta": "output.dense", "albert": "ffn_output", "distilbert": "ffn.lin1",
             "gpt2": "mlp.c_fc", "llama": "mlp.down_proj", "t5": "DenseReluDense.wo", "bart": "fc2"}


@pytest.mark.parametrize("family", sorted(TINY))
def test_scopes_by_family(family: str) -> None:
    model, _ = tiny(family)
    layers = linear_layers(model, "all")
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.scope] = counts.get(layer.scope, 0) + 1
    assert counts == SCOPES[family]
    assert [layer.scope for layer in linear_layers(model, "attention")] == ["attention"] * SCOPES[family]["attention"]
    ffn_names = [layer.name for layer in linear_layers(model, "ffn")]
    assert len(ffn_names) == SCOPES[family]["ffn"] and any(n.endswith(FFN_NAMES[family]) for n in ffn_names)
    assert all(is_conv1d(layer.module) == (family == "gpt2") for layer in layers)
    with_head = linear_layers(model, "attention", include_head=True)
    assert [(layer.name, layer.scope) for layer in with_head if layer.scope == "head"] == [(HEADS[family], "head")]


def test_selecting_a_tied_head_unties_it_and_restore_reties() -> None:
    model, _ = tiny("llama")
    snapshot = DenseSnapshot(model)
    embeddings = model.model.embed_tokens.weight.detach().clone()
    linear_layers(model, "all", include_head=True)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    snapshot.restore()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert torch.equal(model.model.embed_tokens.weight, embeddings)


# Every method, as a suite would write it: (method, parameters, ratio).
EVERY_METHOD = [
    ("magnitude", {}, 0.5),
    ("magnitude", {"scope": "ffn", "include_head": True}, 0.3),
    ("head", {"kind": "l1_unstructured"}, 0.5),
    ("head", {"kind": "random_unstructured"}, 0.5),
    ("head", {"kind": "random_structured", "axis": "input"}, 0.25),
    ("head", {"kind": "ln_structured", "norm": 1}, 0.25),
    ("nm", {"n": 2, "m": 4}, None),
    ("nm", {"n": 4, "m": 8, "scope": "attention"}, None),
    ("wanda", {"samples": 4, "max_tokens": 32}, 0.5),
    ("int8_dynamic", {}, None),
    ("int8_weight", {"scope": "ffn"}, None),
    ("rtn", {}, 4),
    ("rtn", {"symmetric": False, "group_size": 16, "include_head": True}, 2),
    ("torchao", {"scheme": "int4_weight", "group_size": 16}, None),
    ("torchao", {"scheme": "int8_dynamic_int4", "group_size": 16}, None),
    ("torchao", {"scheme": "float8_weight"}, None),
]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize(("method", "params", "ratio"), EVERY_METHOD, ids=[
    "-".join([method, *(f"{k}={v}" for k, v in params.items()), str(ratio)]) for method, params, ratio in EVERY_METHOD
])
def test_method_changes_outputs_is_deterministic_and_restores_exactly(family: str, method: str, params: dict, ratio: float | None) -> None:
    model, kind = tiny(family)
    dense = outputs(model)
    dense_state = {k: v.clone() for k, v in model.state_dict().items()}
    snapshot = DenseSnapshot(model)

    report = compress(model, kind, method, params, ratio)
    compressed = outputs(model)
    assert not torch.equal(compressed, dense)
    assert report.touched_parameters > 0
    snapshot.restore()
    assert torch.equal(outputs(model), dense)
    assert all(torch.equal(v, dense_state[k]) for k, v in model.state_dict().items())
    assert model.lm_head.weight is model.get_input_embeddings().weight

    assert compress(model, kind, method, params, ratio) == report
    assert torch.equal(outputs(model), compressed)
    snapshot.restore()
    assert torch.equal(outputs(model), dense)


def test_pruning_reports_measured_sparsity_per_scope() -> None:
    model, kind = tiny("llama")
    report = compress(model, kind, "magnitude", {"scope": "ffn", "include_head": True}, 0.4)
    assert report.touched_parameters == 6 * 32 * 48 + VOCAB * 32
    assert report.sparsity == round(0.4 * report.touched_parameters) / report.touched_parameters
    assert set(report.sparsity_by_scope) == {"ffn", "head"}


def test_head_pruning_leaves_tied_embeddings_dense() -> None:
    model, kind = tiny("llama")
    embeddings = model.model.embed_tokens.weight.detach().clone()
    report = compress(model, kind, "head", {"kind": "l1_unstructured"}, 0.6)
    assert torch.equal(model.model.embed_tokens.weight, embeddings)
    assert float((model.lm_head.weight == 0).float().mean()) == pytest.approx(0.6, abs=1 / (VOCAB * 32))
    assert report.sparsity_by_scope == {"head": report.sparsity}
    assert not hasattr(model.lm_head, "weight_orig") and not model.lm_head._forward_pre_hooks


@pytest.mark.parametrize(("axis", "dim"), [("output", 1), ("input", 0)])
def test_structured_head_pruning_removes_whole_rows_or_columns(axis: str, dim: int) -> None:
    model, kind = tiny("llama")
    compress(model, kind, "head", {"kind": "ln_structured", "axis": axis}, 0.25)
    weight = model.lm_head.weight
    emptied = int((weight == 0).all(dim=dim).sum())
    assert emptied == round(0.25 * weight.shape[1 - dim])
    assert float((weight == 0).float().mean()) == pytest.approx(0.25, abs=1 / weight.shape[1 - dim])


def test_random_head_pruning_follows_the_case_seed_only() -> None:
    masks = []
    for seed in (1, 1, 2):
        model, kind = tiny("llama")
        torch.manual_seed(seed * 1000)  # global state must not matter
        compress(model, kind, "head", {"kind": "random_unstructured"}, 0.5, seed=seed)
        masks.append(model.lm_head.weight == 0)
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])
    model, kind = tiny("llama")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    compress(model, kind, "head", {"kind": "random_structured"}, 0.5)
    assert torch.equal(torch.rand(3), expected)  # the global generator was left alone


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_nm_masks_are_n_of_m_along_the_input(family: str) -> None:
    model, kind = tiny(family)
    report = compress(model, kind, "nm", {"n": 2, "m": 4}, None)
    assert report.sparsity == pytest.approx(0.5)
    for layer in linear_layers(model):
        out_features, in_features = layer.rows.shape
        nonzero = (layer.rows != 0).reshape(out_features, in_features // 4, 4).sum(-1)
        assert bool((nonzero == 2).all()), layer.name


def test_nm_rejects_layers_whose_inputs_do_not_split_into_groups() -> None:
    model, kind = tiny("llama")
    with pytest.raises(KnowledgeError, match="not a multiple of m=5"):
        compress(model, kind, "nm", {"n": 2, "m": 5}, None)


def test_torchao_schemes_this_cpu_cannot_run_are_unavailable_not_failed() -> None:
    model, kind = tiny("llama")
    with pytest.raises(Unavailable, match="float8_dynamic needs a GPU of compute capability 8.9"):
        compress(model, kind, "torchao", {"scheme": "float8_dynamic"}, None)
    with pytest.raises(KnowledgeError, match="not divisible by group_size 32"):
        compress(model, kind, "torchao", {"scheme": "int4_weight", "group_size": 32}, None)


def test_torchao_int4_reports_the_config_it_used() -> None:
    model, kind = tiny("llama")
    report = compress(model, kind, "torchao", {"scheme": "int4_weight", "group_size": 16}, None)
    assert report.bits == 4 and report.details.startswith("IntxWeightOnlyConfig(int4), 14 layers")


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("torchao", {"scheme": "int3_weight"}, "one of 'int4_weight'"),
    ("torchao", {"group_size": 48}, "one of 16, 32"),
    ("nm", {"n": 4, "m": 4}, "0 < n < m"),
    ("rtn", {"group_size": 0}, "group_size >= 1"),
    ("wanda", {"samples": 0}, "samples >= 1"),
    ("head", {"kind": "l2_unstructured"}, "one of 'l1_unstructured'"),
    ("head", {"norm": -1}, "norm > 0"),
])
def test_invalid_configs_are_suite_errors(method: str, params: dict, expected: str) -> None:
    with pytest.raises(SuiteError, match=expected):
        build(METHODS.lookup(method, "method").config, params, "methods[0]")


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_wanda_prunes_each_output_row_by_weight_times_activation(family: str) -> None:
    model, kind = tiny(family)
    dense_rows = {layer.name: layer.rows.clone() for layer in linear_layers(model)}
    report = compress(model, kind, "wanda", {"samples": 4, "max_tokens": 32}, 0.5)
    assert report.sparsity == pytest.approx(0.5)
    differs_from_magnitude = False
    for layer in linear_layers(model):
        zeros = (layer.rows == 0).sum(dim=1)
        assert bool((zeros == layer.rows.shape[1] // 2).all()), layer.name
        magnitude_kept = dense_rows[layer.name].abs().topk(layer.rows.shape[1] // 2, dim=1).indices.sort(dim=1).values
        kept = (layer.rows != 0).nonzero()[:, 1].reshape(layer.rows.shape[0], -1)
        differs_from_magnitude |= not torch.equal(kept, magnitude_kept)
    assert differs_from_magnitude


@pytest.mark.parametrize("family", ["t5", "bert"])
def test_wanda_calibrates_encoders_and_encoder_decoders(family: str) -> None:
    model, kind = tiny(family)
    report = compress(model, kind, "wanda", {"samples": 2, "max_tokens": 16}, 0.5)
    assert report.sparsity == pytest.approx(0.5)


def test_wanda_needs_a_tokenizer() -> None:
    model, kind = tiny("llama")
    entry = METHODS.lookup("wanda", "method")
    with pytest.raises(KnowledgeError, match="tokenizer"):
        entry.apply(model, entry.config(), 0.5, CompressionContext(kind, 0, None))


def test_rtn_quantizes_gpt2_conv1d_per_output_channel() -> None:
    model, kind = tiny("gpt2")
    report = compress(model, kind, "rtn", {}, 2)
    assert report.bits == 2
    for layer in linear_layers(model):
        distinct = [len(torch.unique(row)) for row in layer.rows]
        assert max(distinct) <= 4, layer.name


def test_int8_dynamic_stays_close_to_dense_on_gpt2_conv1d() -> None:
    model, kind = tiny("gpt2")
    dense = outputs(model)
    snapshot = DenseSnapshot(model)
    compress(model, kind, "int8_dynamic", {}, None)
    quantized = linear_layers(model)
    assert all(type(layer.module) is nn.Linear for layer in quantized)
    assert all(type(layer.module.weight).__name__ == "Int8Tensor" for layer in quantized)
    error = (outputs(model) - dense).abs().max() / dense.abs().max()
    assert 0 < error < 0.05
    snapshot.restore()
    assert all(is_conv1d(layer.module) for layer in linear_layers(model))
