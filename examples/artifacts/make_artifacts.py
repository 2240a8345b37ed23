"""Make two artifacts from SmolLM2-135M, offline, the way teams ship compressed models:

* out/smollm2-q4_0.gguf: the shipped GGUF file re-quantized to Q4_0 (what llama-quantize does);
* out/smollm2-w4a16/: a compressed-tensors checkpoint with 4-bit weights in groups of 32 (the
  format llm-compressor saves), made with the compressed-tensors package.

Usage: python examples/artifacts/make_artifacts.py [OUT]  (default: out)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pytest_knowledge.engine.loading import converted, resolve
from pytest_knowledge.testing.artifacts import requantize_gguf, save_compressed_tensors


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shipped = resolve("smollm2-135m")
    requantize_gguf(Path(shipped.location) / str(shipped.gguf_file), out / "smollm2-q4_0.gguf", "Q4_0")
    folder = converted(shipped).location  # the shipped file, dequantized to float32 once
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    save_compressed_tensors(model, AutoTokenizer.from_pretrained(folder), out / "smollm2-w4a16", bits=4, group_size=32)
    print(f"wrote {out / 'smollm2-q4_0.gguf'} and {out / 'smollm2-w4a16'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
