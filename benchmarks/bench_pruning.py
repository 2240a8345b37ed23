"""Global magnitude pruning on SmolLM2: torch.nn.utils.prune.global_unstructured against
pytest-knowledge's ``magnitude`` method, side by side, with the same resulting mask.

    python benchmarks/bench_pruning.py [--ratio 0.5] [--repeats 3]

The parent loads SmolLM2 once and saves the weights of its linear layers (the LM head
excluded, as the ``magnitude`` default does). Each method then runs in its own fresh
subprocess, which rebuilds the layers from that file, so one method's allocator state
never flatters the other's figures.

Time: median of ``--repeats`` calls, each on a fresh copy of the dense weights.
Memory: peak resident set size above the resident set size just before the call. Linux
keeps the peak in /proc/self/status (VmHWM); writing "5" to /proc/self/clear_refs resets
it, so the peak of the call alone is read without sampling. tracemalloc is not used: it
does not see torch's allocations. The first call in each subprocess is the one reported
(later calls can reuse memory the allocator kept).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

METHODS = {"torch": "torch global_unstructured", "magnitude": "pytest-knowledge magnitude"}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _meta_model(config_dir: Path, weights: dict[str, torch.Tensor]) -> nn.Module:
    """SmolLM2's module tree on the meta device, with real tensors in the benchmarked layers."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir))
    for name, weight in weights.items():
        model.get_submodule(name).weight = nn.Parameter(weight, requires_grad=False)
    return model


def _prune(method: str, model: nn.Module, layers: list[nn.Module], ratio: float) -> None:
    if method == "torch":
        prune.global_unstructured([(layer, "weight") for layer in layers], prune.L1Unstructured, amount=ratio)
        return
    from pytest_knowledge.methods import METHODS as REGISTRY
    from pytest_knowledge.methods import CompressionContext

    entry = REGISTRY.lookup("magnitude", "method")
    entry.apply(model, entry.config(), ratio, CompressionContext("decoder", 0))


def _pruned_positions(method: str, layers: list[nn.Module]) -> torch.Tensor:
    if method == "torch":
        return torch.cat([(layer.weight_mask == 0).flatten() for layer in layers])
    return torch.cat([(layer.weight == 0).flatten() for layer in layers])


def child(method: str, workdir: Path, ratio: float, repeats: int) -> None:
    """Time and measure ``method`` on fresh copies of the dense layers; save the first mask."""
    dense: dict[str, torch.Tensor] = torch.load(workdir / "weights.pt")
    times, peaks = [], []
    for repeat in range(repeats):
        model = _meta_model(workdir, {name: w.clone() for name, w in dense.items()})
        layers = [model.get_submodule(name) for name in dense]
        gc.collect()
        _reset_peak_rss()
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        _prune(method, model, layers, ratio)
        times.append(time.perf_counter() - start)
        peaks.append((_status_kib("VmHWM") - before) * 1024)
        if repeat == 0:
            torch.save(_pruned_positions(method, layers), workdir / f"mask-{method}.pt")
        del model, layers
        gc.collect()
    print(json.dumps({"times": times, "peak_extra_bytes": peaks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=sorted(METHODS))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir, args.ratio, args.repeats)
        return

    from pytest_knowledge.methods.scopes import linear_layers
    from pytest_knowledge.models import load

    loaded = load("smollm2-135m", "smollm2-135m")
    model = loaded.model
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4  # parameters() skips the tied head
    layers = linear_layers(model, "all")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model.config.save_pretrained(workdir)
        torch.save({layer.name: layer.module.weight.detach().clone() for layer in layers}, workdir / "weights.pt")

        results = {}
        for method in METHODS:
            command = [sys.executable, __file__, "--child", method, "--workdir", str(workdir),
                       "--ratio", str(args.ratio), "--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])

        dense = torch.cat([w.abs().flatten() for w in torch.load(workdir / "weights.pt").values()])
        ours, theirs = torch.load(workdir / "mask-magnitude.pt"), torch.load(workdir / "mask-torch.pt")

    threshold = dense[ours].max()
    differ = ours != theirs
    print(f"SmolLM2-135M: {len(dense):,} weights in its linear layers (lm_head excluded), ratio {args.ratio}, "
          f"model fp32 size {fp32_bytes / 2**20:.1f} MiB, {torch.get_num_threads()} torch threads")
    print(f"{'method':28} {'median s':>9}  {'runs s':24} {'peak extra MiB (first run)':>27}")
    for method, label in METHODS.items():
        times, peak = results[method]["times"], results[method]["peak_extra_bytes"][0]
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{label:28} {statistics.median(times):9.2f}  {runs:24} "
              f"{peak / 2**20:11.1f} ({peak / fp32_bytes:.1%} of model)")
    speedup = statistics.median(results["torch"]["times"]) / statistics.median(results["magnitude"]["times"])
    print(f"speed ratio: {speedup:.1f}x")
    print(f"pruned: torch {int(theirs.sum()):,}, magnitude {int(ours.sum()):,}; "
          f"{int(differ.sum()):,} positions differ, all at |w| == threshold {float(threshold):.6g}: "
          f"{bool((dense[differ] == threshold).all())}")


if __name__ == "__main__":
    main()
