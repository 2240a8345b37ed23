"""Compressed checkpoints on disk, made offline the way teams make them, for tests and docs.

* ``requantize_gguf``: a GGUF file at another quantization type (what ``llama-quantize`` does
  from a GGUF input), tensor by tensor with the ``gguf`` package;
* ``write_llama_gguf``: a transformers Llama as a GGUF file (what llama.cpp's
  ``convert_hf_to_gguf.py`` does: llama.cpp tensor names, query/key rows reordered for its
  rotary layout, which transformers' GGUF loader undoes), with the tokenizer metadata taken
  from a GGUF file of the same tokenizer;
* ``save_compressed_tensors``: a compressed-tensors checkpoint (the format llm-compressor
  saves) with int weights per group, through the ``compressed-tensors`` package.

Both GGUF writers give each tensor the type ``methods.gguf`` gives it in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_knowledge.methods.gguf import block_size

if TYPE_CHECKING:
    import gguf
    from torch import nn

OUTPUT_TENSORS = ("output.weight",)


def _copy_fields(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, prefix: str = "") -> None:
    """Metadata of ``reader`` (keys starting with ``prefix``) into ``writer``, with their value types."""
    import gguf

    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or not name.startswith(prefix):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)


def _typed(values: Any, name: str, type_name: str, output_type: str) -> tuple[Any, Any]:
    """(data, raw type) of a float32 tensor as ``methods.gguf`` types it; 1-D tensors stay F32."""
    import gguf
    import numpy as np

    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim < 2:
        return values, gguf.GGMLQuantizationType.F32
    wanted = output_type if name in OUTPUT_TENSORS else type_name
    if wanted == "F32":
        return values, gguf.GGMLQuantizationType.F32
    if wanted == "F16" or values.shape[-1] % block_size(wanted):
        return values.astype(np.float16), gguf.GGMLQuantizationType.F16
    kind = gguf.GGMLQuantizationType[wanted]
    return gguf.quants.quantize(values, kind), kind


def _write(writer: gguf.GGUFWriter, tensors: list[tuple[str, Any, Any]]) -> None:
    import gguf

    for name, data, kind in tensors:
        raw = kind if kind not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else None
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def requantize_gguf(source: Path, target: Path, type_name: str, output_type: str = "Q8_0") -> Path:
    """``source`` with its 2-D tensors dequantized and quantized again to ``type_name``.

    The output tensor (``output.weight``, or ``token_embd.weight`` when the model has no
    separate head) gets ``output_type``.
    """
    import gguf

    reader = gguf.GGUFReader(source)
    names = {t.name for t in reader.tensors}
    output = "output.weight" if "output.weight" in names else "token_embd.weight"
    writer = gguf.GGUFWriter(target, str(reader.fields["general.architecture"].contents()))
    _copy_fields(reader, writer)
    tensors = []
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        values = values.reshape([int(n) for n in reversed(tensor.shape)])
        data, kind = _typed(values, "output.weight" if tensor.name == output else tensor.name, type_name, output_type)
        tensors.append((tensor.name, data, kind))
    _write(writer, tensors)
    return target


def _permute(weights: Any, heads: int) -> Any:
    """llama.cpp's row order for rotary query/key weights (the inverse of transformers' GGUF loader)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


BYTE_VOCABULARY = 258  # 256 byte tokens, one merge (transformers needs one) and an end-of-text token


def _byte_tokenizer(writer: gguf.GGUFWriter) -> None:
    """A byte-level BPE vocabulary without merges: transformers reads it in a blink, where a real
    tokenizer's 49k tokens and merges take it tens of seconds per load."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = [*bytes_to_unicode().values(), "Ġt", "<|endoftext|>"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 1) + [3])
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)


def write_llama_gguf(model: nn.Module, target: Path, type_name: str, output_type: str = "Q8_0",
                     tokenizer_gguf: Path | None = None) -> Path:
    """A transformers ``LlamaForCausalLM`` as a GGUF file at ``type_name``. Its tokenizer metadata is
    copied from ``tokenizer_gguf`` (a GGUF file of the model's tokenizer), or without one is a
    byte-level vocabulary (the model's ``vocab_size`` must be ``BYTE_VOCABULARY``)."""
    import gguf

    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    writer = gguf.GGUFWriter(target, "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float((getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(config.hidden_size // heads)
    writer.add_vocab_size(config.vocab_size)
    if tokenizer_gguf is not None:
        _copy_fields(gguf.GGUFReader(tokenizer_gguf), writer, prefix="tokenizer.")
    elif config.vocab_size == BYTE_VOCABULARY:
        _byte_tokenizer(writer)
    else:
        raise ValueError(f"a byte-level vocabulary has {BYTE_VOCABULARY} tokens, the model {config.vocab_size}")
    tied = getattr(config, "tie_word_embeddings", False)
    tensors = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"no GGUF name for tensor {hf_name}")
        values = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            values = _permute(values, heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            values = _permute(values, kv_heads)
        output = name == "output.weight" or (tied and name == "token_embd.weight")
        tensors.append((name, *_typed(values, "output.weight" if output else name, type_name, output_type)))
    _write(writer, tensors)
    return target


def save_compressed_tensors(model: nn.Module, tokenizer: Any, target: Path, bits: int = 4,
                            group_size: int = 16) -> Path:
    """``model``'s linear layers (not the head) as symmetric int weights per group, saved as a
    compressed-tensors checkpoint the way llm-compressor saves one (packed, with its config).

    The scales are min/max per group, as llm-compressor's default observer sets them; ``model``
    is compressed in place and should not be used afterwards.
    """
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=bits, type="int", symmetric=True, strategy="group", group_size=group_size)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"]))
    for module in model.modules():
        if hasattr(module, "weight_scale"):
            groups = module.weight.detach().reshape(module.weight.shape[0], -1, group_size)
            scale, zero_point = calculate_qparams(groups.amin(-1), groups.amax(-1), args)
            module.weight_scale.data.copy_(scale.reshape(module.weight_scale.shape))
            module.weight_zero_point.data.copy_(zero_point.reshape(module.weight_zero_point.shape))
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    model.save_pretrained(target)
    compressor.update_config(str(target))
    tokenizer.save_pretrained(target)
    return target
