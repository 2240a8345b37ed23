"""Global magnitude pruning on SmolLM2: torch.nn.utils.prune.global_unstructured against
pytest-knowledge's ``magnitude`` method, side by side, with the same resulting mask.

    python benchmarks/bench_pruning.py [--ratio 0.5] [--repeats 5]

The parent loads SmolLM2 once and saves the weights of its linear layers (the LM head
excluded, as the ``magnitude`` default does). Every call then runs in a fresh
subprocess that rebuilds the layers from that file, alternating between the two
methods, so neither sees the other's allocator state and both see the same machine
load. The ``magnitude`` call is the registered method, sparsity report included.

Time: wall-clock (and CPU) seconds of the call alone; the median over ``--repeats``, and
the ratio within each back-to-back pair (on a shared machine the load changes between
pairs more than within one).
Memory: peak resident set size during the call minus the resident set size just before
it. Linux keeps the peak in /proc/self/status (VmHWM) and writing "5" to
/proc/self/clear_refs resets it, so the call's own peak is read exactly, without
sampling. (tracemalloc does not see torch's allocations.)
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


def child(method: str, workdir: Path, ratio: float) -> None:
    """One call of ``method`` on the dense layers, in this fresh process: wall time, CPU
    time and peak RSS above the RSS just before; the pruned positions go to a file."""
    dense: dict[str, torch.Tensor] = torch.load(workdir / "weights.pt")
    model = _meta_model(workdir, dense)
    layers = [model.get_submodule(name) for name in dense]
    gc.collect()
    _reset_peak_rss()
    before = _status_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    _prune(method, model, layers, ratio)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = (_status_kib("VmHWM") - before) * 1024
    torch.save(_pruned_positions(method, layers), workdir / f"mask-{method}.pt")
    print(json.dumps({"wall": wall, "cpu": cpu, "peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=sorted(METHODS))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir, args.ratio)
        return

    from pytest_knowledge.engine.loading import load
    from pytest_knowledge.methods.scopes import linear_layers

    loaded = load("smollm2-135m", "smollm2-135m")
    model = loaded.model
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4  # parameters() skips the tied head
    layers = linear_layers(model, "all")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model.config.save_pretrained(workdir)
        torch.save({layer.name: layer.module.weight.detach().clone() for layer in layers}, workdir / "weights.pt")

        results: dict[str, list[dict[str, float]]] = {method: [] for method in METHODS}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            for method in METHODS:
                command = [sys.executable, __file__, "--child", method, "--workdir", str(workdir),
                           "--ratio", str(args.ratio)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                results[method].append(json.loads(done.stdout.strip().splitlines()[-1]))

        dense = torch.cat([w.abs().flatten() for w in torch.load(workdir / "weights.pt").values()])
        ours, theirs = torch.load(workdir / "mask-magnitude.pt"), torch.load(workdir / "mask-torch.pt")

    threshold = dense[ours].max()
    differ = ours != theirs
    print(f"SmolLM2-135M: {len(dense):,} weights in its linear layers (lm_head excluded), ratio {args.ratio}, "
          f"model fp32 size {fp32_bytes / 2**20:.1f} MiB, {torch.get_num_threads()} torch threads")
    print(f"{'method':28} {'wall s (median)':>15} {'cpu s':>7}  {'wall s, every run':30} {'peak extra MiB (median, max)':>28}")
    for method, label in METHODS.items():
        runs = results[method]
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = statistics.median(r["peak"] for r in runs)
        every = ", ".join(f"{r['wall']:.2f}" for r in runs)
        print(f"{label:28} {wall:15.2f} {cpu:7.2f}  {every:30} {peak / 2**20:8.1f} ({peak / fp32_bytes:.1%} of model), "
              f"{max(r['peak'] for r in runs) / 2**20:.1f}")
    pairs = [t["wall"] / m["wall"] for t, m in zip(results["torch"], results["magnitude"])]
    speedup = statistics.median(r["wall"] for r in results["torch"]) / statistics.median(r["wall"] for r in results["magnitude"])
    print(f"speed ratio: {speedup:.1f}x of the medians; per back-to-back pair {', '.join(f'{p:.1f}' for p in pairs)}, "
          f"median {statistics.median(pairs):.1f}x")
    print(f"pruned: torch {int(theirs.sum()):,}, magnitude {int(ours.sum()):,}; "
          f"{int(differ.sum()):,} positions differ, all at |w| == threshold {float(threshold):.6g}: "
          f"{bool((dense[differ] == threshold).all())}")


if __name__ == "__main__":
    main()
