"""Engine speed on the default grid's SmolLM2 cases, each figure measured side by side in one run.

    python benchmarks/bench_engine.py [--suite suites/default.yaml] [--model smollm2-135m] [--skip-workers]

The grid is the suite's cases for one model (the naive loop below scores decoders only).
GGUF models are converted to a safetensors folder on their first load (docs/scaling.md);
the script converts first, outside every timing, so each figure compares loads from the
same files.

1. Naive loop vs engine (in this process, no result cache). The naive loop is what a
   per-case script does: load the model from disk for every case, evaluate the dense
   model again for every case, and pad every batch to a fixed length (64 tokens). The
   engine loads once, restores dense weights in memory, evaluates dense once per
   (model, benchmark) and pads each batch to its longest row. Both compute the same P@1
   values (checked).
2. Result cache: the grid through pytest in a fresh process with an empty cache folder,
   then again with the warm one, history recorded as by default. Printed three ways:
   end-to-end wall time (interpreter start and plugin imports included), the session time
   pytest reports ("N passed in X s": collection, cases, baselines and reports), and the
   time the cases themselves took (sum of the test call durations). Both runs use the
   installed pytest plugins and Python's default of writing bytecode caches; a
   collect-only run compiles the package first, as installing it would. Next to them,
   pytest's own start-up (one empty test, this plugin off) bounds what any rerun can reach.
3. Workers: the grid with 8+ ratios through pytest with -n 1 and -n 2, no cache.
4. FLOP/s of probe evaluation: 2 x (parameters in linear layers, the LM head included) x
   (real, unpadded tokens), over the dense evaluation time, next to the FLOP/s of a
   2048 x 2048 float32 matmul measured on the same machine in the same run.
5. Scoring only where it counts: the dense evaluation with the LM head computed at the
   scored positions only (``logits_to_keep``) vs at every position, median of 3 each,
   alternating, with the P@1 of both (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from pytest_knowledge.benchmarks.facts import FactsBenchmark
from pytest_knowledge.engine.cache import ResultCache
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.loading import _load, converted, load, resolve
from pytest_knowledge.engine.workbench import Workbench
from pytest_knowledge.suite.parse import Case, load_suite

ROOT = Path(__file__).resolve().parents[1]
FIXED_LENGTH = 64


def naive_p_at_1(loaded, clozes, batch_size: int = 32) -> float:
    """First-token P@1 with every batch padded to FIXED_LENGTH tokens."""
    tok = loaded.tokenizer
    hits = 0
    for start in range(0, len(clozes), batch_size):
        batch = clozes[start : start + batch_size]
        prompts = [tok(c.prefix.rstrip(), add_special_tokens=False)["input_ids"] for c in batch]
        golds = [{tok(c.prefix.rstrip() + " " + answer, add_special_tokens=False)["input_ids"][len(p)]
                  for answer in c.answers} for c, p in zip(batch, prompts)]  # any accepted answer counts
        ids = torch.full((len(batch), FIXED_LENGTH), tok.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(p)
            mask[i, : len(p)] = 1
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits
        last = logits[torch.arange(len(batch)), mask.sum(1) - 1]
        hits += sum(int(last[i].argmax()) in g for i, g in enumerate(golds))
    return hits / len(clozes)


def naive_loop(cases: list[Case]) -> tuple[float, dict[str, float]]:
    bench = Workbench()  # used only for its compress(), which the naive loop shares
    values = {}
    start = time.perf_counter()
    for case in cases:
        loaded = _load(case.model.name, case.model.source, case.model.family, "float32", None, False)
        clozes = FactsBenchmark(case.benchmark.config).clozes
        naive_p_at_1(loaded, clozes)  # dense, again for every case
        if case.method is not None:
            bench.compress(case, loaded)
        values[case.id] = naive_p_at_1(loaded, clozes)
        del loaded
    return time.perf_counter() - start, values


def engine_loop(cases: list[Case]) -> tuple[float, dict[str, float]]:
    engine = Engine(ResultCache(Path(), mode="off"))
    start = time.perf_counter()
    values = {case.id: engine.run(case).result.value for case in cases}
    return time.perf_counter() - start, values


# Python's own default: bytecode caches are written and reused (a machine may switch that off).
PYTHON_DEFAULTS = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_pytest(suite: Path, workdir: Path, *args: str) -> tuple[float, float, float]:
    """(wall seconds, session seconds pytest reports, sum of test call durations) of one pytest run
    in a fresh process."""
    report = workdir / "durations.json"
    command = [sys.executable, "-m", "pytest", f"--knowledge-suite={suite}", "-q", "-p", "no:cacheprovider",
               f"--knowledge-baselines={workdir / 'baselines'}", f"--knowledge-results={report}", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False, env=PYTHON_DEFAULTS)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    session = float(re.findall(r"passed in ([0-9.]+)s", done.stdout)[-1])
    records = json.loads(report.read_text())["records"]
    return wall, session, sum(r["seconds"] for r in records)


def pytest_floor(workdir: Path, repeats: int = 3) -> float:
    """Median wall time of pytest running one empty test without this plugin: the start-up
    every run pays whatever the plugin does."""
    (workdir / "test_empty.py").write_text("def test_empty():\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:knowledge", "test_empty.py"]
    times = []
    for _ in range(repeats + 1):  # the first one writes bytecode caches
        start = time.perf_counter()
        subprocess.run(command, cwd=workdir, capture_output=True, check=True, env=PYTHON_DEFAULTS)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def one_model_grid(suite_path: Path, model: str, workdir: Path, ratios: list[float] | None = None) -> Path:
    """The suite restricted to ``model`` (and optionally other ratios), written as a new suite file."""
    import yaml

    document = yaml.safe_load(suite_path.read_text())
    document["models"] = [m for m in document["models"] if (m if isinstance(m, str) else m["name"]) == model]
    document["benchmarks"] = [b for b in document["benchmarks"] if model in b.get("models", [model])]
    if ratios is not None:
        document["ratios"] = ratios
    path = workdir / f"{document.get('name', suite_path.stem)}-{model}{'-grid' if ratios else ''}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def matmul_flops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def probe_flops(case: Case) -> tuple[float, int]:
    """Achieved FLOP/s of the dense probe evaluation and the real tokens it processed."""
    loaded = load(case.model.name, case.model.source, case.model.family, case.model.dtype)
    bench = FactsBenchmark(case.benchmark.config)
    tokens = 0

    def count(module, args, kwargs):
        nonlocal tokens
        tokens += int(kwargs["attention_mask"].sum())

    params = sum(m.weight.numel() for m in loaded.model.modules() if isinstance(m, torch.nn.Linear))
    hook = loaded.model.register_forward_pre_hook(count, with_kwargs=True)
    bench.evaluate(loaded)  # warm-up
    tokens = 0
    times = []
    for _ in range(3):
        start = time.perf_counter()
        bench.evaluate(loaded)
        times.append(time.perf_counter() - start)
    hook.remove()
    per_run = tokens // 3
    return 2 * params * per_run / statistics.median(times), per_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=str(ROOT / "suites" / "default.yaml"))
    parser.add_argument("--model", default="smollm2-135m", help="the suite's model whose cases are timed")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-naive", action="store_true", help="skip figure 1 (the naive loop takes minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suite_path = one_model_grid(Path(args.suite).resolve(), args.model, work)
        cases = load_suite(suite_path).cases()
        converted(resolve(cases[0].model.source))
        print(f"grid: {len(cases)} cases of {args.suite} for {args.model}, {torch.get_num_threads()} torch threads")

        if not args.skip_naive:
            naive_s, naive_values = naive_loop(cases)
            engine_s, engine_values = engine_loop(cases)
            same = all(abs(naive_values[c] - engine_values[c]) < 1e-9 for c in naive_values)
            print(f"1. naive loop {naive_s:.1f} s, engine {engine_s:.1f} s: engine {naive_s / engine_s:.1f}x faster "
                  f"(same P@1 values: {same})")

        cache = f"--knowledge-cache={work / 'cache'}"
        subprocess.run([sys.executable, "-m", "pytest", f"--knowledge-suite={suite_path}", "--co", "-q"], cwd=work,
                       capture_output=True, check=True, env=PYTHON_DEFAULTS)  # bytecode compiled, as after an install
        cold = run_pytest(suite_path, work, cache, "--knowledge-update-baselines")
        warm = run_pytest(suite_path, work, cache)
        cases_ratio = f"{cold[2] / warm[2]:.0f}x" if warm[2] > 0 else "rerun below timer resolution"
        print(f"2. cache: end to end {cold[0]:.1f} s vs rerun {warm[0]:.1f} s: {cold[0] / warm[0]:.1f}x; "
              f"pytest session {cold[1]:.2f} s vs {warm[1]:.2f} s: {cold[1] / warm[1]:.1f}x; "
              f"cases only {cold[2]:.2f} s vs {warm[2]:.4f} s: {cases_ratio}")
        floor = pytest_floor(work)
        print(f"   pytest itself (this environment's plugins, one empty test, no knowledge plugin) {floor:.2f} s: "
              f"a rerun can be at most {cold[0] / floor:.0f}x faster than the first run here")

        if not args.skip_workers:
            grid = one_model_grid(Path(args.suite).resolve(), args.model, work, [r / 20 for r in range(1, 8)])
            size = len(load_suite(grid).cases())
            one = run_pytest(grid, work, "--knowledge-no-cache", "--knowledge-update-baselines", "-n", "1")[0]
            two = run_pytest(grid, work, "--knowledge-no-cache", "--knowledge-update-baselines", "-n", "2")[0]
            print(f"3. {size} cases, -n 1 {one:.1f} s, -n 2 {two:.1f} s: -n 2 {one / two:.2f}x faster")

    dense = next(c for c in cases if c.method is None)
    achieved, tokens = probe_flops(replace(dense))
    peak = matmul_flops()
    print(f"4. probe evaluation {achieved / 1e9:.1f} GFLOP/s over {tokens} real tokens; "
          f"2048^2 fp32 matmul {peak / 1e9:.1f} GFLOP/s: {achieved / peak:.0%} of matmul peak")

    from pytest_knowledge.benchmarks import scoring

    loaded = load(dense.model.name, dense.model.source)
    probe = FactsBenchmark(dense.benchmark.config)
    keeps = scoring._keeps_logits
    times: dict[bool, list[float]] = {True: [], False: []}
    values: dict[bool, float] = {}
    for _ in range(3):
        for kept in (False, True):
            scoring._keeps_logits = keeps if kept else (lambda model: False)
            start = time.perf_counter()
            values[kept] = probe.evaluate(loaded).value
            times[kept].append(time.perf_counter() - start)
    scoring._keeps_logits = keeps
    full, kept = statistics.median(times[False]), statistics.median(times[True])
    print(f"5. dense evaluation, LM head at every position {full:.2f} s vs at scored positions {kept:.2f} s: "
          f"{full / kept:.2f}x faster (same P@1: {values[True] == values[False]}, {values[True]:.4f})")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
